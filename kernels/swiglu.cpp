#include "kernels/swiglu.h"

#include <cmath>

namespace llama_tp::kernels {
void swiglu_cpu(float* out, const float* gate_up, int n_tokens, int ffn) {
  for (int t = 0; t < n_tokens; ++t) {
    const float* g = gate_up + size_t(t) * 2 * ffn;
    const float* u = g + ffn;
    float* o = out + size_t(t) * ffn;
    for (int i = 0; i < ffn; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  }
}

void add_cpu(float* x, const float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] += y[i];
}
}  // namespace llama_tp::kernels

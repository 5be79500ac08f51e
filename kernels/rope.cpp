#include "kernels/rope.h"

#include <cmath>
#include <cstddef>

namespace llama_tp::kernels {
void rope_cpu(float* x, int n_tokens, int n_heads, int head_dim, int row_stride,
              const int32_t* positions, const float* inv_freq) {
  const int half = head_dim / 2;
  for (int t = 0; t < n_tokens; ++t) {
    float* row = x + size_t(t) * row_stride;
    for (int i = 0; i < half; ++i) {
      // float32 angle as HF computes it (inv_freq * position in float32).
      float angle = float(positions[t]) * inv_freq[i];
      float c = std::cos(angle), s = std::sin(angle);
      for (int h = 0; h < n_heads; ++h) {
        float* head = row + size_t(h) * head_dim;
        float a = head[i], b = head[i + half];
        head[i] = a * c - b * s;
        head[i + half] = b * c + a * s;
      }
    }
  }
}
}  // namespace llama_tp::kernels

#include "kernels/argmax.h"

namespace llama_tp::kernels {
int argmax_cpu(const float* x, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}
}  // namespace llama_tp::kernels

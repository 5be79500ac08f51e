#include "kernels/matmul.h"

#include <cstddef>

namespace llama_tp::kernels {
namespace {
// Four independent partial sums let the compiler vectorise the dot product.
inline float dot(const float* a, const float* b, int k) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int i = 0;
  for (; i + 4 <= k; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < k; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}
}  // namespace

void matmul_cpu(float* out, const float* x, const float* w, int m, int n, int k) {
  // Weight rows outer, tokens inner: each weight row is read once and reused for every token.
  for (int j = 0; j < n; ++j) {
    const float* wj = w + size_t(j) * k;
    for (int i = 0; i < m; ++i) out[size_t(i) * n + j] = dot(x + size_t(i) * k, wj, k);
  }
}
}  // namespace llama_tp::kernels

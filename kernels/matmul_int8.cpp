#include "kernels/matmul_int8.h"

#include <algorithm>
#include <cstddef>
#include <vector>

namespace llama_tp::kernels {

void matmul_int8_cpu(float* out, const float* x, const int8_t* q, const QuantScale* scales, int m, int n, int k,
                     int group) {
  const int groups = (k + group - 1) / group;
  std::vector<float> row(static_cast<size_t>(k));
  // Weight rows outer (each converted to float once), tokens inner, as matmul_cpu.
  for (int j = 0; j < n; ++j) {
    const int8_t* qj = q + size_t(j) * k;
    for (int c = 0; c < k; ++c) row[size_t(c)] = float(qj[c]);
    const QuantScale* sj = scales + size_t(j) * groups;
    for (int i = 0; i < m; ++i) {
      const float* xi = x + size_t(i) * k;
      float acc = 0.f;
      for (int g = 0; g < groups; ++g) {
        const int c0 = g * group, c1 = std::min(k, c0 + group);
        float s = 0.f;
        for (int c = c0; c < c1; ++c) s += row[size_t(c)] * xi[c];
        acc += s * quant_scale_value(sj[g]);
      }
      out[size_t(i) * n + j] = acc;
    }
  }
}

}  // namespace llama_tp::kernels

#include "kernels/rmsnorm.h"

#include <cmath>

namespace llama_tp::kernels {
void rmsnorm_cpu(float* out, const float* x, const float* weight, int rows, int dim, float eps) {
  for (int r = 0; r < rows; ++r) {
    const float* xr = x + size_t(r) * dim;
    float* o = out + size_t(r) * dim;
    double ss = 0;
    for (int i = 0; i < dim; ++i) ss += double(xr[i]) * xr[i];
    float scale = 1.0f / std::sqrt(float(ss / dim) + eps);
    for (int i = 0; i < dim; ++i) o[i] = xr[i] * scale * weight[i];
  }
}

void add_rmsnorm_cpu(float* out, float* x_out, const float* x, const float* delta, const float* weight, int rows,
                     int dim, float eps) {
  for (size_t i = 0; i < size_t(rows) * dim; ++i) x_out[i] = x[i] + delta[i];
  rmsnorm_cpu(out, x_out, weight, rows, dim, eps);
}
}  // namespace llama_tp::kernels

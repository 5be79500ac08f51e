#pragma once

namespace llama_tp::kernels {
// out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight, for r < rows (Llama's RMSNorm).
// out may alias x.
void rmsnorm_cpu(float* out, const float* x, const float* weight, int rows, int dim, float eps);
// The residual add fused with the norm: x_out = x + delta (x_out may alias x), then out =
// rmsnorm(x_out) * weight. out must not alias x, delta or x_out.
void add_rmsnorm_cpu(float* out, float* x_out, const float* x, const float* delta, const float* weight, int rows,
                     int dim, float eps);
}  // namespace llama_tp::kernels

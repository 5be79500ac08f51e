#pragma once

namespace llama_tp::kernels {
// out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight, for r < rows (Llama's RMSNorm).
// out may alias x.
void rmsnorm_cpu(float* out, const float* x, const float* weight, int rows, int dim, float eps);
// The residual add fused with the norm: x += residual (stored back in x), then out =
// rmsnorm(x) * weight. out must not alias x or residual.
void add_rmsnorm_cpu(float* out, float* x, const float* residual, const float* weight, int rows, int dim,
                     float eps);
}  // namespace llama_tp::kernels

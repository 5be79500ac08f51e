#pragma once
#include <cuda_runtime.h>

#include "runtime/dtype.h"

namespace llama_tp::kernels {
// out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight, for r < rows. Any dim; out may
// alias x. weight [dim] in weight_dtype (f32, f16 or bf16).
void rmsnorm_cuda(float* out, const float* x, const void* weight, DType weight_dtype, int rows,
                  int dim, float eps, cudaStream_t stream);

// Residual add fused with the norm: x += residual (stored back in x), then out = rmsnorm(x) *
// weight. One pass over x instead of two kernels. out must not alias x or residual.
void add_rmsnorm_cuda(float* out, float* x, const float* residual, const void* weight,
                      DType weight_dtype, int rows, int dim, float eps, cudaStream_t stream);
}  // namespace llama_tp::kernels

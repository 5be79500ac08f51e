#pragma once
#include <cuda_runtime.h>

#include "runtime/dtype.h"

namespace llama_tp::kernels {
// out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight, for r < rows. Any dim; out may
// alias x. weight [dim] in weight_dtype (f32, f16 or bf16).
void rmsnorm_cuda(float* out, const float* x, const void* weight, DType weight_dtype, int rows,
                  int dim, float eps, cudaStream_t stream);

// Residual add fused with the norm: x_out = x + delta (x_out may alias x), then out =
// rmsnorm(x_out) * weight. One pass over x instead of two kernels. out must not alias x, delta
// or x_out.
void add_rmsnorm_cuda(float* out, float* x_out, const float* x, const float* delta, const void* weight,
                      DType weight_dtype, int rows, int dim, float eps, cudaStream_t stream);
}  // namespace llama_tp::kernels

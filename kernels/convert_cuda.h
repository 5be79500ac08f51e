#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "runtime/dtype.h"

namespace llama_tp::kernels {
// dst[i] = src[i] converted (round to nearest even) for i < n, between f32, f16 and bf16 in any
// direction: activations to a weight dtype before a cuBLAS product, weights to the compute dtype.
void convert_cuda(void* dst, DType dst_dtype, const void* src, DType src_dtype, size_t n,
                  cudaStream_t stream);
// Splits float32 x (n values) into hi = x rounded to dtype and lo = (x - hi) rounded, stored as
// hi_lo[0..n) and hi_lo[n..2n): a product with hi and lo rows, summed, sees x to ~16 mantissa
// bits although cuBLAS takes 16-bit inputs (the --precise-activations prefill path).
void split_hi_lo_cuda(void* hi_lo, DType dtype, const float* x, size_t n, cudaStream_t stream);
// out[i] = parts[i] + parts[n + i] for i < n.
void add_halves_cuda(float* out, const float* parts, size_t n, cudaStream_t stream);
}  // namespace llama_tp::kernels

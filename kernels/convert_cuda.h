#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "runtime/dtype.h"

namespace llama_tp::kernels {
// dst[i] = src[i] converted (round to nearest even) for i < n, between f32, f16 and bf16 in any
// direction: activations to a weight dtype before a cuBLAS product, weights to the compute dtype.
void convert_cuda(void* dst, DType dst_dtype, const void* src, DType src_dtype, size_t n,
                  cudaStream_t stream);
}  // namespace llama_tp::kernels

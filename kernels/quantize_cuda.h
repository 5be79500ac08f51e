#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/quant_scale.h"
#include "runtime/dtype.h"

namespace llama_tp::kernels {
// The GPU side of kernels/quantize.h, bit-identical to the CPU reference (same IEEE division,
// round half to even). Matrices [n, k] row-major; scales [n, ceil(k / group)] (QuantScale, kernels/quant_scale.h).

// w in w_dtype (f32, f16, bf16) -> q, scales. One warp per (row, group).
void quantize_int8_cuda(int8_t* q, QuantScale* scales, const void* w, DType w_dtype, int64_t n, int64_t k,
                        int64_t group, cudaStream_t stream);
// q, scales -> out in out_dtype (f32, f16, bf16): for the prefill product (cuBLAS on the result).
void dequantize_int8_cuda(void* out, DType out_dtype, const int8_t* q, const QuantScale* scales, int64_t n,
                          int64_t k, int64_t group, cudaStream_t stream);
}  // namespace llama_tp::kernels

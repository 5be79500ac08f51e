#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/quant_scale.h"
#include "runtime/dtype.h"

namespace llama_tp::kernels {
// Linear layers with int8 weights (kernels/quantize.h): out[m, n] = x[m, k] · wᵀ, w = q * scale,
// q [n, k] int8, scales [n, ceil(k / group)] (QuantScale, kernels/quant_scale.h), x and out f32, fp32 accumulation.

// Batch 1 (decode): gemv_int8_cuda in kernels/gemv_cuda.h.

// Prefill (m > 1): w is dequantized `tile_rows` rows at a time into `tile` (tile_rows * k
// elements of dtype, the compute dtype) and each tile multiplied by cuBLAS into its columns of
// out. x_w: x already converted to dtype (x itself for f32). The extra cost over a bf16 cuBLAS
// product is one pass that reads 1 and writes 2 bytes per weight (small next to the product
// once m is in the hundreds); the tile bounds the extra memory.
void gemm_int8_dequant_cublas(cublasHandle_t handle, float* out, const void* x_w, DType dtype, const int8_t* q,
                              const QuantScale* scales, int m, int n, int k, int group, void* tile, int tile_rows,
                              cudaStream_t stream);
}  // namespace llama_tp::kernels

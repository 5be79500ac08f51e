#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "runtime/dtype.h"

namespace llama_tp::kernels {
// Linear layers, out[m, n] = x[m, k] · w[n, k]ᵀ with w [out_features, in_features] in w_dtype
// (f32, f16 or bf16), x and out float32, fp32 accumulation.

// Batch 1 (decode) products are in kernels/gemv_cuda.h.

// m > 1 (prefill): cuBLAS with fp32 compute. x_w is x already converted to w_dtype (for f32
// weights, x itself); the handle's stream orders it with the other kernels.
void gemm_cublas(cublasHandle_t handle, float* out, const void* x_w, const void* w, DType w_dtype,
                 int m, int n, int k);
}  // namespace llama_tp::kernels

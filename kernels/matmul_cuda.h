#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "runtime/dtype.h"

namespace llama_tp::kernels {
// Linear layers, out[m, n] = x[m, k] · w[n, k]ᵀ with w [out_features, in_features] in w_dtype
// (f32, f16 or bf16), x and out float32, fp32 accumulation.

// Batch 1 (m = 1, decode): 1, 2, 4 or 8 warps per output row stream the weight row with 16-byte
// loads, 8 in flight per lane (when k and the pointers allow; else element by element). Bound by
// reading w once. warps_per_row 0 picks gemv_warps_per_row(n, k, w_dtype).
void gemv_cuda(float* out, const float* x, const void* w, DType w_dtype, int n, int k,
               cudaStream_t stream, int warps_per_row = 0);
// The gate/up product of a SwiGLU MLP fused with the activation, for one token: w13 holds 2 * ffn
// rows [gate | up] of k; out[i] = silu(gate_i · x) * (up_i · x) for i < ffn (the GEMV and
// swiglu_cuda in one pass, the gate_up vector never written).
void gemv_swiglu_cuda(float* out, const float* x, const void* w13, DType w_dtype, int ffn, int k,
                      cudaStream_t stream, int warps_per_row = 0);
// Warps per row for an [n, k] weight: more than one when n alone gives too few blocks to keep
// every SM streaming (tall-thin shapes, tensor-parallel shards).
int gemv_warps_per_row(int n, int k, DType w_dtype);

// m > 1 (prefill): cuBLAS with fp32 compute. x_w is x already converted to w_dtype (for f32
// weights, x itself); the handle's stream orders it with the other kernels.
void gemm_cublas(cublasHandle_t handle, float* out, const void* x_w, const void* w, DType w_dtype,
                 int m, int n, int k);
}  // namespace llama_tp::kernels

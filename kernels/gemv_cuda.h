#pragma once
// Batch-1 products (decode): out = w · x for one token, bound by reading w once. One kernel per
// linear layer, with the layer's neighbours folded in so that a decode step is a handful of
// kernels per transformer layer:
//   - in front, the residual add and the RMSNorm of a pre-norm sublayer (GemvInput::norm),
//   - behind, SwiGLU (gate/up) or RoPE plus the KV-cache write (q/k/v) (GemvEpilogue).
// Each warp takes a pair of rows (the two halves a SwiGLU or a RoPE rotation combines), so one
// read of x serves two rows; lanes stream the rows with 16-byte loads, a batch of them ahead of
// the arithmetic, the first (and a fused norm's weights, into shared memory) before the kernel
// waits for the one before it (programmatic dependent launch). int8 weights (groups of a
// multiple of 16) are summed as integer dot products, with x rounded to 16-bit integers per 16
// columns (kernels/gemv_int8_dot_cuda.h says why and how).
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/quant_scale.h"
#include "runtime/dtype.h"

namespace llama_tp::kernels {

// The weight [rows, k], row-major: f32, f16 or bf16, or i8 with f16 scales [rows, ceil(k / group)]
// (value = q * scale of its group of `group` columns).
struct GemvWeight {
  const void* data = nullptr;
  DType dtype = DType::BF16;
  const QuantScale* scales = nullptr;  // i8 only
  int group = 0;                  // i8 only
};

// The input vector [k]. Plain: x. With `norm`, x is a sublayer's residual stream and the product
// takes rmsnorm(v) * norm with v = x + delta (delta optional); x_out (optional, must not alias x
// or delta) receives v. x, delta and x_out are f32; norm is in norm_dtype.
struct GemvInput {
  const float* x = nullptr;
  const float* delta = nullptr;
  float* x_out = nullptr;
  const void* norm = nullptr;
  DType norm_dtype = DType::F32;
  float eps = 0.f;
};

enum class GemvEpilogue {
  Store,   // out[r] = w_r · x for r < n
  Swiglu,  // w holds 2n rows [gate | up]: out[i] = silu(gate_i · x) * (up_i · x) for i < n
  RopeKv,  // w is a fused [q | k | v] projection (n rows, see GemvRope): out gets the row with the
           // q and k heads rotated at the position, and k and v also go into the caches there
};

// Attention geometry of a RopeKv product. KV cache layout as kernels/attention_cuda.h.
struct GemvRope {
  void* k_cache = nullptr;
  void* v_cache = nullptr;
  DType cache_dtype = DType::BF16;
  int n_heads = 0, n_kv_heads = 0, head_dim = 0, max_seq = 0;
  int pos0 = 0;                      // the token's position, unless pos_dev (a device int) is given
  const int32_t* pos_dev = nullptr;
  const float* inv_freq = nullptr;   // [head_dim / 2] f32 on the device
};

// out: n floats (n = rows for Store and RopeKv, ffn for Swiglu). rope: RopeKv only.
// warps_per_row: 1, 2, 4, 8 or 16 warps share each row pair (0: gemv_warps_per_row).
// Launched with programmatic dependent launch where the GPU has it (kernels/common_cuda.h).
void gemv_cuda(float* out, const GemvInput& in, const GemvWeight& w, int n, int k, GemvEpilogue epilogue,
               const GemvRope* rope, cudaStream_t stream, int warps_per_row = 0);

// Whether the kernel keeps x in shared memory for a row length of k (the norm needs that);
// false only for very long rows.
bool gemv_stages_input(int k);

// Warps per row pair for n weight rows of k elements: more than one when the rows alone give too
// few blocks to keep every SM streaming (tall-thin shapes, tensor-parallel shards).
int gemv_warps_per_row(int n, int k, DType w_dtype);

// Plain forms (x as is, out = w · x): float weights, SwiGLU over [gate | up], int8 weights.
void gemv_cuda(float* out, const float* x, const void* w, DType w_dtype, int n, int k, cudaStream_t stream,
               int warps_per_row = 0);
void gemv_swiglu_cuda(float* out, const float* x, const void* w13, DType w_dtype, int ffn, int k,
                      cudaStream_t stream, int warps_per_row = 0);
void gemv_int8_cuda(float* out, const float* x, const int8_t* q, const QuantScale* scales, int n, int k, int group,
                    cudaStream_t stream);

}  // namespace llama_tp::kernels

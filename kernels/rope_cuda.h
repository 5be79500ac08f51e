#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "runtime/dtype.h"

namespace llama_tp::kernels {
// Rotary embedding (Hugging Face rotate-half) of the q and k heads of fused qkv rows, in place.
// Row t (row_stride floats) holds n_heads q heads then n_kv_heads k heads (then v, untouched);
// token t sits at position pos0 + t, or *pos_dev + t when pos_dev (a device int) is given. Within
// each head the pair (i, i + head_dim/2) is rotated by angle float(pos) * inv_freq[i] (inv_freq:
// head_dim/2 floats on the device, llama3 or other scaling already applied).
void rope_qk_cuda(float* qkv, int n_tokens, int n_heads, int n_kv_heads, int head_dim, int row_stride, int pos0,
                  const int32_t* pos_dev, const float* inv_freq, cudaStream_t stream);

// rope_qk_cuda, then the rotated k heads and the v heads of each row written to the caches
// ([n_kv_heads][max_seq][head_dim] in cache_dtype) at the token's position, in one kernel: the
// same values as rope_qk_cuda followed by kv_append_cuda.
void rope_kv_append_cuda(float* qkv, void* k_cache, void* v_cache, DType cache_dtype, int n_tokens, int n_heads,
                         int n_kv_heads, int head_dim, int row_stride, int pos0, const int32_t* pos_dev,
                         const float* inv_freq, int max_seq, cudaStream_t stream);
}  // namespace llama_tp::kernels

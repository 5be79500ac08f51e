#pragma once
#include <cuda_runtime.h>

namespace llama_tp::kernels {
// Rotary embedding (Hugging Face rotate-half) of the q and k heads of fused qkv rows, in place.
// Row t (row_stride floats) holds n_heads q heads then n_kv_heads k heads (then v, untouched);
// token t sits at position pos0 + t. Within each head the pair (i, i + head_dim/2) is rotated
// by angle float(pos) * inv_freq[i] (inv_freq: head_dim/2 floats on the device, llama3 or other
// scaling already applied).
void rope_qk_cuda(float* qkv, int n_tokens, int n_heads, int n_kv_heads, int head_dim,
                  int row_stride, int pos0, const float* inv_freq, cudaStream_t stream);
}  // namespace llama_tp::kernels

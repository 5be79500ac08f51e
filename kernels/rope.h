#pragma once
#include <cstdint>

namespace llama_tp::kernels {
// Rotary position embedding in Hugging Face's rotate-half convention: within each head the
// pair (i, i + head_dim/2) is rotated by angle positions[t] * inv_freq[i], i < head_dim/2.
// x holds n_tokens rows of row_stride floats; the heads to rotate are the n_heads * head_dim
// floats at the start of each row (pass x offset to the k part of a fused qkv row for k).
void rope_cpu(float* x, int n_tokens, int n_heads, int head_dim, int row_stride,
              const int32_t* positions, const float* inv_freq);
}  // namespace llama_tp::kernels

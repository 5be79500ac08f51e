#pragma once

namespace llama_tp::kernels {
// KV cache layout, per layer: [n_kv_heads][max_seq][head_dim] for K and for V.

// Copies n_tokens rows of k (or v) heads into the cache at positions pos0.. : row t of src
// holds n_kv_heads * head_dim floats at src + t * src_stride.
void kv_write_cpu(float* cache, const float* src, int n_tokens, int n_kv_heads, int head_dim,
                  int src_stride, int pos0, int max_seq);

// Causal GQA attention. Query token t (row t of q, stride q_stride, n_heads * head_dim floats)
// sits at position pos0 + t and attends to cache positions 0 ..= pos0 + t. Query head h reads
// kv head h / (n_heads / n_kv_heads). Scores are scaled by 1/sqrt(head_dim).
// out is [n_tokens, n_heads * head_dim].
void attention_cpu(float* out, const float* q, int q_stride, const float* k_cache,
                   const float* v_cache, int n_tokens, int n_heads, int n_kv_heads, int head_dim,
                   int pos0, int max_seq);
}  // namespace llama_tp::kernels

#pragma once
// Causal GQA attention for many query tokens (prefill), on tensor cores. Same arguments and
// result as attention_cuda (kernels/attention_cuda.h), two ways to compute it:
//
//  - Cublas: per pass over a block of query tokens, for every kv head g at once (strided-batched
//    GEMMs): Q_g = the group's query heads laid out [token][head][head_dim] in the cache dtype,
//    S_g = Q_g·K_gᵀ / sqrt(head_dim) in float32 over the keys 0 .. last token of the pass, a
//    causal softmax that writes P_g in the cache dtype (zeros past each row's last key), O_g =
//    P_g·V_g in float32, scattered back to [token, n_heads * head_dim]. Any head_dim and cache
//    dtype (f32 caches stay exact fp32). Needs a workspace (S, P), which bounds the tokens per pass.
//  - Flash: one fused kernel (mma.sync m16n8k16, fp32 accumulation and online softmax in
//    registers, K/V tiles double-buffered with cp.async), no workspace. f16/bf16 caches, head_dim
//    64 or 128, 16-byte aligned q, k/v caches and out.
//
// Both round q and the probabilities to the cache dtype before the products (as every tensor-
// core attention does), so for f16/bf16 caches the result is not bit-close to the fp32 kernel.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>

#include "kernels/attention_cuda.h"

namespace llama_tp::kernels {

enum class PrefillAttentionAlgo {
  Auto,    // Flash where it applies and fills the GPU, else Cublas (LLAMA_TP_PREFILL_ATTENTION overrides)
  Cublas,
  Flash,
};

// Calls with fewer query tokens go to attention_cuda (its split-K kernels suit them better).
inline constexpr int kPrefillAttentionMinTokens = 16;
// Default bound on the Cublas path's workspace; query tokens are split into passes to fit it.
inline constexpr size_t kPrefillAttentionMaxWorkspace = size_t(512) << 20;

// Whether a backend should send this call to attention_prefill_cuda: n_tokens >= 16, unless the
// environment variable LLAMA_TP_PREFILL_ATTENTION=split keeps every call on attention_cuda
// (=cublas or =flash force that algorithm where Auto is asked for; for measurements).
bool attention_prefill_applies(const AttentionArgs& args);
// Whether the Flash kernel takes these arguments (dtype, head_dim, alignment).
bool attention_prefill_flash_supported(const AttentionArgs& args);
// The algorithm Auto stands for with these arguments (never Auto).
PrefillAttentionAlgo attention_prefill_resolve(const AttentionArgs& args, PrefillAttentionAlgo algo);

// Workspace bytes the call wants: 0 for Flash; for Cublas enough for all tokens in one pass, or
// for as many as fit max_bytes (at least one token's worth, whatever max_bytes says).
size_t attention_prefill_workspace_bytes(const AttentionArgs& args,
                                         PrefillAttentionAlgo algo = PrefillAttentionAlgo::Auto,
                                         size_t max_bytes = kPrefillAttentionMaxWorkspace);

// Queues the attention on stream (cublas must be bound to the same stream). workspace holds
// workspace_bytes bytes (any amount from attention_prefill_workspace_bytes(args, algo, small) up:
// the Cublas path takes as many query tokens per pass as fit). Flash asked for where it does not
// apply is an error.
void attention_prefill_cuda(const AttentionArgs& args, PrefillAttentionAlgo algo, cublasHandle_t cublas,
                            void* workspace, size_t workspace_bytes, cudaStream_t stream);

}  // namespace llama_tp::kernels

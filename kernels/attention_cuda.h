#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "runtime/dtype.h"

namespace llama_tp::kernels {
// KV cache layout, per layer: [n_kv_heads][max_seq][head_dim] for K and for V, in cache_dtype
// (f32, f16 or bf16). qkv rows (row_stride floats) hold [q (n_heads heads) | k | v (n_kv_heads
// heads each)], as in kernels/attention.h.

// Writes the k and v heads of n_tokens qkv rows into the caches at positions pos0.. (or
// *pos_dev.. when pos_dev, a device int, is given).
void kv_append_cuda(void* k_cache, void* v_cache, DType cache_dtype, const float* qkv, int row_stride,
                    int n_tokens, int n_heads, int n_kv_heads, int head_dim, int pos0, const int32_t* pos_dev,
                    int max_seq, cudaStream_t stream);

struct AttentionArgs {
  float* out;        // [n_tokens, n_heads * head_dim]
  const float* q;    // q part of row t at q + t * q_stride
  int q_stride;
  const void* k_cache;
  const void* v_cache;
  DType cache_dtype;
  int n_tokens, n_heads, n_kv_heads, head_dim;
  int pos0;          // query token t sits at pos0 + t and sees cache positions 0 ..= pos0 + t
  int max_seq;
  // Optional: read pos0 from this device int instead (graph replays). The launch then covers
  // max_seq keys whatever the position; blocks past it exit early.
  const int32_t* pos_dev = nullptr;
  // n_kv_heads counters in device memory, zero before the call and left zero: they let the last
  // block of each kv head combine the key splits of a one-token call (no second kernel). Without
  // them one-token calls take the general kernel.
  unsigned* split_counters = nullptr;
};

// Causal GQA attention. One token (decode): a kernel that streams each kv head's K and V once
// with 16-byte loads for all the query heads sharing it, split over key chunks (flash-decoding),
// the last block of each kv head combining the splits. Otherwise (prefill, and decode shapes the
// decode kernel does not take) a general kernel: each block takes the query heads of one kv
// head for a few consecutive tokens (so K/V tiles are read once for all of them) over one slice
// of the keys; when that leaves the GPU short of blocks the keys are split across blocks and a
// second kernel combines the partial softmaxes.
// workspace: attention_workspace_bytes(args) bytes of device memory (may be 0 bytes / null).
size_t attention_workspace_bytes(const AttentionArgs& args);
// How a one-token call runs (tests, notes): its splits of the keys and blocks a thread block
// cluster (1: none), and the clusters resident at once where that was asked; all 0 where the
// general kernel takes it.
struct DecodeLaunch {
  int splits = 0, cluster = 0, resident_clusters = 0;
};
DecodeLaunch attention_decode_launch(const AttentionArgs& args);
void attention_cuda(const AttentionArgs& args, void* workspace, cudaStream_t stream);
}  // namespace llama_tp::kernels

#include "runtime/kv_cache.h"

namespace llama_tp {

KvCache::KvCache(Backend& backend, int n_layers, int n_kv_heads, int max_seq, int head_dim) : max_seq_(max_seq) {
  for (int l = 0; l < n_layers; ++l) {
    k_.push_back(backend.alloc({n_kv_heads, max_seq, head_dim}, backend.kv_dtype()));
    v_.push_back(backend.alloc({n_kv_heads, max_seq, head_dim}, backend.kv_dtype()));
  }
}

size_t KvCache::nbytes() const {
  size_t n = 0;
  for (const Tensor& t : k_) n += t.nbytes();
  for (const Tensor& t : v_) n += t.nbytes();
  return n;
}

size_t KvCache::bytes_for(int n_layers, int n_kv_heads, int max_seq, int head_dim, DType dtype) {
  return 2 * size_t(n_layers) * n_kv_heads * max_seq * head_dim * dtype_size(dtype);
}

}  // namespace llama_tp

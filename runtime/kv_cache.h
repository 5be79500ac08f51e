#pragma once
// The KV cache of one rank: for every layer, K and V of this rank's kv heads,
// laid out [n_kv_heads_local][max_seq][head_dim] so one head's history is contiguous.
#include <vector>

#include "runtime/backend.h"

namespace llama_tp {

class KvCache {
 public:
  KvCache() = default;
  KvCache(Backend& backend, int n_layers, int n_kv_heads, int max_seq, int head_dim);

  Tensor& k(int layer) { return k_[layer]; }
  Tensor& v(int layer) { return v_[layer]; }
  int max_seq() const { return max_seq_; }
  size_t nbytes() const;
  // Bytes a cache of this geometry takes, for memory planning before allocation.
  static size_t bytes_for(int n_layers, int n_kv_heads, int max_seq, int head_dim, DType dtype);

 private:
  std::vector<Tensor> k_, v_;
  int max_seq_ = 0;
};

}  // namespace llama_tp

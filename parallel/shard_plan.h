#pragma once
// ShardPlan: which slice of every sharded weight one rank holds (Megatron-LM's scheme; see
// DESIGN.md). Query heads are split evenly (the world size must divide n_heads). KV heads are
// split evenly when the world size divides n_kv_heads; when it is a multiple of n_kv_heads each
// rank keeps a copy of the one kv head its query heads use. ffn rows (intermediate_size) and
// vocab rows need not divide: the first (n % world) ranks get one extra row, so shards differ
// by at most one row. Any other combination is refused with the sizes that would work.
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/config.h"

namespace llama_tp {

// Rows [begin, begin + count) of a dimension.
struct Range {
  int64_t begin = 0, count = 0;
  int64_t end() const { return begin + count; }
};

// Even split of n rows over `world` ranks, the first (n % world) ranks one row larger.
Range split_rows(int64_t n, int world, int rank);

struct ShardPlan {
  int rank = 0, world = 1;
  int64_t n_heads_local = 0;     // query heads of this rank: [q_head_begin, + n_heads_local)
  int64_t n_kv_heads_local = 0;  // kv heads of this rank: [kv_head_begin, + n_kv_heads_local)
  int64_t q_head_begin = 0;
  int64_t kv_head_begin = 0;
  bool kv_replicated = false;  // other ranks hold copies of the same kv head
  Range ffn;                   // rows of gate/up (W1, W3), columns of down (W2)
  Range vocab;                 // rows of lm_head, i.e. this rank's slice of the logits
  std::vector<Range> vocab_by_rank;  // every rank's vocab slice (for gathering logits on rank 0)

  // Throws an Error naming the numbers when this world size cannot shard the model.
  static ShardPlan make(const ModelConfig& c, int world, int rank);
  // "rank 1 of 4: query heads [8, 16), kv heads [2, 4), ffn rows [3584, 7168), vocab rows [32064, 64128)"
  std::string describe() const;
};

// The tensor-parallel sizes that can shard these heads, ascending ("1, 2, 4, 8").
std::vector<int> workable_world_sizes(int64_t n_heads, int64_t n_kv_heads);

}  // namespace llama_tp

#include "parallel/shard_plan.h"

#include <algorithm>
#include <sstream>

#include "runtime/error.h"

namespace llama_tp {

namespace {

bool heads_fit(int64_t n_heads, int64_t n_kv_heads, int64_t world) {
  return n_heads % world == 0 && (n_kv_heads % world == 0 || world % n_kv_heads == 0);
}

std::string join(const std::vector<int>& values) {
  std::ostringstream os;
  for (size_t i = 0; i < values.size(); ++i) os << (i ? ", " : "") << values[i];
  return os.str();
}

std::string range_text(Range r) { return detail::concat("[", r.begin, ", ", r.end(), ")"); }

}  // namespace

Range split_rows(int64_t n, int world, int rank) {
  int64_t base = n / world, extra = n % world;
  return Range{rank * base + std::min<int64_t>(rank, extra), base + (rank < extra ? 1 : 0)};
}

std::vector<int> workable_world_sizes(int64_t n_heads, int64_t n_kv_heads) {
  std::vector<int> sizes;
  for (int64_t w = 1; w <= n_heads; ++w)
    if (heads_fit(n_heads, n_kv_heads, w)) sizes.push_back(int(w));
  return sizes;
}

ShardPlan ShardPlan::make(const ModelConfig& c, int world, int rank) {
  LLAMA_TP_CHECK(world >= 1, "tensor parallel size must be at least 1, got ", world);
  LLAMA_TP_CHECK(rank >= 0 && rank < world, "rank ", rank, " is outside a tensor parallel world of ", world);
  LLAMA_TP_CHECK(c.n_heads > 0 && c.n_kv_heads > 0 && c.n_heads % c.n_kv_heads == 0, "the config's ", c.n_heads,
                 " query heads / ", c.n_kv_heads, " kv heads are not a whole number of query heads per kv head");
  if (!heads_fit(c.n_heads, c.n_kv_heads, world)) {
    std::string sizes = join(workable_world_sizes(c.n_heads, c.n_kv_heads));
    if (c.n_heads % world != 0)
      LLAMA_TP_FAIL("tensor parallel size ", world, " does not divide ", c.n_heads, " query heads / ", c.n_kv_heads,
                    " kv heads; sizes that work: ", sizes);
    LLAMA_TP_FAIL("tensor parallel size ", world, " neither divides nor is a multiple of the ", c.n_kv_heads,
                  " kv heads (", c.n_heads, " query heads / ", c.n_kv_heads, " kv heads); sizes that work: ", sizes);
  }
  LLAMA_TP_CHECK(world <= c.ffn_dim, "tensor parallel size ", world, " is larger than the ffn size ", c.ffn_dim,
                 "; every rank needs at least one ffn row");
  LLAMA_TP_CHECK(world <= c.vocab_size, "tensor parallel size ", world, " is larger than the vocabulary of ",
                 c.vocab_size, "; every rank needs at least one vocab row");

  ShardPlan p;
  p.rank = rank;
  p.world = world;
  p.n_heads_local = c.n_heads / world;
  p.q_head_begin = rank * p.n_heads_local;
  if (c.n_kv_heads % world == 0) {
    p.n_kv_heads_local = c.n_kv_heads / world;
    p.kv_head_begin = rank * p.n_kv_heads_local;
  } else {
    // world is a multiple of n_kv_heads, so this rank's query heads all share one kv head.
    p.n_kv_heads_local = 1;
    p.kv_head_begin = p.q_head_begin / (c.n_heads / c.n_kv_heads);
    p.kv_replicated = true;
  }
  p.ffn = split_rows(c.ffn_dim, world, rank);
  for (int r = 0; r < world; ++r) p.vocab_by_rank.push_back(split_rows(c.vocab_size, world, r));
  p.vocab = p.vocab_by_rank[rank];
  return p;
}

std::string ShardPlan::describe() const {
  return detail::concat("rank ", rank, " of ", world, ": query heads ", range_text({q_head_begin, n_heads_local}),
                        ", kv heads ", range_text({kv_head_begin, n_kv_heads_local}),
                        kv_replicated ? " (replicated)" : "", ", ffn rows ", range_text(ffn), ", vocab rows ",
                        range_text(vocab));
}

}  // namespace llama_tp

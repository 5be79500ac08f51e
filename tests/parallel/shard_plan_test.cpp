#include "parallel/shard_plan.h"

#include <gtest/gtest.h>

#include <numeric>

#include "runtime/error.h"

namespace llama_tp {
namespace {

ModelConfig heads(int64_t n_heads, int64_t n_kv_heads, int64_t ffn_dim, int64_t vocab_size) {
  ModelConfig c;
  c.n_heads = n_heads;
  c.n_kv_heads = n_kv_heads;
  c.ffn_dim = ffn_dim;
  c.vocab_size = vocab_size;
  c.dim = n_heads * 128;
  c.head_dim = 128;
  return c;
}

const ModelConfig kLlama3_8B = heads(32, 8, 14336, 128256);
const ModelConfig kLlama3_70B = heads(64, 8, 28672, 128256);
const ModelConfig kTinyGqa = heads(8, 2, 172, 512);

// Every query head is owned exactly once, and each rank's kv heads are the ones its query heads
// read (query head h uses kv head h / group).
void expect_heads_consistent(const ModelConfig& c, int world) {
  int64_t group = c.n_heads / c.n_kv_heads;
  std::vector<int> q_owner(c.n_heads, 0), kv_owner(c.n_kv_heads, 0);
  for (int rank = 0; rank < world; ++rank) {
    ShardPlan p = ShardPlan::make(c, world, rank);
    EXPECT_EQ(p.n_heads_local * world, c.n_heads);
    for (int64_t h = p.q_head_begin; h < p.q_head_begin + p.n_heads_local; ++h) {
      ++q_owner[h];
      EXPECT_GE(h / group, p.kv_head_begin) << p.describe();
      EXPECT_LT(h / group, p.kv_head_begin + p.n_kv_heads_local) << p.describe();
    }
    for (int64_t k = p.kv_head_begin; k < p.kv_head_begin + p.n_kv_heads_local; ++k) ++kv_owner[k];
    EXPECT_EQ(p.kv_replicated, world > c.n_kv_heads);
  }
  for (int n : q_owner) EXPECT_EQ(n, 1);
  // Split kv heads are owned once; replicated ones by world / n_kv_heads ranks each.
  int copies = world > c.n_kv_heads ? int(world / c.n_kv_heads) : 1;
  for (int n : kv_owner) EXPECT_EQ(n, copies);
}

// The ranges of all ranks tile [0, n) in rank order and differ by at most one row.
void expect_tiles(const std::vector<Range>& ranges, int64_t n) {
  int64_t next = 0, smallest = n, largest = 0;
  for (const Range& r : ranges) {
    EXPECT_EQ(r.begin, next);
    next = r.end();
    smallest = std::min(smallest, r.count);
    largest = std::max(largest, r.count);
  }
  EXPECT_EQ(next, n);
  EXPECT_LE(largest - smallest, 1);
}

void expect_rows_tile(const ModelConfig& c, int world) {
  std::vector<Range> ffn;
  for (int rank = 0; rank < world; ++rank) {
    ShardPlan p = ShardPlan::make(c, world, rank);
    ffn.push_back(p.ffn);
    EXPECT_EQ(p.vocab_by_rank.size(), size_t(world));
    EXPECT_EQ(p.vocab.begin, p.vocab_by_rank[rank].begin);
    EXPECT_EQ(p.vocab.count, p.vocab_by_rank[rank].count);
    expect_tiles(p.vocab_by_rank, c.vocab_size);
  }
  expect_tiles(ffn, c.ffn_dim);
}

std::string error_of(const ModelConfig& c, int world) {
  try {
    ShardPlan::make(c, world, 0);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ShardPlan, Llama3_8BSplitsAndReplicatesKvHeads) {
  for (int world : {1, 2, 4, 8, 16, 32}) {
    SCOPED_TRACE("world " + std::to_string(world));
    expect_heads_consistent(kLlama3_8B, world);
    expect_rows_tile(kLlama3_8B, world);
  }
  ShardPlan p = ShardPlan::make(kLlama3_8B, 4, 1);
  EXPECT_EQ(p.n_heads_local, 8);
  EXPECT_EQ(p.q_head_begin, 8);
  EXPECT_EQ(p.n_kv_heads_local, 2);
  EXPECT_EQ(p.kv_head_begin, 2);
  EXPECT_FALSE(p.kv_replicated);
  EXPECT_EQ(p.ffn.begin, 3584);
  EXPECT_EQ(p.ffn.count, 3584);
  EXPECT_EQ(p.describe(),
            "rank 1 of 4: query heads [8, 16), kv heads [2, 4), ffn rows [3584, 7168), vocab rows [32064, 64128)");
}

TEST(ShardPlan, Llama3_8BAt16And32RanksSharesKvHeads) {
  ShardPlan p16 = ShardPlan::make(kLlama3_8B, 16, 5);  // query heads 10, 11 -> kv head 2
  EXPECT_EQ(p16.n_heads_local, 2);
  EXPECT_EQ(p16.q_head_begin, 10);
  EXPECT_EQ(p16.n_kv_heads_local, 1);
  EXPECT_EQ(p16.kv_head_begin, 2);
  EXPECT_TRUE(p16.kv_replicated);
  ShardPlan p32 = ShardPlan::make(kLlama3_8B, 32, 31);  // query head 31 -> kv head 7
  EXPECT_EQ(p32.kv_head_begin, 7);
  EXPECT_NE(p32.describe().find("(replicated)"), std::string::npos);
}

TEST(ShardPlan, Llama3_70B) {
  for (int world : {1, 2, 4, 8, 16, 32, 64}) {
    SCOPED_TRACE("world " + std::to_string(world));
    expect_heads_consistent(kLlama3_70B, world);
    expect_rows_tile(kLlama3_70B, world);
  }
  ShardPlan p = ShardPlan::make(kLlama3_70B, 8, 3);
  EXPECT_EQ(p.n_heads_local, 8);
  EXPECT_EQ(p.n_kv_heads_local, 1);
  EXPECT_EQ(p.kv_head_begin, 3);
  EXPECT_FALSE(p.kv_replicated);
}

TEST(ShardPlan, TinyGqaAt4RanksReplicatesKvHeads) {
  expect_heads_consistent(kTinyGqa, 4);
  expect_rows_tile(kTinyGqa, 4);
  std::vector<int64_t> kv_of_rank;
  for (int rank = 0; rank < 4; ++rank) kv_of_rank.push_back(ShardPlan::make(kTinyGqa, 4, rank).kv_head_begin);
  EXPECT_EQ(kv_of_rank, (std::vector<int64_t>{0, 0, 1, 1}));
}

TEST(ShardPlan, RefusesSizesThatDoNotDivideTheHeads) {
  EXPECT_EQ(error_of(kLlama3_8B, 3),
            "tensor parallel size 3 does not divide 32 query heads / 8 kv heads; sizes that work: 1, 2, 4, 8, 16, 32");
  EXPECT_EQ(error_of(kLlama3_8B, 5),
            "tensor parallel size 5 does not divide 32 query heads / 8 kv heads; sizes that work: 1, 2, 4, 8, 16, 32");
  EXPECT_NE(error_of(kLlama3_8B, 64).find("does not divide 32 query heads"), std::string::npos);
  EXPECT_NE(error_of(kTinyGqa, 3).find("sizes that work: 1, 2, 4, 8"), std::string::npos);
}

TEST(ShardPlan, RefusesSizesThatNeitherDivideNorMultiplyKvHeads) {
  // 6 divides the 12 query heads but neither divides nor is a multiple of the 4 kv heads.
  std::string message = error_of(heads(12, 4, 100, 100), 6);
  EXPECT_NE(message.find("tensor parallel size 6"), std::string::npos) << message;
  EXPECT_NE(message.find("12 query heads / 4 kv heads"), std::string::npos) << message;
  EXPECT_NE(message.find("sizes that work: 1, 2, 4, 12"), std::string::npos) << message;
}

TEST(ShardPlan, UnevenFfnAndVocabGiveFirstRanksOneMoreRow) {
  ModelConfig c = heads(8, 8, 1001, 32003);
  for (int world : {1, 2, 4, 8}) {
    SCOPED_TRACE("world " + std::to_string(world));
    expect_rows_tile(c, world);
  }
  ShardPlan last = ShardPlan::make(c, 4, 3);
  EXPECT_EQ(last.ffn.begin, 751);  // 251 + 250 + 250
  EXPECT_EQ(last.ffn.count, 250);
  EXPECT_EQ(ShardPlan::make(c, 4, 0).vocab.count, 8001);
  EXPECT_EQ(last.vocab.count, 8000);
  int64_t vocab_total = 0;
  for (const Range& r : last.vocab_by_rank) vocab_total += r.count;
  EXPECT_EQ(vocab_total, 32003);
}

TEST(ShardPlan, RefusesWorldsLargerThanFfnOrVocab) {
  EXPECT_NE(error_of(heads(8, 8, 4, 100), 8).find("larger than the ffn size 4"), std::string::npos);
  EXPECT_NE(error_of(heads(8, 8, 100, 4), 8).find("larger than the vocabulary of 4"), std::string::npos);
}

TEST(ShardPlan, RefusesBadRankAndHeadCounts) {
  EXPECT_THROW(ShardPlan::make(kLlama3_8B, 4, 4), Error);
  EXPECT_THROW(ShardPlan::make(kLlama3_8B, 0, 0), Error);
  EXPECT_THROW(ShardPlan::make(heads(32, 6, 100, 100), 1, 0), Error);
}

TEST(ShardPlan, WorkableWorldSizes) {
  EXPECT_EQ(workable_world_sizes(32, 8), (std::vector<int>{1, 2, 4, 8, 16, 32}));
  EXPECT_EQ(workable_world_sizes(12, 4), (std::vector<int>{1, 2, 4, 12}));
  EXPECT_EQ(workable_world_sizes(14, 2), (std::vector<int>{1, 2, 14}));
}

}  // namespace
}  // namespace llama_tp

// The per-rank memory plan: size parsing, the arithmetic against what loading really allocates,
// Llama-3-70B at tp 4 in int8 within a 24 GiB card, and the "does not fit" advice.
#include <gtest/gtest.h>

#include <cstring>

#include "parallel/single_communicator.h"
#include "launch/memory_plan.h"
#include "parallel/shard_plan.h"
#include "runtime/dummy_weights.h"
#include "runtime/error.h"
#include "runtime/kv_cache.h"
#include "runtime/model.h"
#include "test_util.h"

namespace llama_tp {
namespace {

constexpr size_t GiB = size_t(1) << 30, MiB = size_t(1) << 20;

TEST(ByteSize, ParsesBinaryAndDecimalUnits) {
  EXPECT_EQ(parse_byte_size("24GiB", "x"), 24 * GiB);
  EXPECT_EQ(parse_byte_size("24 GiB", "x"), 24 * GiB);
  EXPECT_EQ(parse_byte_size("24g", "x"), 24 * GiB);
  EXPECT_EQ(parse_byte_size("1.5GB", "x"), size_t(1500000000));
  EXPECT_EQ(parse_byte_size("800MiB", "x"), 800 * MiB);
  EXPECT_EQ(parse_byte_size("800M", "x"), 800 * MiB);
  EXPECT_EQ(parse_byte_size("1.5GiB", "x"), GiB + GiB / 2);
  EXPECT_EQ(parse_byte_size("4096", "x"), size_t(4096));
  EXPECT_EQ(parse_byte_size("64KB", "x"), size_t(64000));
  EXPECT_EQ(parse_byte_size("2TiB", "x"), 2048 * GiB);
  for (const char* bad : {"", "GiB", "24 GiBs", "-5GiB", "0", "1e9", "24 XB", "1.2.3G"}) {
    EXPECT_THROW(parse_byte_size(bad, "--gpu-memory-limit"), Error) << bad;
  }
  try {
    parse_byte_size("24 XB", "--gpu-memory-limit");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--gpu-memory-limit"), std::string::npos) << e.what();
  }
}

TEST(ByteSize, Formats) {
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(800 * MiB), "800.0 MiB");
  EXPECT_EQ(format_bytes(24 * GiB), "24.00 GiB");
}

MemoryPlanInputs cuda_inputs(const std::string& shape, int world, int rank, bool int8, int ctx) {
  MemoryPlanInputs in;
  in.config = *named_model_shape(shape);
  in.world = world;
  in.rank = rank;
  in.device = Device::CUDA;
  in.checkpoint_dtype = in.weight_dtype = in.kv_dtype = DType::BF16;
  in.quant = int8 ? QuantSpec::int8_groups() : QuantSpec::none();
  in.ctx = ctx;
  in.batch_tokens = 512;
  return in;
}

TEST(MemoryPlan, Llama3_70bAtTp4InInt8FitsA24GiBCard) {
  for (int rank = 0; rank < 4; ++rank) {
    MemoryPlan plan = plan_memory(cuda_inputs("llama3-70b", 4, rank, true, 4096));
    plan.available = 24 * GiB;
    plan.available_from = "--gpu-memory-limit 24.00 GiB";
    EXPECT_TRUE(plan.fits()) << plan.describe();
    // ~70.6e9 linear weights / 4 in int8 (+1.6% f16 scales) and the replicated bf16 embedding (2 GiB).
    EXPECT_GT(plan.weights, 18 * GiB) << plan.describe();
    EXPECT_LT(plan.weights, 19 * GiB) << plan.describe();
    // 80 layers x 2 (K, V) x 2 kv heads x 4096 positions x 128 x 2 bytes.
    EXPECT_EQ(plan.kv_cache, size_t(80) * 2 * 2 * 4096 * 128 * 2);
    EXPECT_LT(plan.activations + plan.workspace, 1 * GiB) << plan.describe();
    EXPECT_NO_THROW(require_fits(plan));
    if (rank == 0) std::cout << "[ plan ] llama3-70b tp 4 int8 ctx 4096, rank 0: " << plan.describe() << "\n";
  }
}

TEST(MemoryPlan, Llama3_70bInBf16DoesNotFitAndTheErrorSaysWhatWould) {
  MemoryPlan plan = plan_memory(cuda_inputs("llama3-70b", 4, 0, false, 4096));
  plan.available = 24 * GiB;
  plan.available_from = "--gpu-memory-limit 24.00 GiB";
  EXPECT_FALSE(plan.fits());
  try {
    require_fits(plan);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    std::cout << "[ plan ] " << msg << "\n";
    for (const char* want : {"its share of the model (tp 4) needs", "24.00 GiB is available (--gpu-memory-limit 24.00 GiB)", "weights",
                             "KV cache", "4096 positions", "--quant int8 (", "8 ranks ("})
      EXPECT_NE(msg.find(want), std::string::npos) << "missing '" << want << "' in: " << msg;
    EXPECT_EQ(msg.find("--ctx-size"), std::string::npos) << "no context helps when the weights alone do not fit";
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line";
  }
}

TEST(MemoryPlan, SuggestsTheLargestContextThatFits) {
  MemoryPlanInputs in = cuda_inputs("llama3-8b", 1, 0, true, 65536);
  MemoryPlan at_10k = plan_memory([&] {
    MemoryPlanInputs t = in;
    t.ctx = 10000;
    return t;
  }());
  EXPECT_EQ(largest_fitting_context(in, at_10k.peak()), 10000);
  EXPECT_EQ(largest_fitting_context(in, at_10k.peak() - 1), 9999);
  EXPECT_EQ(largest_fitting_context(in, 1 * MiB), 0);
  MemoryPlan plan = plan_memory(in);
  plan.available = at_10k.peak();
  plan.available_from = "test";
  try {
    require_fits(plan);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--ctx-size 10000 (the largest context that fits)"), std::string::npos)
        << e.what();
  }
}

// The plan's weight and KV bytes are what loading really allocates (CPU backend, every rank of
// a tp 2 split, float and int8).
TEST(MemoryPlan, WeightAndCacheBytesMatchWhatIsLoaded) {
  for (const char* name : {"tiny-llama3", "tiny-llama2", "tiny-gqa-f32"}) {
    const std::string dir = test::shared_path(std::string("models/") + name);
    if (dir.empty()) GTEST_SKIP() << "reference model " << name << " not found under " << test::shared_dir();
    Checkpoint ck = open_checkpoint(dir);
    auto backend = make_cpu_backend();
    for (QuantSpec quant : {QuantSpec::none(), QuantSpec::int8_groups(128), QuantSpec::int8_groups(0)})
      for (int rank = 0; rank < 2; ++rank) {
        MemoryPlanInputs in;
        in.config = ck.config;
        in.world = 2;
        in.rank = rank;
        in.device = Device::CPU;
        in.checkpoint_dtype = ck.config.dtype;
        in.quant = quant;
        in.ctx = 100;
        const MemoryPlan plan = plan_memory(in);
        const ShardPlan shard = ShardPlan::make(ck.config, 2, rank);
        const ModelWeights w = load_weights(ck.config, shard, *ck.weights, *backend, quant);
        EXPECT_EQ(plan.weights, w.nbytes()) << name << " rank " << rank << " " << quant.describe();
        SingleCommunicator comm;
        Model model(ck.config, shard, w, *backend, comm, 100);
        EXPECT_EQ(plan.kv_cache, model.kv_cache().nbytes()) << name;
      }
  }
}

}  // namespace
}  // namespace llama_tp

// --quant int8 and the memory plan through the executable: the CPU backend alone and under
// mpirun -np 2 (each rank quantizes its own shard) against Hugging Face's logits; the plan of
// every rank with --verbose and in bench JSON; --quant auto on a llama2.c version 2 file.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "test_util.h"

namespace llama_tp {
namespace {

std::string model_dir(const std::string& name) { return test::shared_path("models/" + name); }

#define REQUIRE_MODEL(name) \
  if (model_dir(name).empty()) GTEST_SKIP() << "reference model " << name << " not found under " << test::shared_dir()

int count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t p = 0; (p = text.find(needle, p)) != std::string::npos; ++p) ++n;
  return n;
}

std::vector<float> read_floats(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

double mean_cosine(const std::vector<float>& a, const std::vector<float>& b, int64_t vocab) {
  const size_t rows = a.size() / size_t(vocab);
  double sum = 0;
  for (size_t r = 0; r < rows; ++r) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t i = 0; i < vocab; ++i) {
      const double x = a[r * vocab + i], y = b[r * vocab + i];
      ab += x * y, aa += x * x, bb += y * y;
    }
    sum += ab / std::sqrt(aa * bb);
  }
  return sum / double(rows);
}

class CliInt8 : public ::testing::TestWithParam<int> {};

// Each rank quantizes its own shard (row-parallel shards start their groups at the shard's
// first column), so np 1 and np 2 differ by rounding only; both stay close to transformers.
TEST_P(CliInt8, LogitsStayCloseToTransformersAndEveryRankPrintsItsPlan) {
  const int ranks = GetParam();
  REQUIRE_MODEL("tiny-llama3");
  std::ifstream rf(test::shared_path("models/tiny-llama3.reference.json"));
  const nlohmann::json ref = nlohmann::json::parse(rf);
  std::string ids;
  for (int id : ref["prompt_ids"].get<std::vector<int>>()) ids += (ids.empty() ? "" : ",") + std::to_string(id);
  const int64_t vocab = ref["logits_shape"][1].get<int64_t>();
  const std::string out = test::make_temp_dir("int8") + "/logits.f32";
  const std::string cmd = (ranks > 1 ? test::mpirun(ranks) : "") + test::llama_tp_binary() + " -m " +
                          model_dir("tiny-llama3") + " --backend cpu --quant int8 --verbose --prompt-ids " + ids +
                          " -n 2 --temp 0 --logits-out " + out;
  test::CommandResult r = test::run_command(cmd);
  ASSERT_EQ(r.exit_code, 0) << cmd << "\n" << r.errors;
  EXPECT_EQ(count(r.errors, "memory plan: peak"), ranks) << r.errors;
  for (int rank = 0; ranks > 1 && rank < ranks; ++rank)
    EXPECT_NE(r.errors.find("[rank " + std::to_string(rank) + "] memory plan: "), std::string::npos) << r.errors;
  EXPECT_NE(r.errors.find("linear layers int8 (groups of 128)"), std::string::npos) << r.errors;
  const std::vector<float> got = read_floats(out);
  const std::vector<float> want = read_floats(test::shared_path("models/tiny-llama3.logits.f32"));
  ASSERT_EQ(got.size(), want.size());
  EXPECT_GE(mean_cosine(got, want, vocab), 0.999);
}

INSTANTIATE_TEST_SUITE_P(Ranks, CliInt8, ::testing::Values(1, 2), [](const auto& info) {
  return "np" + std::to_string(info.param);
});

TEST(CliInt8Bench, JsonCarriesEveryRanksMemoryPlan) {
  REQUIRE_MODEL("tiny-gqa-f32");
  const std::string cmd = test::mpirun(2) + test::llama_tp_binary() + " bench -m " + model_dir("tiny-gqa-f32") +
                          " --backend cpu --comm mpi --quant int8 -p 8 -n 4 -r 1 --bandwidth 10 -o json";
  test::CommandResult r = test::run_command(cmd);
  ASSERT_EQ(r.exit_code, 0) << cmd << "\n" << r.errors;
  const nlohmann::json j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["quant"], "int8 (groups of 128)");
  EXPECT_EQ(j["dtype"], "i8/g128");
  ASSERT_EQ(j["memory_plan"].size(), 2u) << j.dump(2);
  for (int rank = 0; rank < 2; ++rank) {
    const nlohmann::json& p = j["memory_plan"][rank];
    EXPECT_EQ(p["rank"], rank);
    EXPECT_EQ(p["fits"], true);
    EXPECT_GT(p["weights_bytes"].get<size_t>(), 0u);
    EXPECT_EQ(p["peak_bytes"].get<size_t>(),
              p["weights_bytes"].get<size_t>() +
                  std::max(p["load_staging_bytes"].get<size_t>(),
                           p["kv_cache_bytes"].get<size_t>() + p["activations_bytes"].get<size_t>() +
                               p["workspace_bytes"].get<size_t>()));
  }
}

// A small llama2.c version 2 file (random int8 values and scales, group size 8): --quant auto
// keeps it int8 with the file's groups; --quant none serves it as float32.
TEST(CliInt8Llama2c, AutoKeepsAVersion2FileInt8) {
  const int32_t dim = 16, hidden = 24, layers = 2, heads = 2, kv_heads = 2, vocab = 32, seq = 16, group = 8;
  std::string bytes(256, '\0');
  const uint32_t magic = 0x616b3432;
  const int32_t version = 2, params[7] = {dim, hidden, layers, heads, kv_heads, vocab, seq};
  std::memcpy(bytes.data(), &magic, 4);
  std::memcpy(bytes.data() + 4, &version, 4);
  std::memcpy(bytes.data() + 8, params, 28);
  bytes[36] = 1;  // shared classifier
  std::memcpy(bytes.data() + 37, &group, 4);
  std::mt19937 rng(5);
  auto floats = [&](size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    for (size_t i = 0; i < n; ++i) {
      const float v = d(rng);
      bytes.append(reinterpret_cast<const char*>(&v), 4);
    }
  };
  auto q8 = [&](size_t numel) {
    std::uniform_int_distribution<int> d(-127, 127);
    for (size_t i = 0; i < numel; ++i) bytes.push_back(char(int8_t(d(rng))));
    floats(numel / group, 0.001f, 0.01f);
  };
  floats(size_t(2 * layers + 1) * dim, 0.9f, 1.1f);  // norms
  q8(size_t(vocab) * dim);
  for (size_t numel : {size_t(dim) * dim, size_t(dim) * dim, size_t(dim) * dim, size_t(dim) * dim, size_t(hidden) * dim,
                       size_t(dim) * hidden, size_t(hidden) * dim})
    for (int l = 0; l < layers; ++l) q8(numel);
  const std::string path = test::make_temp_dir("v2") + "/tiny-q80.bin";
  std::ofstream(path, std::ios::binary) << bytes;
  for (const char* quant : {"auto", "none"}) {
    const std::string cmd = test::llama_tp_binary() + " -m " + path + " --backend cpu --quant " + quant +
                            " --verbose --prompt-ids 1,2,3 -n 4 --temp 0 --ignore-eos";
    test::CommandResult r = test::run_command(cmd);
    ASSERT_EQ(r.exit_code, 0) << cmd << "\n" << r.errors;
    const bool int8 = std::string(quant) == "auto";
    EXPECT_EQ(r.errors.find("linear layers int8 (groups of 8)") != std::string::npos, int8) << r.errors;
  }
}

}  // namespace
}  // namespace llama_tp

// End-to-end: the llama_tp executable, alone and under `mpirun -np 2/4` on the CPU backend,
// against Hugging Face's logits and greedy tokens for every reference model.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace llama_tp {
namespace {

struct Reference {
  std::vector<int> prompt_ids, greedy_ids;
  std::vector<float> logits;
  int64_t vocab = 0;
};

Reference load_reference(const std::string& name) {
  Reference r;
  std::ifstream f(test::shared_path("models/" + name + ".reference.json"));
  nlohmann::json j = nlohmann::json::parse(f);
  r.prompt_ids = j["prompt_ids"].get<std::vector<int>>();
  r.greedy_ids = j["greedy_ids"].get<std::vector<int>>();
  r.vocab = j["logits_shape"][1].get<int64_t>();
  std::ifstream lf(test::shared_path("models/" + name + ".logits.f32"), std::ios::binary);
  r.logits.resize(r.prompt_ids.size() * r.vocab);
  lf.read(reinterpret_cast<char*>(r.logits.data()), std::streamsize(r.logits.size() * 4));
  return r;
}

std::string join(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s;
}

struct Case {
  std::string model;
  int ranks;
};

// Readable names in test listings instead of gtest's byte dump.
void PrintTo(const Case& c, std::ostream* os) { *os << c.model << " np" << c.ranks; }

class CliReference : public ::testing::TestWithParam<Case> {};

TEST_P(CliReference, GreedyIdsAndLogitsMatchTransformers) {
  const auto [name, ranks] = GetParam();
  const std::string dir = test::shared_path("models/" + name);
  if (dir.empty() || test::shared_path("models/" + name + ".reference.json").empty())
    GTEST_SKIP() << "reference model " << name << " not found under " << test::shared_dir() << "/models";
  Reference ref = load_reference(name);
  const std::string logits_file = test::make_temp_dir("logits") + "/logits.f32";
  std::string cmd = (ranks > 1 ? test::mpirun(ranks) : "") + test::llama_tp_binary() + " -m " + dir +
                    " --backend cpu --prompt-ids " + join(ref.prompt_ids) + " --temp 0 -n " +
                    std::to_string(ref.greedy_ids.size()) + " --json --logits-out " + logits_file;
  test::CommandResult r = test::run_command(cmd);
  ASSERT_EQ(r.exit_code, 0) << cmd << "\n" << r.errors;
  nlohmann::json j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["prompt_ids"].get<std::vector<int>>(), ref.prompt_ids);
  EXPECT_EQ(j["output_ids"].get<std::vector<int>>(), ref.greedy_ids);

  std::ifstream lf(logits_file, std::ios::binary);
  std::vector<float> got(ref.logits.size());
  lf.read(reinterpret_cast<char*>(got.data()), std::streamsize(got.size() * 4));
  ASSERT_TRUE(lf.good()) << "logits file too short";
  for (size_t t = 0; t < ref.prompt_ids.size(); ++t)
    EXPECT_LT(test::rel_error(&got[t * ref.vocab], &ref.logits[t * ref.vocab], ref.vocab), 1e-4) << "position " << t;
}

// tiny-llama3 has 4/2 heads and tiny-gqa-f32 8/2: at 4 ranks each rank keeps a copy of one kv head.
INSTANTIATE_TEST_SUITE_P(Models, CliReference,
                         ::testing::Values(Case{"tiny-llama3", 1}, Case{"tiny-llama3", 2}, Case{"tiny-llama3", 4},
                                           Case{"tiny-llama2", 1}, Case{"tiny-llama2", 2}, Case{"tiny-llama2", 4},
                                           Case{"tiny-gqa-f32", 1}, Case{"tiny-gqa-f32", 2}, Case{"tiny-gqa-f32", 4}),
                         [](const auto& info) {
                           std::string s = info.param.model + "_np" + std::to_string(info.param.ranks);
                           for (char& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

}  // namespace
}  // namespace llama_tp

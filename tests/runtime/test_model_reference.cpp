// The whole CPU engine against Hugging Face transformers' logits and greedy tokens for every
// reference model in ../shared/models.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "parallel/single_communicator.h"
#include "kernels/argmax.h"
#include "runtime/model.h"
#include "test_util.h"

namespace llama_tp {
namespace {

struct Reference {
  std::vector<int32_t> prompt_ids, greedy_ids;
  std::vector<float> logits;  // [positions, vocab]
  int64_t vocab = 0;
};

Reference load_reference(const std::string& name) {
  Reference r;
  std::ifstream f(test::shared_path("models/" + name + ".reference.json"));
  nlohmann::json j = nlohmann::json::parse(f);
  r.prompt_ids = j["prompt_ids"].get<std::vector<int32_t>>();
  r.greedy_ids = j["greedy_ids"].get<std::vector<int32_t>>();
  r.vocab = j["logits_shape"][1].get<int64_t>();
  std::ifstream lf(test::shared_path("models/" + name + ".logits.f32"), std::ios::binary);
  r.logits.resize(r.prompt_ids.size() * r.vocab);
  lf.read(reinterpret_cast<char*>(r.logits.data()), std::streamsize(r.logits.size() * 4));
  EXPECT_TRUE(lf.good());
  return r;
}

class ReferenceModel : public ::testing::TestWithParam<std::string> {};

TEST_P(ReferenceModel, CpuLogitsAndGreedyMatchTransformers) {
  const std::string name = GetParam();
  if (test::shared_path("models/" + name).empty() || test::shared_path("models/" + name + ".reference.json").empty())
    GTEST_SKIP() << "reference model " << name << " not found under " << test::shared_dir() << "/models";
  Reference ref = load_reference(name);
  Checkpoint ck = open_checkpoint(test::shared_path("models/" + name));
  auto backend = make_cpu_backend();
  SingleCommunicator comm;
  ShardPlan plan = ShardPlan::make(ck.config, 1, 0);
  const int n_prompt = int(ref.prompt_ids.size());
  // Small chunks so that the chunked prefill path is exercised too.
  Model model(ck.config, plan, load_weights(ck.config, plan, *ck.weights, *backend), *backend, comm,
              n_prompt + 40, /*max_batch_tokens=*/7);

  std::vector<float> logits = model.forward(ref.prompt_ids.data(), n_prompt, 0, true);
  ASSERT_EQ(logits.size(), ref.logits.size());
  for (int t = 0; t < n_prompt; ++t) {
    const float* got = &logits[size_t(t) * ref.vocab];
    const float* want = &ref.logits[size_t(t) * ref.vocab];
    EXPECT_LT(test::rel_error(got, want, ref.vocab), 1e-4) << name << " position " << t;
  }

  std::vector<int32_t> generated;
  int32_t next = kernels::argmax_cpu(&logits[size_t(n_prompt - 1) * ref.vocab], int(ref.vocab));
  for (size_t i = 0; i < ref.greedy_ids.size(); ++i) {
    generated.push_back(next);
    if (i + 1 == ref.greedy_ids.size()) break;
    std::vector<float> step = model.forward(&next, 1, n_prompt + int(i), false);
    next = kernels::argmax_cpu(step.data(), int(ref.vocab));
  }
  EXPECT_EQ(generated, ref.greedy_ids) << name;
}

INSTANTIATE_TEST_SUITE_P(SharedModels, ReferenceModel,
                         ::testing::Values("tiny-llama3", "tiny-llama2", "tiny-gqa-f32"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

}  // namespace
}  // namespace llama_tp

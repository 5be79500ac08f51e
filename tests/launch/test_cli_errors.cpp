// Bad input through the executable: each case must end with one "llama_tp: error:" line that
// names the problem and a non-zero exit, never a crash or a hang, on every rank.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "runtime/tensor.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace llama_tp {
namespace {

int count_error_lines(const std::string& text) {
  int n = 0;
  for (size_t p = 0; (p = text.find("llama_tp: error:", p)) != std::string::npos; ++p) ++n;
  return n;
}

std::string model_dir(const std::string& name) { return test::shared_path("models/" + name); }

// Copies a reference model folder to a fresh temp dir so a test can damage it.
std::string copy_model(const std::string& name) {
  std::string dst = test::make_temp_dir("model") + "/" + name;
  fs::copy(model_dir(name), dst, fs::copy_options::recursive);
  for (const auto& e : fs::directory_iterator(dst)) fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
  return dst;
}

void expect_clean_failure(const std::string& cmd, const std::string& needle, double max_seconds = 30) {
  test::CommandResult r = test::run_command(cmd);
  EXPECT_NE(r.exit_code, 0) << cmd;
  EXPECT_EQ(count_error_lines(r.errors), 1) << cmd << "\n" << r.errors;
  EXPECT_NE(r.errors.find(needle), std::string::npos) << "expected '" << needle << "' in:\n" << r.errors;
  EXPECT_LT(r.seconds, max_seconds) << cmd;
  EXPECT_EQ(r.errors.find("Segmentation"), std::string::npos) << r.errors;
}

#define REQUIRE_MODEL(name) \
  if (model_dir(name).empty()) GTEST_SKIP() << "reference model " << name << " not found under " << test::shared_dir()

TEST(CliErrors, PromptLongerThanContext) {
  REQUIRE_MODEL("tiny-gqa-f32");
  expect_clean_failure(test::llama_tp_binary() + " -m " + model_dir("tiny-gqa-f32") +
                           " --backend cpu --ctx-size 4 --prompt-ids 1,2,3,4,5,6 -n 2",
                       "context size is 4");
}

TEST(CliErrors, TokenIdOutsideVocabulary) {
  REQUIRE_MODEL("tiny-gqa-f32");
  expect_clean_failure(test::llama_tp_binary() + " -m " + model_dir("tiny-gqa-f32") + " --backend cpu --prompt-ids 1,512,3 -n 2",
                       "token id 512 at prompt position 1 is outside the vocabulary (0..511)");
}

TEST(CliErrors, NegativeTokenId) {
  REQUIRE_MODEL("tiny-gqa-f32");
  expect_clean_failure(test::llama_tp_binary() + " -m " + model_dir("tiny-gqa-f32") + " --backend cpu --prompt-ids 1,-7 -n 2",
                       "token id -7");
}

TEST(CliErrors, MissingModel) {
  expect_clean_failure(test::llama_tp_binary() + " -m /nonexistent/model -p hi", "/nonexistent/model");
}

TEST(CliErrors, BadOptionValue) {
  expect_clean_failure(test::llama_tp_binary() + " -m x --temp warm", "temp");
  expect_clean_failure(test::llama_tp_binary() + " -m x --backend tpu", "--backend must be auto, cpu or cuda");
}

TEST(CliErrors, TruncatedSafetensors) {
  REQUIRE_MODEL("tiny-gqa-f32");
  std::string dir = copy_model("tiny-gqa-f32");
  fs::resize_file(dir + "/model.safetensors", fs::file_size(dir + "/model.safetensors") / 2);
  expect_clean_failure(test::llama_tp_binary() + " -m " + dir + " --backend cpu --prompt-ids 1,2 -n 2", "model.safetensors");
}

TEST(CliErrors, ConfigMissingRequiredField) {
  REQUIRE_MODEL("tiny-gqa-f32");
  std::string dir = copy_model("tiny-gqa-f32");
  std::ifstream in(dir + "/config.json");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  size_t p = text.find("\"hidden_size\"");
  ASSERT_NE(p, std::string::npos);
  text.replace(p, text.find('\n', p) - p, "");
  std::ofstream(dir + "/config.json") << text;
  expect_clean_failure(test::llama_tp_binary() + " -m " + dir + " --backend cpu --prompt-ids 1,2 -n 2", "hidden_size");
}

TEST(CliErrors, TensorParallelSizeThatDoesNotDivideTheHeads) {
  REQUIRE_MODEL("tiny-llama2");
  // 8 query heads / 8 kv heads: 3 ranks cannot split them; the message lists what works.
  expect_clean_failure(test::mpirun(3) + test::llama_tp_binary() + " -m " + model_dir("tiny-llama2") +
                           " --backend cpu --prompt-ids 1,2 -n 2",
                       "1, 2, 4, 8");
}

TEST(CliErrors, OneFailingRankEndsTheWholeJobQuickly) {
  REQUIRE_MODEL("tiny-llama2");
  // Rank 1 (a second app context) gets a copy whose last shard is truncated; rank 0 the good one.
  std::string bad = copy_model("tiny-llama2");
  const std::string shard = bad + "/model-00003-of-00003.safetensors";
  fs::resize_file(shard, fs::file_size(shard) - 1000);
  const std::string args = " --backend cpu --prompt-ids 1,2,3 -n 4";
  std::string cmd = test::mpirun(1) + test::llama_tp_binary() + " -m " + model_dir("tiny-llama2") + args + " : -np 1 " +
                    test::llama_tp_binary() + " -m " + bad + args;
  expect_clean_failure(cmd, "rank 1: ", 30);
}

// The memory plan, checked before loading: one line naming the numbers and what would fit.
TEST(CliErrors, ModelThatDoesNotFitTheMemoryLimit) {
  REQUIRE_MODEL("tiny-gqa-f32");
  const std::string base = test::llama_tp_binary() + " -m " + model_dir("tiny-gqa-f32") + " --backend cpu --prompt-ids 1,2 -n 2";
  expect_clean_failure(base + " --memory-limit 1MiB", "1.0 MiB is available (--memory-limit 1.0 MiB)");
  test::CommandResult r = test::run_command(base + " --memory-limit 7MiB");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(count_error_lines(r.errors), 1) << r.errors;
  for (const char* want : {"needs", "weights", "KV cache", "1024 positions", "would fit", "--quant int8", "2 ranks",
                           "--ctx-size"})
    EXPECT_NE(r.errors.find(want), std::string::npos) << "expected '" << want << "' in:\n" << r.errors;
  // Under mpirun: every rank's plan is over the limit; still one line.
  expect_clean_failure(test::mpirun(2) + base + " --memory-limit 1MiB", "is available (--memory-limit 1.0 MiB)");
  expect_clean_failure(base + " --memory-limit 12XB", "--memory-limit");
  expect_clean_failure(base + " --quant int4", "--quant must be auto, none or int8");
}

TEST(CliErrors, ModelThatDoesNotFitTheGpuMemoryLimit) {
  REQUIRE_MODEL("tiny-gqa-f32");
  if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU (or a build without CUDA)";
  expect_clean_failure(test::llama_tp_binary() + " -m " + model_dir("tiny-gqa-f32") +
                           " --backend cuda --gpu-memory-limit 2MiB --prompt-ids 1,2 -n 2",
                       "2.0 MiB is available (--gpu-memory-limit 2.0 MiB)");
}

}  // namespace
}  // namespace llama_tp

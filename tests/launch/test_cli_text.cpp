// The executable with text in and text out: tokenizer-driven prompts, the tokenize tools,
// llama2.c checkpoints, stop strings and tokenizer errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace llama_tp {
namespace {

std::string model(const std::string& rel) { return test::shared_path("models/" + rel); }

#define REQUIRE(path) \
  if ((path).empty()) GTEST_SKIP() << "reference data not found under " << test::shared_dir() << "/models"

TEST(CliText, Llama3PromptTextGivesReferenceIdsAndGreedyTokens) {
  const std::string dir = model("tiny-llama3");
  REQUIRE(dir);
  REQUIRE(model("tiny-llama3.reference.json"));
  std::ifstream f(model("tiny-llama3.reference.json"));
  nlohmann::json ref = nlohmann::json::parse(f);
  test::CommandResult r = test::run_command(test::llama_tp_binary() + " -m " + dir +
                                            " --backend cpu -p \"Once upon a time, in a small village by the sea, there lived\""
                                            " --temp 0 -n 32 --json");
  ASSERT_EQ(r.exit_code, 0) << r.errors;
  nlohmann::json j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["prompt_ids"], ref["prompt_ids"]);
  EXPECT_EQ(j["output_ids"], ref["greedy_ids"]);
  EXPECT_TRUE(j.contains("text"));
  EXPECT_NE(r.errors.find("tok/s"), std::string::npos) << "timings on stderr";
}

TEST(CliText, Stories260KWritesLlama2cText) {
  const std::string bin = model("stories260K/stories260K.bin");
  REQUIRE(bin);
  REQUIRE(model("stories260K/tok512.bin"));
  test::CommandResult r = test::run_command(test::llama_tp_binary() + " -m " + bin + " --backend cpu --temp 0 -n 60");
  ASSERT_EQ(r.exit_code, 0) << r.errors;
  const std::string want =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a "
      "big, red ball.";
  EXPECT_EQ(r.output.substr(0, want.size()), want) << r.output;
}

TEST(CliText, Llama2cAndHuggingFaceFormsGenerateTheSameTokens) {
  const std::string bin = model("stories260K/stories260K.bin"), hf = model("stories260K-hf");
  REQUIRE(bin);
  REQUIRE(hf);
  auto ids = [](const std::string& m) {
    test::CommandResult r = test::run_command(test::llama_tp_binary() + " -m " + m +
                                              " --backend cpu --prompt-ids 1 --temp 0 -n 48 --json");
    EXPECT_EQ(r.exit_code, 0) << r.errors;
    return nlohmann::json::parse(r.output)["output_ids"].get<std::vector<int>>();
  };
  std::vector<int> a = ids(bin), b = ids(hf);
  EXPECT_EQ(a.size(), 48u);
  EXPECT_EQ(a, b);
}

TEST(CliText, StopStringEndsGeneration) {
  const std::string bin = model("stories260K/stories260K.bin");
  REQUIRE(bin);
  test::CommandResult r = test::run_command(test::llama_tp_binary() + " -m " + bin +
                                            " --backend cpu --temp 0 -n 100 --stop Lily --json");
  ASSERT_EQ(r.exit_code, 0) << r.errors;
  nlohmann::json j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["stop_reason"], "stop string");
  std::string text = j["text"];
  EXPECT_EQ(text.substr(text.size() - 4), "Lily") << text;
}

TEST(CliText, SamplingIsReproducibleWithASeed) {
  const std::string bin = model("stories260K/stories260K.bin");
  REQUIRE(bin);
  auto run = [&](int seed) {
    return test::run_command(test::llama_tp_binary() + " -m " + bin + " --backend cpu --temp 1.0 --top-k 40 --top-p 0.9 -n 40 --json -s " +
                             std::to_string(seed))
        .output;
  };
  auto ids = [](const std::string& out) { return nlohmann::json::parse(out)["output_ids"]; };
  EXPECT_EQ(ids(run(7)), ids(run(7)));
  EXPECT_NE(ids(run(7)), ids(run(8)));
}

TEST(CliText, TokenizeAndDetokenize) {
  const std::string dir = model("tiny-llama3");
  REQUIRE(dir);
  test::CommandResult r = test::run_command(test::llama_tp_binary() + " tokenize -m " + dir + " -p \"Hello world\" --json");
  ASSERT_EQ(r.exit_code, 0) << r.errors;
  std::vector<int> ids = nlohmann::json::parse(r.output)["ids"];
  ASSERT_EQ(ids, (std::vector<int>{128000, 9906, 1917}));
  r = test::run_command(test::llama_tp_binary() + " tokenize -m " + dir + " -p \"Hello world\" --no-bos --json");
  EXPECT_EQ(nlohmann::json::parse(r.output)["ids"], (std::vector<int>{9906, 1917}));
  r = test::run_command(test::llama_tp_binary() + " detokenize -m " + dir + " --ids 9906,1917");
  ASSERT_EQ(r.exit_code, 0) << r.errors;
  EXPECT_EQ(r.output, "Hello world\n");
}

TEST(CliText, SpecialTokensOnlyWhenAsked) {
  const std::string dir = model("tiny-llama3");
  REQUIRE(dir);
  auto ids = [&](const std::string& extra) {
    test::CommandResult r = test::run_command(test::llama_tp_binary() + " tokenize -m " + dir +
                                              " -p \"<|eot_id|>\" --no-bos --json " + extra);
    return nlohmann::json::parse(r.output)["ids"].get<std::vector<int>>();
  };
  EXPECT_EQ(ids("--special"), (std::vector<int>{128009}));
  EXPECT_GT(ids("").size(), 1u);
}

TEST(CliText, ChatWrapsThePromptInTheLlama3Format) {
  const std::string dir = model("tiny-llama3");
  REQUIRE(dir);
  test::CommandResult r = test::run_command(test::llama_tp_binary() + " -m " + dir +
                                            " --backend cpu --chat --system Be -p Hi --temp 0 -n 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.errors;
  std::vector<int> p = nlohmann::json::parse(r.output)["prompt_ids"];
  // <|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe<|eot_id|>...
  ASSERT_GE(p.size(), 4u);
  EXPECT_EQ(p[0], 128000);
  EXPECT_EQ(p[1], 128006);
  EXPECT_EQ(std::count(p.begin(), p.end(), 128000), 1) << "exactly one BOS";
  EXPECT_EQ(p.back(), 271) << "ends with the assistant header's blank line";
}

TEST(CliText, BrokenTokenizerJsonIsOneClearError) {
  const std::string dir = model("tiny-llama3");
  REQUIRE(dir);
  namespace fs = std::filesystem;
  std::string copy = test::make_temp_dir("tok") + "/m";
  fs::create_directories(copy);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer_config.json"}) fs::copy(dir + "/" + f, copy + "/" + f);
  std::ofstream(copy + "/tokenizer.json") << "{ not json";
  test::CommandResult r = test::run_command(test::llama_tp_binary() + " -m " + copy + " --backend cpu -p hi -n 2");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.errors.find("llama_tp: error:"), std::string::npos) << r.errors;
  EXPECT_NE(r.errors.find("tokenizer.json"), std::string::npos) << r.errors;
}

}  // namespace
}  // namespace llama_tp

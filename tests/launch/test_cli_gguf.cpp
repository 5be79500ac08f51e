// The executable on a GGUF checkpoint: stories260K.gguf (tokenizer inside) generates what
// stories260K.bin generates, ids and text.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace llama_tp {
namespace {

std::string model(const std::string& rel) { return test::shared_path("models/" + rel); }

#define REQUIRE(path) \
  if ((path).empty()) GTEST_SKIP() << "reference data not found under " << test::shared_dir() << "/models"

TEST(CliGguf, SameGreedyIdsAsLlama2cBin) {
  const std::string gguf = model("stories260K/stories260K.gguf"), bin = model("stories260K/stories260K.bin");
  REQUIRE(gguf);
  REQUIRE(bin);
  auto ids = [](const std::string& m) {
    test::CommandResult r = test::run_command(test::llama_tp_binary() + " -m " + m +
                                              " --backend cpu --prompt-ids 1 --temp 0 -n 48 --json");
    EXPECT_EQ(r.exit_code, 0) << r.errors;
    return nlohmann::json::parse(r.output)["output_ids"].get<std::vector<int>>();
  };
  std::vector<int> a = ids(bin), b = ids(gguf);
  EXPECT_EQ(a.size(), 48u);
  EXPECT_EQ(a, b);
}

TEST(CliGguf, WritesTheStoryWithItsOwnTokenizer) {
  const std::string gguf = model("stories260K/stories260K.gguf");
  REQUIRE(gguf);
  test::CommandResult r = test::run_command(test::llama_tp_binary() + " -m " + gguf + " --backend cpu --temp 0 -n 60");
  ASSERT_EQ(r.exit_code, 0) << r.errors;
  const std::string want =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a "
      "big, red ball.";
  EXPECT_EQ(r.output.substr(0, want.size()), want) << r.output;
}

}  // namespace
}  // namespace llama_tp

// The acceptance cases of issue 3: every string in ../shared/tokenizers/*-cases.json encodes to
// HF tokenizers' ids (add_special_tokens=False, so special-token text is recognised) and the ids
// decode, in one call and streamed, to HF's decoded text.
#include <gtest/gtest.h>

#include "tokenizer_test_helpers.h"

namespace llama_tp {
namespace {

using test::read_json_file;
using test::shared_path;

void check_cases(const Tokenizer& tok, const std::string& cases_path) {
  nlohmann::json cases = read_json_file(cases_path)["cases"];
  ASSERT_GE(cases.size(), 100u) << cases_path;
  for (const auto& c : cases) {
    const std::string text = c["text"];
    const std::vector<int32_t> ids = c["ids"];
    const std::string decoded = c["decoded"];
    EXPECT_EQ(tok.encode(text, /*add_bos=*/false, /*parse_special=*/true), ids) << "text: " << text;
    EXPECT_EQ(tok.decode(ids), decoded) << "ids of: " << text;
    EXPECT_EQ(test::streamed_text(tok, ids), decoded) << "streamed ids of: " << text;
  }
}

TEST(TokenizerCases, Llama3MatchesHuggingFace) {
  LOAD_SHARED_TOKENIZER_OR_SKIP(tok, "models/tiny-llama3");
  std::string cases = shared_path("tokenizers/llama3-cases.json");
  if (cases.empty()) GTEST_SKIP() << "needs ../shared/tokenizers/llama3-cases.json";
  check_cases(*tok, cases);
}

TEST(TokenizerCases, Llama2MatchesHuggingFace) {
  LOAD_SHARED_TOKENIZER_OR_SKIP(tok, "models/tiny-llama2");
  std::string cases = shared_path("tokenizers/llama2-cases.json");
  if (cases.empty()) GTEST_SKIP() << "needs ../shared/tokenizers/llama2-cases.json";
  check_cases(*tok, cases);
}

// The reference prompt of tiny-llama3, encoded the way the CLI will: BOS by the model's default.
TEST(TokenizerCases, Llama3ReferencePromptIds) {
  LOAD_SHARED_TOKENIZER_OR_SKIP(tok, "models/tiny-llama3");
  std::string reference = shared_path("models/tiny-llama3.reference.json");
  if (reference.empty()) GTEST_SKIP() << "needs ../shared/models/tiny-llama3.reference.json";
  const std::vector<int32_t> expected = read_json_file(reference)["prompt_ids"];
  const std::string prompt = "Once upon a time, in a small village by the sea, there lived";
  EXPECT_TRUE(tok->add_bos_default());
  EXPECT_EQ(tok->encode(prompt, tok->add_bos_default(), /*parse_special=*/false), expected);
}

}  // namespace
}  // namespace llama_tp

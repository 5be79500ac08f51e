// Hugging Face tokenizer.json specifics beyond the reference cases: special tokens and their
// parsing switch, BOS defaults, per-token bytes, the [a, b] merge format, and encoding speed.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "tokenizer_test_helpers.h"

namespace llama_tp {
namespace {

using test::shared_path;

constexpr int32_t kLlama3Bos = 128000, kLlama3Eos = 128001, kLlama3Eot = 128009;

TEST(TokenizerHf, Llama3SpecialTokensComeFromConfigAndVocab) {
  LOAD_SHARED_TOKENIZER_OR_SKIP(tok, "models/tiny-llama3");
  EXPECT_EQ(tok->vocab_size(), 128256);
  EXPECT_EQ(tok->bos_id(), kLlama3Bos);
  EXPECT_EQ(tok->eos_ids(), (std::vector<int32_t>{kLlama3Eos, kLlama3Eot}));
  EXPECT_TRUE(tok->is_eos(kLlama3Eot));
  EXPECT_FALSE(tok->is_eos(kLlama3Bos));
  EXPECT_EQ(tok->token_id("<|eot_id|>"), kLlama3Eot);
  EXPECT_EQ(tok->token_id("Ġthe"), 279);
  EXPECT_EQ(tok->token_id("no such piece"), std::nullopt);
  EXPECT_EQ(tok->leading_spaces_stripped(), 0);
  EXPECT_NE(tok->specials().chat_template.find("<|start_header_id|>"), std::string::npos);
}

TEST(TokenizerHf, Llama3SpecialTextIsParsedOnlyOnRequest) {
  LOAD_SHARED_TOKENIZER_OR_SKIP(tok, "models/tiny-llama3");
  const std::string text = "Hi<|eot_id|>";
  EXPECT_EQ(tok->encode(text, false, /*parse_special=*/true), (std::vector<int32_t>{13347, kLlama3Eot}));
  std::vector<int32_t> plain = tok->encode(text, false, /*parse_special=*/false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), kLlama3Eot), 0);
  EXPECT_GT(plain.size(), 3u);
  EXPECT_EQ(tok->decode(plain), text);
  EXPECT_EQ(tok->encode("Hi", /*add_bos=*/true, false), (std::vector<int32_t>{kLlama3Bos, 13347}));
}

TEST(TokenizerHf, Llama3TokenBytesUndoTheByteLevelMapping) {
  LOAD_SHARED_TOKENIZER_OR_SKIP(tok, "models/tiny-llama3");
  EXPECT_EQ(tok->token_bytes(279), " the");
  EXPECT_EQ(tok->token_bytes(271), "\n\n");
  EXPECT_EQ(tok->token_bytes(kLlama3Eot), "<|eot_id|>");
  // "🙂" is two tokens: F0 9F + 99 82 (each alone is not valid UTF-8).
  EXPECT_EQ(tok->token_bytes(9468) + tok->token_bytes(19044), "\xF0\x9F\x99\x82");
  EXPECT_EQ(tok->token_bytes(9468), "\xF0\x9F");
}

TEST(TokenizerHf, Llama2SpecialsAndSentencePieceSpaces) {
  LOAD_SHARED_TOKENIZER_OR_SKIP(tok, "models/tiny-llama2");
  EXPECT_EQ(tok->vocab_size(), 32000);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_ids(), std::vector<int32_t>{2});
  EXPECT_TRUE(tok->add_bos_default());
  EXPECT_EQ(tok->leading_spaces_stripped(), 1);
  EXPECT_EQ(tok->token_bytes(272), " the");  // ▁the
  EXPECT_EQ(tok->token_bytes(13), "\n");     // <0x0A>
  EXPECT_EQ(tok->encode("Hello", true, false), (std::vector<int32_t>{1, 22557}));
  EXPECT_EQ(tok->encode("</s>", false, true), std::vector<int32_t>{2});
  EXPECT_NE(tok->encode("</s>", false, false), std::vector<int32_t>{2});
  // HF decodes special tokens as text; the first token's "▁" becomes no space.
  EXPECT_EQ(tok->decode({1, 22557}), "<s> Hello");
  EXPECT_EQ(tok->decode({22557, 272}), "Hello the");
}

TEST(TokenizerHf, IdsOutsideTheVocabularyAreAnError) {
  LOAD_SHARED_TOKENIZER_OR_SKIP(tok, "models/tiny-llama2");
  EXPECT_THROW(tok->decode({32000}), Error);
  EXPECT_THROW(tok->token_bytes(-1), Error);
}

// Newer tokenizer.json files write merges as ["a", "b"] pairs instead of "a b" strings.
TEST(TokenizerHf, MergesWrittenAsPairsGiveTheSameIds) {
  std::string source = shared_path("models/tiny-llama2/tokenizer.json");
  std::string cases_path = shared_path("tokenizers/llama2-cases.json");
  if (source.empty() || cases_path.empty()) GTEST_SKIP() << "needs ../shared/models/tiny-llama2";
  nlohmann::json j = test::read_json_file(source);
  for (auto& merge : j["model"]["merges"]) {
    std::string s = merge;
    size_t space = s.find(' ');
    merge = nlohmann::json::array({s.substr(0, space), s.substr(space + 1)});
  }
  test::TokenizerTempDir dir;
  test::write_file(dir.path() / "tokenizer.json", j.dump());
  auto tok = Tokenizer::load(dir.path().string());
  const nlohmann::json cases = test::read_json_file(cases_path)["cases"];
  for (const auto& c : cases)
    EXPECT_EQ(tok->encode(c["text"], false, true), c["ids"].get<std::vector<int32_t>>()) << c["text"];
}

// About 100 KB of mixed-script text (the case strings, repeated).
std::string hundred_kilobytes_of_text() {
  std::string cases_path = shared_path("tokenizers/llama3-cases.json");
  const nlohmann::json cases = test::read_json_file(cases_path)["cases"];
  std::string piece;
  for (const auto& c : cases) piece += c["text"].get<std::string>() + "\n";
  std::string text;
  while (text.size() < 100 * 1024) text += piece;
  return text;
}

double seconds_to_encode(const Tokenizer& tok, const std::string& text, std::vector<int32_t>& ids) {
  auto start = std::chrono::steady_clock::now();
  ids = tok.encode(text, true, false);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The issue asks for well under a second on one core; 2 s leaves room for a busy CI machine.
TEST(TokenizerHf, Encodes100KilobytesQuickly) {
  LOAD_SHARED_TOKENIZER_OR_SKIP(llama3, "models/tiny-llama3");
  LOAD_SHARED_TOKENIZER_OR_SKIP(llama2, "models/tiny-llama2");
  const std::string text = hundred_kilobytes_of_text();
  for (const Tokenizer* tok : {llama3, llama2}) {
    std::vector<int32_t> ids;
    double seconds = seconds_to_encode(*tok, text, ids);
    EXPECT_LT(seconds, 2.0) << "vocab " << tok->vocab_size();
    std::printf("[   info   ] vocab %d: %zu bytes -> %zu ids in %.3f s\n", tok->vocab_size(),
                text.size(), ids.size(), seconds);
    ASSERT_GT(ids.size(), 10000u);
    ids.erase(ids.begin());  // BOS
    EXPECT_EQ(tok->decode(ids), text) << "vocab " << tok->vocab_size();
  }
}

}  // namespace
}  // namespace llama_tp

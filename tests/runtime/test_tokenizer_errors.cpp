// Bad tokenizer input never crashes: each case is an llama_tp::Error whose message names the
// offending file, so the user knows what to re-download or fix.
#include <gtest/gtest.h>

#include "tokenizer_test_helpers.h"

namespace llama_tp {
namespace {

using test::TokenizerTempDir;
using test::write_file;

// The smallest valid BPE tokenizer.json; each test breaks one thing in it.
nlohmann::json minimal_tokenizer_json() {
  return nlohmann::json::parse(R"({
    "added_tokens": [{"id": 3, "content": "<s>", "special": true}],
    "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null,
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "<s>": 3}, "merges": ["a b"]}})");
}

// Loads `path` and returns the Error message; fails the test when nothing is thrown.
std::string load_error(const std::string& path) {
  try {
    Tokenizer::load(path);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "Tokenizer::load(" << path << ") did not throw";
  return "";
}

TEST(TokenizerErrors, MinimalTokenizerJsonIsValid) {
  TokenizerTempDir dir;
  write_file(dir.path() / "tokenizer.json", minimal_tokenizer_json().dump());
  auto tok = Tokenizer::load(dir.path().string());
  EXPECT_EQ(tok->encode("abab<s>", false, true), (std::vector<int32_t>{2, 2, 3}));
  EXPECT_EQ(tok->bos_id(), 3);
}

TEST(TokenizerErrors, TokenizerJsonThatIsNotJson) {
  TokenizerTempDir dir;
  write_file(dir.path() / "tokenizer.json", "{\"model\": {\"type\": \"BPE\", ");
  std::string message = load_error(dir.path().string());
  EXPECT_NE(message.find(dir.file("tokenizer.json")), std::string::npos) << message;
  EXPECT_NE(message.find("not valid JSON"), std::string::npos) << message;
}

TEST(TokenizerErrors, UnknownModelType) {
  for (const nlohmann::json type : {nlohmann::json("Unigram"), nlohmann::json("WordPiece"),
                                    nlohmann::json("garbage"), nlohmann::json(42)}) {
    TokenizerTempDir dir;
    nlohmann::json j = minimal_tokenizer_json();
    j["model"]["type"] = type;
    write_file(dir.path() / "tokenizer.json", j.dump());
    std::string message = load_error(dir.path().string());
    EXPECT_NE(message.find(dir.file("tokenizer.json")), std::string::npos) << message;
    EXPECT_NE(message.find("model type"), std::string::npos) << message;
  }
}

TEST(TokenizerErrors, MergeNamingAMissingToken) {
  for (const char* merge : {"a zz", "zz b", "b a"}) {  // "ba", the merged token, is missing too
    TokenizerTempDir dir;
    nlohmann::json j = minimal_tokenizer_json();
    j["model"]["merges"] = {"a b", merge};
    write_file(dir.path() / "tokenizer.json", j.dump());
    std::string message = load_error(dir.path().string());
    EXPECT_NE(message.find(dir.file("tokenizer.json")), std::string::npos) << message;
    EXPECT_NE(message.find("merge #1"), std::string::npos) << message;
  }
}

TEST(TokenizerErrors, UnsupportedPipelineStep) {
  TokenizerTempDir dir;
  nlohmann::json j = minimal_tokenizer_json();
  j["normalizer"] = {{"type", "NFKC"}};
  write_file(dir.path() / "tokenizer.json", j.dump());
  std::string message = load_error(dir.path().string());
  EXPECT_NE(message.find(dir.file("tokenizer.json")), std::string::npos) << message;
  EXPECT_NE(message.find("NFKC"), std::string::npos) << message;
}

TEST(TokenizerErrors, MissingPathsAndEmptyFolder) {
  TokenizerTempDir dir;
  std::string missing = dir.file("no-such-model");
  EXPECT_NE(load_error(missing).find(missing), std::string::npos);
  std::string message = load_error(dir.path().string());
  EXPECT_NE(message.find(dir.path().string()), std::string::npos) << message;
  EXPECT_NE(message.find("tokenizer.json"), std::string::npos) << message;
}

TEST(TokenizerErrors, BadTokenizerConfig) {
  TokenizerTempDir dir;
  write_file(dir.path() / "tokenizer.json", minimal_tokenizer_json().dump());
  write_file(dir.path() / "tokenizer_config.json", "not json");
  std::string message = load_error(dir.path().string());
  EXPECT_NE(message.find(dir.file("tokenizer_config.json")), std::string::npos) << message;

  write_file(dir.path() / "tokenizer_config.json", R"({"bos_token": "<|begin_of_text|>"})");
  message = load_error(dir.path().string());
  EXPECT_NE(message.find(dir.file("tokenizer_config.json")), std::string::npos) << message;
  EXPECT_NE(message.find("<|begin_of_text|>"), std::string::npos) << message;
}

TEST(TokenizerErrors, TruncatedLlama2cTokenizer) {
  TokenizerTempDir dir;
  std::string bytes(4, '\0');
  bytes[0] = 7;                    // max_token_length
  bytes += std::string(8, '\0');   // token 0: score, length 0
  bytes += std::string(6, '\0');   // token 1: cut off inside its header
  write_file(dir.path() / "tokenizer.bin", bytes);
  std::string message = load_error(dir.path().string());
  EXPECT_NE(message.find(dir.file("tokenizer.bin")), std::string::npos) << message;
}

TEST(TokenizerErrors, SentencePieceModelThatIsNotOne) {
  TokenizerTempDir dir;
  write_file(dir.path() / "tokenizer.model", "this is not a protobuf");
  std::string message = load_error(dir.path().string());
  EXPECT_NE(message.find(dir.file("tokenizer.model")), std::string::npos) << message;
}

}  // namespace
}  // namespace llama_tp

// SentencePiece tokenizer.model: no such file ships in ../shared, so the test trains a small
// Llama-style model (BPE, byte fallback, <unk>/<s>/</s> = 0/1/2) into a temp folder.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include "tokenizer_test_helpers.h"

namespace llama_tp {
namespace {

class TokenizerSpm : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TokenizerTempDir();
    std::string corpus;
    for (int i = 0; i < 200; ++i)
      corpus += "Once upon a time there was a little girl named Lily. She liked to play "
                "outside in the park with her red ball and her dog number " + std::to_string(i) + ".\n";
    test::write_file(dir_->path() / "corpus.txt", corpus);
    auto status = sentencepiece::SentencePieceTrainer::Train(
        "--input=" + dir_->file("corpus.txt") + " --model_prefix=" + dir_->file("tokenizer") +
        " --model_type=bpe --vocab_size=320 --byte_fallback=true --character_coverage=1.0"
        " --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --normalization_rule_name=identity"
        " --remove_extra_whitespaces=false --hard_vocab_limit=false --minloglevel=2");
    ASSERT_TRUE(status.ok()) << status.ToString();
    tokenizer_ = Tokenizer::load(dir_->path().string()).release();
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete dir_;
  }
  static test::TokenizerTempDir* dir_;
  static Tokenizer* tokenizer_;
};
test::TokenizerTempDir* TokenizerSpm::dir_ = nullptr;
Tokenizer* TokenizerSpm::tokenizer_ = nullptr;

TEST_F(TokenizerSpm, SpecialsComeFromTheModel) {
  ASSERT_NE(tokenizer_, nullptr);
  EXPECT_EQ(tokenizer_->bos_id(), 1);
  EXPECT_EQ(tokenizer_->eos_ids(), std::vector<int32_t>{2});
  EXPECT_TRUE(tokenizer_->add_bos_default());
  EXPECT_EQ(tokenizer_->leading_spaces_stripped(), 1);
  EXPECT_EQ(tokenizer_->token_id("<s>"), 1);
  EXPECT_EQ(tokenizer_->token_id("no such piece"), std::nullopt);
}

TEST_F(TokenizerSpm, EncodesAsSentencePieceAndRoundTrips) {
  ASSERT_NE(tokenizer_, nullptr);
  sentencepiece::SentencePieceProcessor reference;
  ASSERT_TRUE(reference.Load(dir_->file("tokenizer.model")).ok());
  const std::string text = "Once upon a time, Lily met Zo\xC3\xAB \xF0\x9F\x99\x82 in the park.";
  std::vector<int> expected;
  ASSERT_TRUE(reference.Encode(text, &expected).ok());
  std::vector<int32_t> ids = tokenizer_->encode(text, /*add_bos=*/true, false);
  ASSERT_EQ(ids.size(), expected.size() + 1);
  EXPECT_EQ(ids[0], 1);
  EXPECT_TRUE(std::equal(expected.begin(), expected.end(), ids.begin() + 1));
  ids.erase(ids.begin());
  EXPECT_EQ(tokenizer_->decode(ids), text);  // ë and 🙂 go through <0xNN> byte pieces
  EXPECT_EQ(test::streamed_text(*tokenizer_, ids), text);
}

TEST_F(TokenizerSpm, SpecialTextOnlyOnRequest) {
  ASSERT_NE(tokenizer_, nullptr);
  std::vector<int32_t> parsed = tokenizer_->encode("Lily</s>", false, /*parse_special=*/true);
  ASSERT_FALSE(parsed.empty());
  EXPECT_EQ(parsed.back(), 2);
  std::vector<int32_t> plain = tokenizer_->encode("Lily</s>", false, /*parse_special=*/false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 2), 0);
  EXPECT_EQ(tokenizer_->decode(plain), "Lily</s>");
}

}  // namespace
}  // namespace llama_tp

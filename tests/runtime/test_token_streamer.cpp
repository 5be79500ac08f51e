// TokenStreamer: prints complete characters only, and agrees with decode() on leading spaces.
#include <gtest/gtest.h>

#include "tokenizer_test_helpers.h"

namespace llama_tp {
namespace {

TEST(TokenizerStreamer, HoldsBackACharacterSplitAcrossTokens) {
  LOAD_SHARED_TOKENIZER_OR_SKIP(tok, "models/tiny-llama3");
  std::vector<int32_t> ids = tok->encode("a\xF0\x9F\x99\x82!", false, false);  // "a🙂!"
  ASSERT_EQ(ids.size(), 4u);
  TokenStreamer streamer(*tok);
  EXPECT_EQ(streamer.push(ids[0]), "a");
  EXPECT_EQ(streamer.push(ids[1]), "");  // F0 9F: half of 🙂
  EXPECT_EQ(streamer.push(ids[2]), "\xF0\x9F\x99\x82");
  EXPECT_EQ(streamer.push(ids[3]), "!");
  EXPECT_EQ(streamer.flush(), "");
}

TEST(TokenizerStreamer, FlushReplacesAnUnfinishedCharacter) {
  LOAD_SHARED_TOKENIZER_OR_SKIP(tok, "models/tiny-llama3");
  TokenStreamer streamer(*tok);
  EXPECT_EQ(streamer.push(9468), "");  // F0 9F
  EXPECT_EQ(streamer.flush(), "\xEF\xBF\xBD");
}

TEST(TokenizerStreamer, ByteFallbackPiecesBecomeOneCharacter) {
  LOAD_SHARED_TOKENIZER_OR_SKIP(tok, "models/tiny-llama2");
  const std::string clef = "\xF0\x9D\x84\x9E";  // 𝄞, not in the vocabulary: four <0xNN> tokens
  std::vector<int32_t> ids = tok->encode("x" + clef, false, false);
  ASSERT_EQ(ids.size(), 5u);
  TokenStreamer streamer(*tok);
  EXPECT_EQ(streamer.push(ids[0]), "x");  // "▁x": the leading space is dropped, as in decode
  for (int i = 1; i < 4; ++i) EXPECT_EQ(streamer.push(ids[i]), "") << i;
  EXPECT_EQ(streamer.push(ids[4]), clef);
  EXPECT_EQ(tok->decode(ids), "x" + clef);
}

TEST(TokenizerStreamer, ContinuationKeepsItsLeadingSpace) {
  LOAD_SHARED_TOKENIZER_OR_SKIP(tok, "models/tiny-llama2");
  std::vector<int32_t> ids = tok->encode("Hello the", false, false);
  EXPECT_EQ(test::streamed_text(*tok, ids, /*at_text_start=*/true), "Hello the");
  EXPECT_EQ(test::streamed_text(*tok, ids, /*at_text_start=*/false), " Hello the");
}

}  // namespace
}  // namespace llama_tp

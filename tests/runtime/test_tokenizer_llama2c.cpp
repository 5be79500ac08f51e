// llama2.c tokenizer.bin (stories260K's tok512.bin). Expected ids come from a direct port of
// run.c's encode (the O(n^2) best-score loop), which the heap-based merge must reproduce.
#include <gtest/gtest.h>

#include "tokenizer_test_helpers.h"

namespace llama_tp {
namespace {

TEST(TokenizerLlama2c, EncodesLikeRunC) {
  LOAD_SHARED_TOKENIZER_OR_SKIP(tok, "models/stories260K/tok512.bin");
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_ids(), std::vector<int32_t>{2});
  EXPECT_TRUE(tok->add_bos_default());
  const std::string sentence = "Once upon a time, there was a little girl named Lily.";
  const std::vector<int32_t> expected = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426};
  EXPECT_EQ(tok->encode(sentence, /*add_bos=*/true, false), expected);
}

TEST(TokenizerLlama2c, RoundTripsTextWithByteFallback) {
  LOAD_SHARED_TOKENIZER_OR_SKIP(tok, "models/stories260K/tok512.bin");
  const std::string text = "Lily saw a big, red ball! \xF0\x9F\x98\x80 Zo\xC3\xAB";  // 😀, ë: bytes
  const std::vector<int32_t> ids = tok->encode(text, false, false);
  EXPECT_EQ(ids, (std::vector<int32_t>{317, 394, 261, 370, 432, 352, 266, 268, 388, 443, 410, 243,
                                       162, 155, 131, 410, 469, 414, 198, 174}));
  EXPECT_EQ(tok->decode(ids), text);
  EXPECT_EQ(test::streamed_text(*tok, ids), text);
  EXPECT_EQ(tok->token_bytes(243), "\xF0");  // <0xF0>
}

TEST(TokenizerLlama2c, SpecialTextOnlyOnRequest) {
  LOAD_SHARED_TOKENIZER_OR_SKIP(tok, "models/stories260K/tok512.bin");
  std::vector<int32_t> parsed = tok->encode("Hi</s>", false, /*parse_special=*/true);
  ASSERT_FALSE(parsed.empty());
  EXPECT_EQ(parsed.back(), 2);
  std::vector<int32_t> plain = tok->encode("Hi</s>", false, /*parse_special=*/false);
  EXPECT_NE(plain.back(), 2);
  EXPECT_EQ(tok->decode(plain), "Hi</s>");
}

}  // namespace
}  // namespace llama_tp

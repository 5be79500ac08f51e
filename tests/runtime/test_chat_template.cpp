// Chat formatting: the family comes from tokenizer_config.json's template (or the vocabulary),
// the text matches the model's own template, and encoding it yields exactly one leading BOS.
#include <gtest/gtest.h>

#include <algorithm>

#include "runtime/chat_template.h"
#include "tokenizer_test_helpers.h"

namespace llama_tp {
namespace {

const std::vector<ChatMessage> kConversation = {
    {"system", "Be brief."}, {"user", "Hi "}, {"assistant", "Hello!"}, {"user", "Again"}};

TEST(ChatTemplate, Llama3HeaderFormat) {
  LOAD_SHARED_TOKENIZER_OR_SKIP(tok, "models/tiny-llama3");
  EXPECT_EQ(chat_family(*tok), ChatFamily::kLlama3);
  EXPECT_EQ(format_chat(*tok, kConversation, true),
            "<|begin_of_text|>"
            "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nAgain<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  // Known Llama 3 ids: BOS, header(user), "\n\n", "Hi", eot, header(assistant), "\n\n".
  EXPECT_EQ(encode_chat(*tok, {{"user", "Hi"}}, true),
            (std::vector<int32_t>{128000, 128006, 882, 128007, 271, 13347, 128009, 128006, 78191, 128007, 271}));
}

TEST(ChatTemplate, Llama2InstFormatWithSystemPrompt) {
  LOAD_SHARED_TOKENIZER_OR_SKIP(tok, "models/tiny-llama2");
  EXPECT_TRUE(tok->specials().chat_template.empty());  // tiny-llama2 ships none: fallback
  EXPECT_EQ(chat_family(*tok), ChatFamily::kLlama2);
  EXPECT_EQ(format_chat(*tok, kConversation, true),
            "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Again [/INST]");
  std::vector<int32_t> ids = encode_chat(*tok, kConversation, true);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], 1);
  EXPECT_NE(ids[1], 1);  // no double BOS
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 2);  // one per user turn
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 2), 1);  // after the assistant's answer
}

TEST(ChatTemplate, Llama2RejectsRolesOutOfOrder) {
  LOAD_SHARED_TOKENIZER_OR_SKIP(tok, "models/tiny-llama2");
  EXPECT_THROW(format_chat(*tok, {{"assistant", "Hi"}}, true), Error);
  EXPECT_THROW(format_chat(*tok, {{"user", "a"}, {"user", "b"}}, true), Error);
}

TEST(ChatTemplate, FamilyFromTemplateTextWinsOverVocabulary) {
  auto tok = test::shared_path("models/tiny-llama3").empty()
                 ? nullptr
                 : Tokenizer::load(test::shared_path("models/tiny-llama3"));
  if (!tok) GTEST_SKIP() << "needs ../shared/models/tiny-llama3";
  TokenizerSpecials s = tok->specials();
  s.chat_template = "{{ bos_token + '[INST] ' + message['content'] + ' [/INST]' }}";
  tok->set_specials(s);
  EXPECT_EQ(chat_family(*tok), ChatFamily::kLlama2);
  s.chat_template = "";
  tok->set_specials(s);
  EXPECT_EQ(chat_family(*tok), ChatFamily::kLlama3);  // vocabulary has <|start_header_id|>
}

}  // namespace
}  // namespace llama_tp

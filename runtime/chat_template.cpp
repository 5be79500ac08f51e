#include "runtime/chat_template.h"

#include "runtime/error.h"

namespace llama_tp {
namespace {

// Jinja's |trim and Python's str.strip() as the templates apply them to message content.
std::string trim(const std::string& s) {
  const char* space = " \t\n\r\f\v";
  size_t begin = s.find_first_not_of(space);
  if (begin == std::string::npos) return "";
  size_t end = s.find_last_not_of(space);
  return s.substr(begin, end - begin + 1);
}

std::string format_llama3(const Tokenizer& tok, const std::vector<ChatMessage>& messages,
                          bool add_generation_prompt) {
  std::string text = tok.specials().bos_text;
  for (const ChatMessage& m : messages)
    text += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) + "<|eot_id|>";
  if (add_generation_prompt) text += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return text;
}

// Meta's Llama 2 template: the system prompt is folded into the first user turn, every
// user turn opens with BOS, every assistant answer closes with EOS.
std::string format_llama2(const Tokenizer& tok, const std::vector<ChatMessage>& messages) {
  const std::string& bos = tok.specials().bos_text;
  const std::string& eos = tok.specials().eos_text;
  size_t first = 0;
  std::string system;
  bool has_system = !messages.empty() && messages[0].role == "system";
  if (has_system) {
    system = messages[0].content;
    first = 1;
  }
  std::string text;
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    bool expect_user = (i - first) % 2 == 0;
    LLAMA_TP_CHECK(m.role == (expect_user ? "user" : "assistant"),
                   "the Llama 2 chat format needs user and assistant turns to alternate, starting "
                   "with user (after an optional system prompt); message ", i, " has role \"",
                   m.role, "\"");
    if (expect_user) {
      std::string content;
      if (has_system && i == first) content.append("<<SYS>>\n").append(system).append("\n<</SYS>>\n\n");
      content += m.content;
      text.append(bos).append("[INST] ").append(trim(content)).append(" [/INST]");
    } else {
      text.append(" ").append(trim(m.content)).append(" ").append(eos);
    }
  }
  return text;
}

}  // namespace

ChatFamily chat_family(const Tokenizer& tokenizer) {
  const std::string& tmpl = tokenizer.specials().chat_template;
  if (tmpl.find("<|start_header_id|>") != std::string::npos) return ChatFamily::kLlama3;
  if (tmpl.find("[INST]") != std::string::npos) return ChatFamily::kLlama2;
  return tokenizer.token_id("<|start_header_id|>") ? ChatFamily::kLlama3 : ChatFamily::kLlama2;
}

const char* chat_family_name(ChatFamily family) {
  return family == ChatFamily::kLlama3 ? "llama3" : "llama2";
}

std::string format_chat(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt) {
  if (chat_family(tokenizer) == ChatFamily::kLlama3)
    return format_llama3(tokenizer, messages, add_generation_prompt);
  return format_llama2(tokenizer, messages);
}

std::vector<int32_t> encode_chat(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages,
                                 bool add_generation_prompt) {
  return tokenizer.encode(format_chat(tokenizer, messages, add_generation_prompt),
                          /*add_bos=*/false, /*parse_special=*/true);
}

}  // namespace llama_tp

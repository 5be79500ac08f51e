#pragma once
// Chat formatting for the two Llama template families, chosen from tokenizer_config.json's
// chat_template (we recognise the family; we do not run Jinja).
//
// BOS: the returned text CONTAINS the BOS text where the model's template puts it (Llama 3:
// once at the start; Llama 2: before every [INST]). Encode it with add_bos=false and
// parse_special=true (encode_chat does exactly that), or BOS appears twice.
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/tokenizer.h"

namespace llama_tp {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

enum class ChatFamily {
  kLlama3,  // <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
  kLlama2,  // <s>[INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] answer </s>
};

// From the template text; with no (or an unrecognised) template: Llama 3 when the vocabulary
// has <|start_header_id|>, else Llama 2.
ChatFamily chat_family(const Tokenizer& tokenizer);
const char* chat_family_name(ChatFamily family);

// add_generation_prompt: end with the header that makes the model answer as the assistant
// (Llama 2's format needs nothing after [/INST]). Throws an Error for roles the format cannot
// express (Llama 2: user/assistant must alternate, starting with user, after an optional system).
std::string format_chat(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt);

// tokenizer.encode(format_chat(...), /*add_bos=*/false, /*parse_special=*/true).
std::vector<int32_t> encode_chat(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages,
                                 bool add_generation_prompt);

}  // namespace llama_tp

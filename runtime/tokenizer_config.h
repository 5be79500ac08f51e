#pragma once
// tokenizer_config.json: the Hugging Face file that says which special tokens a model uses,
// whether BOS is added, and the chat template. Every field is optional.
#include <optional>
#include <string>

namespace llama_tp {

struct TokenizerConfig {
  std::optional<bool> add_bos_token;
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  std::string chat_template;  // "" when absent
};

// Throws llama_tp::Error naming `file` when it is not JSON or a field has the wrong type.
TokenizerConfig read_tokenizer_config(const std::string& file);

}  // namespace llama_tp

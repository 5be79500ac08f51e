#include "runtime/tokenizer_config.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/error.h"

namespace llama_tp {
namespace {

using nlohmann::json;

// Special tokens are written either as a string or as an AddedToken object {"content": ...}.
std::optional<std::string> token_text(const json& j, const char* key, const std::string& file) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  LLAMA_TP_FAIL(file, ": \"", key, "\" should be a string or an object with \"content\"");
}

// chat_template is a string, or a list of {"name", "template"} where "default" is the one used.
std::string chat_template(const json& j, const std::string& file) {
  auto it = j.find("chat_template");
  if (it == j.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    std::string first;
    for (const auto& entry : *it) {
      if (!entry.is_object() || !entry.contains("template") || !entry["template"].is_string())
        continue;
      if (first.empty()) first = entry["template"].get<std::string>();
      if (entry.value("name", "") == "default") return entry["template"].get<std::string>();
    }
    return first;
  }
  LLAMA_TP_FAIL(file, ": \"chat_template\" should be a string or a list of named templates");
}

TokenizerConfig parse_config(const json& j, const std::string& file) {
  TokenizerConfig config;
  if (auto it = j.find("add_bos_token"); it != j.end() && !it->is_null()) {
    LLAMA_TP_CHECK(it->is_boolean(), file, ": \"add_bos_token\" should be true or false");
    config.add_bos_token = it->get<bool>();
  }
  config.bos_token = token_text(j, "bos_token", file);
  config.eos_token = token_text(j, "eos_token", file);
  config.chat_template = chat_template(j, file);
  return config;
}

}  // namespace

TokenizerConfig read_tokenizer_config(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  LLAMA_TP_CHECK(in, "cannot open ", file);
  json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  LLAMA_TP_CHECK(!j.is_discarded() && j.is_object(), file,
                 " is not a valid JSON object; re-download the model's tokenizer_config.json");
  try {
    return parse_config(j, file);
  } catch (const json::exception& e) {  // a field of the wrong JSON type somewhere
    LLAMA_TP_FAIL(file, " has an unexpected structure (", e.what(), ")");
  }
}

}  // namespace llama_tp

#include "runtime/hf_normalizer.h"

#include <nlohmann/json.hpp>

#include "runtime/error.h"

namespace llama_tp {
namespace {

std::string replace_all(const std::string& text, const std::string& from, const std::string& to) {
  if (from.empty()) return text;
  std::string out;
  out.reserve(text.size() + text.size() / 4);
  size_t pos = 0;
  for (size_t hit; (hit = text.find(from, pos)) != std::string::npos; pos = hit + from.size())
    out.append(text, pos, hit - pos).append(to);
  out.append(text, pos, std::string::npos);
  return out;
}

std::string string_field(const nlohmann::json& j, const char* key, const std::string& file,
                         const char* where) {
  LLAMA_TP_CHECK(j.contains(key) && j[key].is_string(), file, ": ", where, " needs a string \"",
                 key, "\"");
  return j[key].get<std::string>();
}

}  // namespace

HfNormalizer::HfNormalizer(const nlohmann::json& spec, const std::string& file) {
  if (!spec.is_null()) add(spec, file);
}

void HfNormalizer::add(const nlohmann::json& spec, const std::string& file) {
  LLAMA_TP_CHECK(spec.is_object() && spec.contains("type") && spec["type"].is_string(), file,
                 ": each normalizer needs a \"type\"");
  const std::string type = spec["type"].get<std::string>();
  if (type == "Sequence") {
    LLAMA_TP_CHECK(spec.contains("normalizers") && spec["normalizers"].is_array(), file,
                   ": Sequence normalizer needs a \"normalizers\" list");
    for (const auto& inner : spec["normalizers"]) add(inner, file);
  } else if (type == "Prepend") {
    steps_.push_back({Step::kPrepend, "", string_field(spec, "prepend", file, "Prepend normalizer")});
  } else if (type == "Replace") {
    const auto& pattern = spec.value("pattern", nlohmann::json());
    LLAMA_TP_CHECK(pattern.is_object() && pattern.contains("String") && pattern["String"].is_string(),
                   file, ": only Replace normalizers with a \"String\" pattern are supported");
    steps_.push_back({Step::kReplace, pattern["String"].get<std::string>(),
                      string_field(spec, "content", file, "Replace normalizer")});
  } else {
    LLAMA_TP_FAIL(file, ": normalizer type \"", type,
                  "\" is not supported (supported: Sequence, Prepend, Replace)");
  }
}

std::string HfNormalizer::apply(std::string text) const {
  for (const Step& step : steps_) {
    if (step.kind == Step::kPrepend) {
      if (!text.empty()) text = step.content + text;  // HF prepends to non-empty text only
    } else {
      text = replace_all(text, step.pattern, step.content);
    }
  }
  return text;
}

}  // namespace llama_tp

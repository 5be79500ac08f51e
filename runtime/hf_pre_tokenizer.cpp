#include "runtime/hf_pre_tokenizer.h"

#include <nlohmann/json.hpp>

#include "runtime/byte_level.h"
#include "runtime/error.h"

namespace llama_tp {
namespace {

// The split GPT-2 applies when ByteLevel's use_regex is true.
const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string quote_literal(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

HfPreTokenizer::HfPreTokenizer(const nlohmann::json& spec, const std::string& file) {
  if (!spec.is_null()) add(spec, file);
}

void HfPreTokenizer::add(const nlohmann::json& spec, const std::string& file) {
  LLAMA_TP_CHECK(spec.is_object() && spec.contains("type") && spec["type"].is_string(), file,
                 ": each pre_tokenizer needs a \"type\"");
  const std::string type = spec["type"].get<std::string>();
  if (type == "Sequence") {
    LLAMA_TP_CHECK(spec.contains("pretokenizers") && spec["pretokenizers"].is_array(), file,
                   ": Sequence pre_tokenizer needs a \"pretokenizers\" list");
    for (const auto& inner : spec["pretokenizers"]) add(inner, file);
  } else if (type == "Split") {
    const auto& pattern = spec.value("pattern", nlohmann::json());
    std::string regex;
    if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string())
      regex = pattern["Regex"].get<std::string>();
    else if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string())
      regex = quote_literal(pattern["String"].get<std::string>());
    else
      LLAMA_TP_FAIL(file, ": Split pre_tokenizer needs a \"pattern\" with \"Regex\" or \"String\"");
    LLAMA_TP_CHECK(!spec.value("invert", false), file,
                   ": Split pre_tokenizer with \"invert\": true is not supported");
    const std::string behavior = spec.value("behavior", "");
    Step step;
    if (behavior == "Isolated")
      step.kind = Step::kSplitIsolated;
    else if (behavior == "Removed")
      step.kind = Step::kSplitRemoved;
    else
      LLAMA_TP_FAIL(file, ": Split behavior \"", behavior,
                    "\" is not supported (supported: Isolated, Removed)");
    step.regex = std::make_shared<RegexSplitter>(regex, file);
    steps_.push_back(std::move(step));
  } else if (type == "ByteLevel") {
    Step step{Step::kByteLevel, nullptr, spec.value("add_prefix_space", false)};
    if (spec.value("use_regex", true)) step.regex = std::make_shared<RegexSplitter>(kGpt2Pattern, file);
    steps_.push_back(std::move(step));
  } else {
    LLAMA_TP_FAIL(file, ": pre_tokenizer type \"", type,
                  "\" is not supported (supported: Sequence, Split, ByteLevel)");
  }
}

std::vector<std::string> HfPreTokenizer::split(const std::string& text) const {
  std::vector<std::string> words{text};
  for (const Step& step : steps_) {
    std::vector<std::string> next;
    next.reserve(words.size());
    for (std::string& word : words) {
      if (step.kind == Step::kByteLevel) {
        if (step.add_prefix_space && (word.empty() || word[0] != ' ')) word = " " + word;
        if (!step.regex) {
          next.push_back(byte_level::encode(word));
          continue;
        }
        for (std::string_view piece : split_isolated(*step.regex, word))
          next.push_back(byte_level::encode(piece));
        continue;
      }
      auto pieces = step.kind == Step::kSplitIsolated ? split_isolated(*step.regex, word)
                                                      : split_removed(*step.regex, word);
      for (std::string_view piece : pieces) next.emplace_back(piece);
    }
    words = std::move(next);
  }
  std::erase_if(words, [](const std::string& w) { return w.empty(); });
  return words;
}

}  // namespace llama_tp

#pragma once
// The "normalizer" section of a tokenizer.json. Supported: Sequence, Prepend, Replace with a
// String pattern (what Llama 2 style files use: Prepend "▁" + Replace " " -> "▁").
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace llama_tp {

class HfNormalizer {
 public:
  // `spec` may be null (no normalization). Unsupported types throw an Error naming `file`.
  HfNormalizer(const nlohmann::json& spec, const std::string& file);
  std::string apply(std::string text) const;

 private:
  struct Step {
    enum Kind { kPrepend, kReplace } kind;
    std::string pattern, content;  // kPrepend uses content only
  };
  void add(const nlohmann::json& spec, const std::string& file);
  std::vector<Step> steps_;
};

}  // namespace llama_tp

#pragma once
// The "pre_tokenizer" section of a tokenizer.json: cuts normalized text into words that BPE
// encodes separately. Supported: Sequence, Split (Regex or String pattern, behavior Isolated or
// Removed) and ByteLevel (Llama 3 uses Split with its Unicode regex, then ByteLevel).
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "runtime/regex_splitter.h"

namespace llama_tp {

class HfPreTokenizer {
 public:
  // `spec` may be null: the whole text is one word. Unsupported types throw an Error naming `file`.
  HfPreTokenizer(const nlohmann::json& spec, const std::string& file);
  std::vector<std::string> split(const std::string& text) const;
  bool is_identity() const { return steps_.empty(); }

 private:
  struct Step {
    enum Kind { kSplitIsolated, kSplitRemoved, kByteLevel } kind;
    std::shared_ptr<const RegexSplitter> regex;  // kByteLevel: GPT-2's regex or null
    bool add_prefix_space = false;                // kByteLevel only
  };
  void add(const nlohmann::json& spec, const std::string& file);
  std::vector<Step> steps_;
};

}  // namespace llama_tp

#pragma once
// Finds the matches of a pre-tokenizer regex (Oniguruma syntax in tokenizer.json; the Llama
// patterns are also valid PCRE2) with Unicode classes: PCRE2 with UTF + UCP.
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llama_tp {

class RegexSplitter {
 public:
  // Throws llama_tp::Error naming `source` (the file it came from) if the pattern is invalid.
  RegexSplitter(const std::string& pattern, const std::string& source);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // [begin, end) byte ranges of the non-empty, non-overlapping matches, left to right. Invalid
  // UTF-8 in `text` is never matched (it ends up between matches).
  std::vector<std::pair<size_t, size_t>> matches(std::string_view text) const;

 private:
  struct Code;
  std::unique_ptr<Code> code_;
  std::string pattern_;
};

// Splits `text` the way HF's Split pre-tokenizer with behavior "Isolated" does: every match and
// every stretch between matches becomes its own piece (empty pieces dropped).
std::vector<std::string_view> split_isolated(const RegexSplitter& regex, std::string_view text);
// behavior "Removed": only the stretches between matches are kept.
std::vector<std::string_view> split_removed(const RegexSplitter& regex, std::string_view text);

}  // namespace llama_tp

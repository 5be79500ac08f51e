#define PCRE2_CODE_UNIT_WIDTH 8
#include "runtime/regex_splitter.h"

#include <pcre2.h>

#include "runtime/error.h"
#include "runtime/utf8.h"

namespace llama_tp {

struct RegexSplitter::Code {
  pcre2_code* code = nullptr;
  ~Code() { pcre2_code_free(code); }
};

RegexSplitter::RegexSplitter(const std::string& pattern, const std::string& source)
    : code_(std::make_unique<Code>()), pattern_(pattern) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  // MATCH_INVALID_UTF: user text may hold stray bytes; they must not make matching fail.
  uint32_t options = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF;
  code_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              options, &error_code, &error_offset, nullptr);
  if (!code_->code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof message);
    LLAMA_TP_FAIL(source, ": pre-tokenizer regex cannot be compiled (",
                  reinterpret_cast<const char*>(message), " at offset ", error_offset,
                  "): ", pattern);
  }
  // The JIT makes a 100 KB prompt split in milliseconds; without it matching is still correct.
  pcre2_jit_compile(code_->code, PCRE2_JIT_COMPLETE);
}

RegexSplitter::~RegexSplitter() = default;

std::vector<std::pair<size_t, size_t>> RegexSplitter::matches(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> found;
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
      pcre2_match_data_create_from_pattern(code_->code, nullptr), &pcre2_match_data_free);
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t offset = 0;
  while (offset < text.size()) {
    int rc = pcre2_match(code_->code, subject, text.size(), offset, 0, data.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof message);
      LLAMA_TP_FAIL("pre-tokenizer regex failed on the input text (",
                    reinterpret_cast<const char*>(message), "): ", pattern_);
    }
    PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
    size_t begin = ovector[0], end = ovector[1];
    if (end > begin) {
      found.emplace_back(begin, end);
      offset = end;
    } else {
      offset = begin + utf8::char_length(text, begin);  // empty match: step over one character
    }
  }
  return found;
}

std::vector<std::string_view> split_isolated(const RegexSplitter& regex, std::string_view text) {
  std::vector<std::string_view> pieces;
  size_t previous = 0;
  for (auto [begin, end] : regex.matches(text)) {
    if (begin > previous) pieces.push_back(text.substr(previous, begin - previous));
    pieces.push_back(text.substr(begin, end - begin));
    previous = end;
  }
  if (previous < text.size()) pieces.push_back(text.substr(previous));
  return pieces;
}

std::vector<std::string_view> split_removed(const RegexSplitter& regex, std::string_view text) {
  std::vector<std::string_view> pieces;
  size_t previous = 0;
  for (auto [begin, end] : regex.matches(text)) {
    if (begin > previous) pieces.push_back(text.substr(previous, begin - previous));
    previous = end;
  }
  if (previous < text.size()) pieces.push_back(text.substr(previous));
  return pieces;
}

}  // namespace llama_tp

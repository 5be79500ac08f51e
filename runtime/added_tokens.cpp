#include "runtime/added_tokens.h"

#include <algorithm>

namespace llama_tp {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

}  // namespace

void AddedTokenMatcher::add(AddedToken token) {
  if (token.content.empty()) return;
  auto& bucket = by_first_byte_[static_cast<unsigned char>(token.content[0])];
  tokens_.push_back(std::move(token));
  bucket.push_back(tokens_.size() - 1);
  std::stable_sort(bucket.begin(), bucket.end(), [&](size_t a, size_t b) {
    return tokens_[a].content.size() > tokens_[b].content.size();
  });
}

std::vector<TextSegment> AddedTokenMatcher::split(std::string_view text, bool include_special) const {
  std::vector<TextSegment> segments;
  size_t plain_begin = 0;  // start of the plain text not yet emitted
  for (size_t pos = 0; pos < text.size();) {
    const AddedToken* match = nullptr;
    if (auto it = by_first_byte_.find(static_cast<unsigned char>(text[pos])); it != by_first_byte_.end()) {
      for (size_t index : it->second) {
        const AddedToken& t = tokens_[index];
        if ((include_special || !t.special) && text.substr(pos, t.content.size()) == t.content) {
          match = &t;
          break;
        }
      }
    }
    if (!match) {
      ++pos;
      continue;
    }
    size_t begin = pos, end = pos + match->content.size();
    if (match->lstrip)
      while (begin > plain_begin && is_space(text[begin - 1])) --begin;
    if (match->rstrip)
      while (end < text.size() && is_space(text[end])) ++end;
    if (begin > plain_begin) segments.push_back({text.substr(plain_begin, begin - plain_begin), -1});
    segments.push_back({text.substr(begin, end - begin), match->id});
    pos = plain_begin = end;
  }
  if (plain_begin < text.size()) segments.push_back({text.substr(plain_begin), -1});
  return segments;
}

}  // namespace llama_tp

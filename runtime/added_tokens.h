#pragma once
// Added tokens (special tokens such as <|eot_id|>, and user-added pieces) are cut out of the
// text before normalization and BPE, as HF tokenizers' AddedVocabulary does: leftmost match
// first, the longest one where several start at the same place.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace llama_tp {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool lstrip = false;  // the match swallows whitespace on its left
  bool rstrip = false;  // ... and on its right
};

struct TextSegment {
  std::string_view text;  // the plain text, or the matched text of an added token
  int32_t token_id;       // -1 for plain text
};

class AddedTokenMatcher {
 public:
  void add(AddedToken token);
  // Plain-text segments and added tokens in text order. With include_special=false, special
  // tokens are not recognised (their text stays plain); other added tokens always are.
  std::vector<TextSegment> split(std::string_view text, bool include_special) const;
  bool empty() const { return tokens_.empty(); }

 private:
  std::vector<AddedToken> tokens_;
  // First byte -> indices into tokens_, longest content first.
  std::unordered_map<unsigned char, std::vector<size_t>> by_first_byte_;
};

}  // namespace llama_tp

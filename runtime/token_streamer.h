#pragma once
// Turns generated token ids into printable text one token at a time. A UTF-8 character split
// across tokens is held back until it is whole, so nothing broken is ever printed; for valid
// text, the pushes plus flush() concatenate to exactly tokenizer.decode(ids).
#include <cstdint>
#include <string>

#include "runtime/tokenizer.h"

namespace llama_tp {

class TokenStreamer {
 public:
  // at_text_start=true: the first ids pushed begin the text, so SentencePiece-style tokenizers
  // drop its leading space exactly as decode() does. Pass false when the ids continue text
  // that was already shown (e.g. the prompt) so that "▁there" after "a time" keeps its space.
  explicit TokenStreamer(const Tokenizer& tokenizer, bool at_text_start = true);

  // The text completed by this token ("" while a character is still incomplete).
  std::string push(int32_t id);
  // Whatever is still held back (an unfinished character becomes U+FFFD); call at the end.
  std::string flush();

 private:
  const Tokenizer& tokenizer_;
  int spaces_to_strip_;
  std::string pending_;  // bytes of an incomplete UTF-8 character
};

}  // namespace llama_tp

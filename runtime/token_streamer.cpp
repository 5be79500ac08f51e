#include "runtime/token_streamer.h"

#include "runtime/utf8.h"

namespace llama_tp {

TokenStreamer::TokenStreamer(const Tokenizer& tokenizer, bool at_text_start)
    : tokenizer_(tokenizer),
      spaces_to_strip_(at_text_start ? tokenizer.leading_spaces_stripped() : 0) {}

std::string TokenStreamer::push(int32_t id) {
  std::string bytes = tokenizer_.token_bytes(id);
  // decode() strips spaces at the start of the whole text: keep stripping until the first
  // byte that is not a space has been seen.
  size_t skip = 0;
  while (spaces_to_strip_ > 0 && skip < bytes.size()) {
    if (bytes[skip] != ' ') {
      spaces_to_strip_ = 0;
      break;
    }
    ++skip;
    --spaces_to_strip_;
  }
  pending_.append(bytes, skip, std::string::npos);
  size_t complete = utf8::complete_prefix_length(pending_);
  std::string text = utf8::to_valid_lossy(std::string_view(pending_).substr(0, complete));
  pending_.erase(0, complete);
  return text;
}

std::string TokenStreamer::flush() {
  std::string text = utf8::to_valid_lossy(pending_);
  pending_.clear();
  return text;
}

}  // namespace llama_tp

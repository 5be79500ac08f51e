#pragma once
// Small UTF-8 helpers shared by the tokenizers and the streaming decoder. Invalid bytes are
// treated as one-byte "characters" so that no input is ever rejected or skipped.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace llama_tp::utf8 {

// Length in bytes of the character starting at s[pos]: 1..4 for a valid sequence, 1 for an
// invalid or truncated one.
size_t char_length(std::string_view s, size_t pos);

// Encodes one code point (assumed valid) as UTF-8.
std::string encode(uint32_t code_point);

// Length of the longest prefix that does not end inside an incomplete (but so far valid)
// multi-byte sequence: the rest may still be completed by bytes that arrive later.
size_t complete_prefix_length(std::string_view s);

bool is_valid(std::string_view s);

// Replaces each maximal invalid subsequence with U+FFFD, as Rust's String::from_utf8_lossy
// (which Hugging Face's byte-level decoder uses) does.
std::string to_valid_lossy(std::string_view s);

}  // namespace llama_tp::utf8

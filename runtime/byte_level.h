#pragma once
// GPT-2's byte <-> unicode mapping used by byte-level BPE (Llama 3): every byte becomes a
// printable character so that byte strings can be stored as vocabulary text ("Ġ" is a space).
#include <optional>
#include <string>
#include <string_view>

namespace llama_tp::byte_level {

// Bytes -> the UTF-8 text of their mapped characters.
std::string encode(std::string_view bytes);
// Mapped text -> bytes; nullopt when a character is not one of the 256 mapped ones.
std::optional<std::string> decode(std::string_view text);

}  // namespace llama_tp::byte_level

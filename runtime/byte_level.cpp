#include "runtime/byte_level.h"

#include <array>
#include <cstdint>
#include <unordered_map>

#include "runtime/utf8.h"

namespace llama_tp::byte_level {
namespace {

struct Tables {
  std::array<std::string, 256> byte_to_text;
  std::unordered_map<uint32_t, unsigned char> code_point_to_byte;
};

// bytes_to_unicode() from GPT-2: printable Latin-1 bytes map to themselves, the other 68 bytes
// to U+0100 onwards, in byte order.
const Tables& tables() {
  static const Tables t = [] {
    Tables t;
    uint32_t next_extra = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      uint32_t cp = printable ? b : next_extra++;
      t.byte_to_text[b] = utf8::encode(cp);
      t.code_point_to_byte[cp] = static_cast<unsigned char>(b);
    }
    return t;
  }();
  return t;
}

// Decodes the code point of a valid 1..4 byte sequence.
uint32_t code_point(std::string_view s) {
  auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(s[i])); };
  switch (s.size()) {
    case 1: return b(0);
    case 2: return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    case 3: return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    default: return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  }
}

}  // namespace

std::string encode(std::string_view bytes) {
  const Tables& t = tables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) out += t.byte_to_text[b];
  return out;
}

std::optional<std::string> decode(std::string_view text) {
  const Tables& t = tables();
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    size_t len = utf8::char_length(text, pos);
    auto it = t.code_point_to_byte.find(code_point(text.substr(pos, len)));
    if (len == 1 && static_cast<unsigned char>(text[pos]) >= 0x80) return std::nullopt;  // invalid
    if (it == t.code_point_to_byte.end()) return std::nullopt;
    out += static_cast<char>(it->second);
    pos += len;
  }
  return out;
}

}  // namespace llama_tp::byte_level

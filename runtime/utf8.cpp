#include "runtime/utf8.h"

namespace llama_tp::utf8 {
namespace {

bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// Bytes a sequence starting with `lead` needs (0: not a valid lead byte).
size_t expected_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// Allowed range of the second byte (excludes overlongs, surrogates and code points > U+10FFFF).
bool second_byte_ok(unsigned char lead, unsigned char second) {
  if (!is_continuation(second)) return false;
  if (lead == 0xE0) return second >= 0xA0;
  if (lead == 0xED) return second <= 0x9F;
  if (lead == 0xF0) return second >= 0x90;
  if (lead == 0xF4) return second <= 0x8F;
  return true;
}

// Number of bytes at s[pos..] that form a valid prefix of a sequence (== need when complete).
size_t valid_prefix(std::string_view s, size_t pos, size_t need) {
  auto lead = static_cast<unsigned char>(s[pos]);
  size_t n = 1;
  while (n < need && pos + n < s.size()) {
    auto c = static_cast<unsigned char>(s[pos + n]);
    bool ok = n == 1 ? second_byte_ok(lead, c) : is_continuation(c);
    if (!ok) break;
    ++n;
  }
  return n;
}

}  // namespace

size_t char_length(std::string_view s, size_t pos) {
  size_t need = expected_length(static_cast<unsigned char>(s[pos]));
  if (need <= 1) return 1;
  return valid_prefix(s, pos, need) == need ? need : 1;
}

std::string encode(uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
  return out;
}

size_t complete_prefix_length(std::string_view s) {
  // Only the last 3 bytes can belong to an unfinished character.
  size_t start = s.size() > 3 ? s.size() - 3 : 0;
  for (size_t pos = start; pos < s.size(); ++pos) {
    size_t need = expected_length(static_cast<unsigned char>(s[pos]));
    if (need < 2) continue;
    size_t have = s.size() - pos;
    if (have < need && valid_prefix(s, pos, need) == have) return pos;
  }
  return s.size();
}

bool is_valid(std::string_view s) {
  for (size_t pos = 0; pos < s.size();) {
    size_t need = expected_length(static_cast<unsigned char>(s[pos]));
    if (need == 0 || valid_prefix(s, pos, need) != need) return false;
    pos += need;
  }
  return true;
}

std::string to_valid_lossy(std::string_view s) {
  static const std::string kReplacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(s.size());
  for (size_t pos = 0; pos < s.size();) {
    size_t need = expected_length(static_cast<unsigned char>(s[pos]));
    size_t have = need == 0 ? 1 : valid_prefix(s, pos, need);
    if (need != 0 && have == need) {
      out.append(s.substr(pos, need));
    } else {
      out += kReplacement;  // one U+FFFD per maximal invalid subpart
    }
    pos += have;
  }
  return out;
}

}  // namespace llama_tp::utf8

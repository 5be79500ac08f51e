#include "runtime/hf_decoder.h"

#include <nlohmann/json.hpp>
#include <optional>

#include "runtime/byte_level.h"
#include "runtime/error.h"
#include "runtime/utf8.h"

namespace llama_tp {
namespace {

const std::string kReplacementChar = "\xEF\xBF\xBD";

std::string replace_all(const std::string& text, const std::string& from, const std::string& to) {
  if (from.empty()) return text;
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = text.find(from, pos)) != std::string::npos; pos = hit + from.size())
    out.append(text, pos, hit - pos).append(to);
  out.append(text, pos, std::string::npos);
  return out;
}

// "<0x0A>" -> 0x0A; anything else -> nullopt (HF accepts either hex case).
std::optional<unsigned char> byte_token(const std::string& token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return std::nullopt;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  int hi = hex(token[3]), lo = hex(token[4]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<unsigned char>(hi * 16 + lo);
}

// Runs of byte tokens become their text when valid UTF-8, else one U+FFFD per byte (HF).
std::vector<std::string> byte_fallback(const std::vector<std::string>& tokens) {
  std::vector<std::string> out;
  std::string run;
  size_t run_tokens = 0;
  auto flush = [&] {
    if (run_tokens == 0) return;
    if (utf8::is_valid(run)) {
      out.push_back(run);
    } else {
      for (size_t i = 0; i < run_tokens; ++i) out.push_back(kReplacementChar);
    }
    run.clear();
    run_tokens = 0;
  };
  for (const std::string& token : tokens) {
    if (auto b = byte_token(token)) {
      run += static_cast<char>(*b);
      ++run_tokens;
    } else {
      flush();
      out.push_back(token);
    }
  }
  flush();
  return out;
}

// Up to `start` copies of `content` off the front and `stop` off the back of one token.
std::string strip(const std::string& token, const std::string& content, int start, int stop) {
  size_t begin = 0, end = token.size();
  for (int i = 0; i < start && token.compare(begin, content.size(), content) == 0 && begin < end; ++i)
    begin += content.size();
  for (int i = 0; i < stop && end - begin >= content.size() &&
                  token.compare(end - content.size(), content.size(), content) == 0;
       ++i)
    end -= content.size();
  return token.substr(begin, end - begin);
}

// A token whose characters are all byte-level mapped becomes those bytes; any other token (an
// added token with, say, a space in it) keeps its own bytes, as in HF.
std::string byte_level_bytes(const std::string& token) {
  auto bytes = byte_level::decode(token);
  return bytes ? *bytes : token;
}

}  // namespace

HfDecoder::HfDecoder(const nlohmann::json& spec, const std::string& file) {
  if (spec.is_null()) {
    null_decoder_ = true;
    return;
  }
  add(spec, file);
  // A Strip that comes after a Fuse sees the whole text as one token: only its start matters.
  bool fused = false;
  for (const Step& step : steps_) {
    if (step.kind == Step::kFuse || step.kind == Step::kByteLevel) fused = true;
    if (step.kind == Step::kStrip && fused && step.content == " ")
      leading_spaces_stripped_ += step.start;
  }
}

void HfDecoder::add(const nlohmann::json& spec, const std::string& file) {
  LLAMA_TP_CHECK(spec.is_object() && spec.contains("type") && spec["type"].is_string(), file,
                 ": each decoder needs a \"type\"");
  const std::string type = spec["type"].get<std::string>();
  if (type == "Sequence") {
    LLAMA_TP_CHECK(spec.contains("decoders") && spec["decoders"].is_array(), file,
                   ": Sequence decoder needs a \"decoders\" list");
    for (const auto& inner : spec["decoders"]) add(inner, file);
  } else if (type == "Replace") {
    const auto& pattern = spec.value("pattern", nlohmann::json());
    LLAMA_TP_CHECK(pattern.is_object() && pattern.contains("String") && pattern["String"].is_string() &&
                       spec.contains("content") && spec["content"].is_string(),
                   file, ": only Replace decoders with a \"String\" pattern and a \"content\" are supported");
    steps_.push_back({Step::kReplace, pattern["String"].get<std::string>(),
                      spec["content"].get<std::string>()});
  } else if (type == "ByteFallback") {
    steps_.push_back({Step::kByteFallback, "", ""});
  } else if (type == "Fuse") {
    steps_.push_back({Step::kFuse, "", ""});
  } else if (type == "Strip") {
    LLAMA_TP_CHECK(spec.contains("content") && spec["content"].is_string(), file,
                   ": Strip decoder needs a \"content\" character");
    Step step{Step::kStrip, "", spec["content"].get<std::string>()};
    step.start = spec.value("start", 0);
    step.stop = spec.value("stop", 0);
    steps_.push_back(step);
  } else if (type == "ByteLevel") {
    steps_.push_back({Step::kByteLevel, "", ""});
  } else {
    LLAMA_TP_FAIL(file, ": decoder type \"", type,
                  "\" is not supported (supported: Sequence, Replace, ByteFallback, Fuse, Strip, "
                  "ByteLevel)");
  }
}

std::string HfDecoder::decode(std::vector<std::string> tokens) const {
  if (null_decoder_) {
    std::string joined;
    for (size_t i = 0; i < tokens.size(); ++i) joined += (i ? " " : "") + tokens[i];
    return joined;
  }
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Step::kReplace:
        for (std::string& t : tokens) t = replace_all(t, step.pattern, step.content);
        break;
      case Step::kByteFallback:
        tokens = byte_fallback(tokens);
        break;
      case Step::kFuse: {
        std::string all;
        for (const std::string& t : tokens) all += t;
        tokens.assign(1, all);
        break;
      }
      case Step::kStrip:
        for (std::string& t : tokens) t = strip(t, step.content, step.start, step.stop);
        break;
      case Step::kByteLevel: {
        std::string bytes;
        for (const std::string& t : tokens) bytes += byte_level_bytes(t);
        tokens.assign(1, utf8::to_valid_lossy(bytes));
        break;
      }
    }
  }
  std::string text;
  for (const std::string& t : tokens) text += t;
  return text;
}

std::string HfDecoder::token_bytes(const std::string& token) const {
  if (null_decoder_) return token;
  std::string t = token;
  bool fused = false;
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Step::kReplace:
        t = replace_all(t, step.pattern, step.content);
        break;
      case Step::kByteFallback:
        if (auto b = byte_token(t)) t = std::string(1, static_cast<char>(*b));
        break;
      case Step::kFuse:
        fused = true;
        break;
      case Step::kStrip:
        if (!fused) t = strip(t, step.content, step.start, step.stop);  // per-token strip
        break;
      case Step::kByteLevel:
        t = byte_level_bytes(t);
        fused = true;
        break;
    }
  }
  return t;
}

}  // namespace llama_tp

#pragma once
// The "decoder" section of a tokenizer.json: token strings back to text. Supported: Sequence,
// Replace (String pattern), ByteFallback, Fuse, Strip, ByteLevel; null joins tokens with " "
// as HF does.
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace llama_tp {

class HfDecoder {
 public:
  HfDecoder(const nlohmann::json& spec, const std::string& file);

  // The text HF's decoder.decode(tokens) returns.
  std::string decode(std::vector<std::string> tokens) const;
  // Raw bytes of one token for streaming: the same steps without the UTF-8 validation of
  // ByteFallback / ByteLevel and without the whole-text Strip (see leading_spaces_stripped).
  std::string token_bytes(const std::string& token) const;
  // How many leading spaces a Strip step after Fuse removes from the start of the text.
  int leading_spaces_stripped() const { return leading_spaces_stripped_; }

 private:
  struct Step {
    enum Kind { kReplace, kByteFallback, kFuse, kStrip, kByteLevel } kind;
    std::string pattern, content;  // kReplace; kStrip uses content (one character)
    int start = 0, stop = 0;       // kStrip
  };
  void add(const nlohmann::json& spec, const std::string& file);
  std::vector<Step> steps_;
  bool null_decoder_ = false;
  int leading_spaces_stripped_ = 0;
};

}  // namespace llama_tp

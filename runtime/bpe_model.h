#pragma once
// The "model" section of a tokenizer.json with type BPE: vocabulary, merges by rank, byte
// fallback and <unk>, encoding one pre-tokenized word as HF tokenizers' BPE model does.
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace llama_tp {

class BpeModel {
 public:
  // Throws an Error naming `file` for a model type other than BPE, a malformed vocabulary, or a
  // merge that names a token missing from the vocabulary.
  BpeModel(const nlohmann::json& model, const std::string& file);

  // Appends the ids of one word (already normalized and pre-tokenized) to `out`.
  void tokenize(const std::string& word, std::vector<int32_t>& out) const;

  std::optional<int32_t> id(const std::string& piece) const;
  const std::string& piece(int32_t id) const;  // "" for ids the vocabulary skips
  int32_t size() const { return static_cast<int32_t>(pieces_.size()); }

 private:
  struct Merge {
    int32_t rank;
    int32_t merged_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
  }
  void read_vocab(const nlohmann::json& vocab, const std::string& file);
  void read_merges(const nlohmann::json& merges, const std::string& file);
  // Characters of `word` as initial symbols: vocabulary entries, <0xNN> bytes, or <unk>.
  std::vector<int32_t> initial_symbols(const std::string& word) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> pieces_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;  // a word that is itself in the vocabulary is one token (Llama 3)
  int32_t byte_ids_[256];       // <0xNN> ids when byte_fallback, -1 where absent
};

}  // namespace llama_tp

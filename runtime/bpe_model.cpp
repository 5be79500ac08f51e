#include "runtime/bpe_model.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "runtime/bpe_merge.h"
#include "runtime/error.h"
#include "runtime/utf8.h"

namespace llama_tp {

BpeModel::BpeModel(const nlohmann::json& model, const std::string& file) {
  LLAMA_TP_CHECK(model.is_object(), file, ": \"model\" should be an object");
  const std::string type = model.contains("type") ? model["type"].dump() : "(none)";
  LLAMA_TP_CHECK(type == "\"BPE\"", file, ": tokenizer model type ", type,
                 " is not supported; llama_tp reads BPE tokenizer.json files (Llama 2 and "
                 "Llama 3). For a SentencePiece model, use its tokenizer.model instead");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    bool unset = !model.contains(key) || model[key].is_null() ||
                 (model[key].is_string() && model[key].get<std::string>().empty());
    LLAMA_TP_CHECK(unset, file, ": BPE option \"", key, "\" is not supported");
  }
  LLAMA_TP_CHECK(model.contains("vocab") && model["vocab"].is_object(), file,
                 ": the BPE model has no \"vocab\" object");
  read_vocab(model["vocab"], file);
  LLAMA_TP_CHECK(model.contains("merges") && model["merges"].is_array(), file,
                 ": the BPE model has no \"merges\" list");
  read_merges(model["merges"], file);

  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    const std::string unk = model["unk_token"].get<std::string>();
    unk_id_ = id(unk);
    LLAMA_TP_CHECK(unk_id_, file, ": unk_token \"", unk, "\" is not in the vocabulary");
  }
  fuse_unk_ = model.value("fuse_unk", false);
  byte_fallback_ = model.value("byte_fallback", false);
  ignore_merges_ = model.value("ignore_merges", false);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    auto found = id(name);
    byte_ids_[b] = found ? *found : -1;
  }
}

void BpeModel::read_vocab(const nlohmann::json& vocab, const std::string& file) {
  vocab_.reserve(vocab.size());
  for (const auto& [piece, value] : vocab.items()) {
    LLAMA_TP_CHECK(value.is_number_integer() && value.get<int64_t>() >= 0 &&
                       value.get<int64_t>() < (1 << 30),
                   file, ": vocabulary entry \"", piece, "\" has an invalid id");
    int32_t token_id = value.get<int32_t>();
    vocab_[piece] = token_id;
    if (token_id >= static_cast<int32_t>(pieces_.size())) pieces_.resize(token_id + 1);
    pieces_[token_id] = piece;
  }
}

void BpeModel::read_merges(const nlohmann::json& merges, const std::string& file) {
  merges_.reserve(merges.size());
  int32_t rank = 0;
  for (const auto& entry : merges) {
    std::string left, right;
    if (entry.is_string()) {  // "a b", the older format
      const std::string s = entry.get<std::string>();
      size_t space = s.find(' ');
      LLAMA_TP_CHECK(space != std::string::npos, file, ": merge #", rank, " \"", s,
                     "\" is not two tokens separated by a space");
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_string()) {
      left = entry[0].get<std::string>();
      right = entry[1].get<std::string>();
    } else {
      LLAMA_TP_FAIL(file, ": merge #", rank, " should be \"a b\" or [\"a\", \"b\"]");
    }
    auto left_id = id(left), right_id = id(right), merged_id = id(left + right);
    for (const auto& [name, found] : {std::pair{left, left_id}, {right, right_id}, {left + right, merged_id}})
      LLAMA_TP_CHECK(found, file, ": merge #", rank, " (\"", left, "\" + \"", right, "\") names \"",
                     name, "\", which is not in the vocabulary; the file is corrupt or edited");
    // Later duplicates win, as in HF (its merges are collected into a map).
    merges_[pair_key(*left_id, *right_id)] = {rank, *merged_id};
    ++rank;
  }
}

std::optional<int32_t> BpeModel::id(const std::string& piece) const {
  auto it = vocab_.find(piece);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string& BpeModel::piece(int32_t token_id) const {
  static const std::string kNone;
  return token_id >= 0 && token_id < size() ? pieces_[token_id] : kNone;
}

std::vector<int32_t> BpeModel::initial_symbols(const std::string& word) const {
  std::vector<int32_t> symbols;
  symbols.reserve(word.size());
  bool last_was_unk = false;
  for (size_t pos = 0; pos < word.size();) {
    size_t len = utf8::char_length(word, pos);
    auto found = vocab_.find(word.substr(pos, len));
    bool is_unk = false;
    if (found != vocab_.end()) {
      symbols.push_back(found->second);
    } else {
      bool all_bytes = byte_fallback_;
      for (size_t i = 0; all_bytes && i < len; ++i)
        all_bytes = byte_ids_[static_cast<unsigned char>(word[pos + i])] >= 0;
      if (all_bytes) {
        for (size_t i = 0; i < len; ++i) symbols.push_back(byte_ids_[static_cast<unsigned char>(word[pos + i])]);
      } else if (unk_id_) {
        is_unk = true;
        if (!(fuse_unk_ && last_was_unk)) symbols.push_back(*unk_id_);
      }
      // Without byte fallback or <unk> the character is dropped, as HF does.
    }
    last_was_unk = is_unk;
    pos += len;
  }
  return symbols;
}

void BpeModel::tokenize(const std::string& word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto whole = id(word)) {
      out.push_back(*whole);
      return;
    }
  }
  std::vector<int32_t> symbols = initial_symbols(word);
  merge_pairs(symbols, [this](int32_t a, int32_t b) -> std::optional<PairMerge> {
    auto it = merges_.find(pair_key(a, b));
    if (it == merges_.end()) return std::nullopt;
    return PairMerge{double(it->second.rank), it->second.merged_id};
  });
  out.insert(out.end(), symbols.begin(), symbols.end());
}

}  // namespace llama_tp

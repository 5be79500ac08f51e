// Hugging Face tokenizer.json with a BPE model: added tokens are cut out first, then each piece
// of plain text goes through the file's normalizer, pre_tokenizer and BPE model; decoding runs
// the file's decoder. Llama 3 (byte-level) and Llama 2 (SentencePiece-style) differ only in
// those sections, so nothing here is specific to one family.
#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "runtime/added_tokens.h"
#include "runtime/bpe_model.h"
#include "runtime/error.h"
#include "runtime/hf_decoder.h"
#include "runtime/hf_normalizer.h"
#include "runtime/hf_pre_tokenizer.h"
#include "runtime/tokenizer_formats.h"

namespace llama_tp {
namespace {

using nlohmann::json;

json read_json(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  LLAMA_TP_CHECK(in, "cannot open tokenizer file ", file);
  json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  LLAMA_TP_CHECK(!j.is_discarded(), file,
                 " is not valid JSON; re-download the model's tokenizer.json");
  LLAMA_TP_CHECK(j.is_object() && j.contains("model"), file,
                 " is JSON but not a Hugging Face tokenizer (no \"model\" section)");
  return j;
}

// What the post_processor says about BOS: TemplateProcessing whose "single" template starts
// with a special token adds that token; one that starts with the sequence adds none.
struct BosHint {
  std::optional<bool> add_bos;
  std::string bos_text;
};

void find_bos_hint(const json& processor, BosHint& hint) {
  if (!processor.is_object()) return;
  const std::string type = processor.value("type", "");
  if (type == "Sequence" && processor.contains("processors") && processor["processors"].is_array()) {
    for (const auto& inner : processor["processors"]) find_bos_hint(inner, hint);
  } else if (type == "TemplateProcessing" && processor.contains("single") &&
             processor["single"].is_array() && !processor["single"].empty()) {
    const json& first = processor["single"][0];
    if (first.contains("SpecialToken") && first["SpecialToken"].contains("id") &&
        first["SpecialToken"]["id"].is_string()) {
      hint.add_bos = true;
      hint.bos_text = first["SpecialToken"]["id"].get<std::string>();
    } else {
      hint.add_bos = false;
    }
  }
}

class HfTokenizer final : public Tokenizer {
 public:
  explicit HfTokenizer(const std::string& file) : HfTokenizer(read_json(file), file) {}

  HfTokenizer(const json& j, const std::string& file)
      : model_(j["model"], file),
        normalizer_(j.value("normalizer", json()), file),
        pre_tokenizer_(j.value("pre_tokenizer", json()), file),
        decoder_(j.value("decoder", json()), file) {
    read_added_tokens(j.value("added_tokens", json::array()), file);
    vocab_size_ = model_.size();
    for (const auto& [id, token] : added_by_id_) vocab_size_ = std::max(vocab_size_, id + 1);
    set_specials(file_specials(j.value("post_processor", json())));
  }

  std::vector<int32_t> encode(const std::string& text, bool add_bos, bool parse_special) const override {
    std::vector<int32_t> ids;
    if (add_bos) {
      LLAMA_TP_CHECK(bos_id() >= 0, "BOS was requested but this tokenizer has no BOS token");
      ids.push_back(bos_id());
    }
    // Words repeat a lot in real text; caching them per call keeps encoding well under a
    // second for 100 KB without shared mutable state.
    std::unordered_map<std::string, std::vector<int32_t>> word_cache;
    for (const TextSegment& segment : added_.split(text, parse_special)) {
      if (segment.token_id >= 0) {
        ids.push_back(segment.token_id);
        continue;
      }
      std::string normalized = normalizer_.apply(std::string(segment.text));
      if (pre_tokenizer_.is_identity()) {
        model_.tokenize(normalized, ids);
        continue;
      }
      for (const std::string& word : pre_tokenizer_.split(normalized)) {
        auto [it, inserted] = word_cache.try_emplace(word);
        if (inserted) model_.tokenize(word, it->second);
        ids.insert(ids.end(), it->second.begin(), it->second.end());
      }
    }
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int32_t id : ids) tokens.push_back(piece(id));
    return decoder_.decode(std::move(tokens));
  }

  std::string token_bytes(int32_t id) const override { return decoder_.token_bytes(piece(id)); }
  int leading_spaces_stripped() const override { return decoder_.leading_spaces_stripped(); }
  int32_t vocab_size() const override { return vocab_size_; }

  std::optional<int32_t> token_id(const std::string& text) const override {
    if (auto it = added_by_content_.find(text); it != added_by_content_.end()) return it->second;
    return model_.id(text);
  }

 private:
  void read_added_tokens(const json& list, const std::string& file) {
    LLAMA_TP_CHECK(list.is_array(), file, ": \"added_tokens\" should be a list");
    for (const auto& entry : list) {
      LLAMA_TP_CHECK(entry.is_object() && entry.contains("id") && entry["id"].is_number_integer() &&
                         entry["id"].get<int64_t>() >= 0 && entry["id"].get<int64_t>() < (1 << 30) &&
                         entry.contains("content") && entry["content"].is_string(),
                     file, ": each added token needs an \"id\" and a \"content\"");
      AddedToken token;
      token.id = entry["id"].get<int32_t>();
      token.content = entry["content"].get<std::string>();
      token.special = entry.value("special", false);
      token.lstrip = entry.value("lstrip", false);
      token.rstrip = entry.value("rstrip", false);
      added_by_id_[token.id] = token.content;
      added_by_content_[token.content] = token.id;
      added_.add(std::move(token));
    }
  }

  // Specials from the file alone: the post_processor's BOS, else the Llama conventions.
  TokenizerSpecials file_specials(const json& post_processor) const {
    TokenizerSpecials s;
    BosHint hint;
    find_bos_hint(post_processor, hint);
    std::vector<std::string> bos_candidates = {"<|begin_of_text|>", "<s>"};
    if (!hint.bos_text.empty()) bos_candidates.insert(bos_candidates.begin(), hint.bos_text);
    for (const std::string& text : bos_candidates) {
      if (auto id = token_id(text)) {
        s.bos_id = *id;
        s.bos_text = text;
        break;
      }
    }
    for (const char* text : {"<|end_of_text|>", "</s>"}) {
      if (auto id = token_id(text)) {
        s.eos_ids.push_back(*id);
        s.eos_text = text;
        break;
      }
    }
    // Llama models are trained with BOS; files that do not say otherwise get it.
    s.add_bos_default = hint.add_bos.value_or(s.bos_id >= 0);
    return s;
  }

  const std::string& piece(int32_t id) const {
    check_id(id);
    if (auto it = added_by_id_.find(id); it != added_by_id_.end()) return it->second;
    return model_.piece(id);
  }

  BpeModel model_;
  HfNormalizer normalizer_;
  HfPreTokenizer pre_tokenizer_;
  HfDecoder decoder_;
  AddedTokenMatcher added_;
  std::unordered_map<int32_t, std::string> added_by_id_;
  std::unordered_map<std::string, int32_t> added_by_content_;
  int32_t vocab_size_ = 0;
};

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& file) {
  try {
    return std::make_unique<HfTokenizer>(file);
  } catch (const json::exception& e) {  // a field of the wrong JSON type somewhere
    LLAMA_TP_FAIL(file, " has an unexpected structure (", e.what(),
                  "); re-download the model's tokenizer.json");
  }
}

}  // namespace llama_tp

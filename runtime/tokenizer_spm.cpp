// SentencePiece tokenizer.model, encoded by the sentencepiece library itself. Decoding uses the
// same decoder steps as a Llama 2 tokenizer.json (▁ -> space, <0xNN> bytes, drop the first
// space) so that every tokenizer decodes the way HF tokenizers does, special tokens included.
#include <nlohmann/json.hpp>
#include <sentencepiece_processor.h>

#include "runtime/error.h"
#include "runtime/hf_decoder.h"
#include "runtime/tokenizer_formats.h"

namespace llama_tp {
namespace {

nlohmann::json llama2_decoder_spec() {
  return nlohmann::json::parse(R"({"type": "Sequence", "decoders": [
      {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
      {"type": "ByteFallback"}, {"type": "Fuse"},
      {"type": "Strip", "content": " ", "start": 1, "stop": 0}]})");
}

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& file)
      : decoder_(llama2_decoder_spec(), file) {
    auto status = processor_.Load(file);
    LLAMA_TP_CHECK(status.ok(), file, " is not a readable SentencePiece model (", status.ToString(),
                   "); re-download the model's tokenizer.model");
    TokenizerSpecials s;
    s.bos_id = processor_.bos_id();
    if (s.bos_id >= 0) s.bos_text = processor_.IdToPiece(s.bos_id);
    if (processor_.eos_id() >= 0) {
      s.eos_ids = {processor_.eos_id()};
      s.eos_text = processor_.IdToPiece(processor_.eos_id());
    }
    s.add_bos_default = s.bos_id >= 0;
    set_specials(s);
    // sentencepiece never matches control pieces (<s>, </s>) or <unk> in text; we do, on request.
    for (int id = 0; id < processor_.GetPieceSize(); ++id)
      if (processor_.IsControl(id) || processor_.IsUnknown(id))
        special_pieces_.emplace_back(processor_.IdToPiece(id), id);
  }

  std::vector<int32_t> encode(const std::string& text, bool add_bos, bool parse_special) const override {
    std::vector<int32_t> ids;
    if (add_bos) {
      LLAMA_TP_CHECK(bos_id() >= 0, "BOS was requested but this tokenizer has no BOS token");
      ids.push_back(bos_id());
    }
    size_t begin = 0;
    while (true) {
      auto [pos, special] = parse_special ? next_special(text, begin)
                                          : std::pair<size_t, const Special*>{std::string::npos, nullptr};
      encode_plain(text.substr(begin, std::min(pos, text.size()) - begin), ids);
      if (!special) break;
      ids.push_back(special->second);
      begin = pos + special->first.size();
    }
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::vector<std::string> pieces;
    for (int32_t id : ids) pieces.push_back(piece(id));
    return decoder_.decode(std::move(pieces));
  }

  std::string token_bytes(int32_t id) const override { return decoder_.token_bytes(piece(id)); }
  int leading_spaces_stripped() const override { return decoder_.leading_spaces_stripped(); }
  int32_t vocab_size() const override { return processor_.GetPieceSize(); }

  std::optional<int32_t> token_id(const std::string& text) const override {
    int id = processor_.PieceToId(text);  // unknown pieces map to <unk>: confirm the spelling
    if (id < 0 || processor_.IdToPiece(id) != text) return std::nullopt;
    return id;
  }

 private:
  using Special = std::pair<std::string, int32_t>;

  // Leftmost special piece at or after `from` (longest on ties); npos when none.
  std::pair<size_t, const Special*> next_special(const std::string& text, size_t from) const {
    std::pair<size_t, const Special*> best{std::string::npos, nullptr};
    for (const Special& s : special_pieces_) {
      if (s.first.empty()) continue;
      size_t at = text.find(s.first, from);
      if (at < best.first || (at == best.first && at != std::string::npos &&
                              s.first.size() > best.second->first.size()))
        best = {at, &s};
    }
    return best;
  }

  void encode_plain(const std::string& text, std::vector<int32_t>& ids) const {
    if (text.empty()) return;
    std::vector<int> pieces;
    auto status = processor_.Encode(text, &pieces);
    LLAMA_TP_CHECK(status.ok(), "SentencePiece could not encode the text: ", status.ToString());
    ids.insert(ids.end(), pieces.begin(), pieces.end());
  }

  std::string piece(int32_t id) const {
    check_id(id);
    return processor_.IdToPiece(id);
  }

  sentencepiece::SentencePieceProcessor processor_;
  HfDecoder decoder_;
  std::vector<Special> special_pieces_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& file) {
  return std::make_unique<SentencePieceTokenizer>(file);
}

}  // namespace llama_tp

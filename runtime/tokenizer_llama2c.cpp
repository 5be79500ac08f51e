// llama2.c tokenizer.bin: int32 max_token_length, then per token {float score, int32 length,
// bytes}. Encoding follows llama2.c's run.c: a dummy-prefix " " token, each UTF-8 character as
// its piece or its bytes (+3, the <0xNN> ids), then greedily merging the adjacent pair whose
// merged piece has the best score. Ids 0/1/2 are <unk>, BOS and EOS.
#include <cstring>
#include <fstream>
#include <unordered_map>

#include "runtime/bpe_merge.h"
#include "runtime/error.h"
#include "runtime/tokenizer_formats.h"
#include "runtime/utf8.h"

namespace llama_tp {
namespace {

constexpr int32_t kBosId = 1, kEosId = 2, kFirstByteId = 3;

class Llama2cTokenizer final : public Tokenizer {
 public:
  explicit Llama2cTokenizer(const std::string& file) {
    read(file);
    init();
  }

  // From pieces and scores held in memory (the vocabulary inside a GGUF file).
  Llama2cTokenizer(std::vector<std::string> pieces, std::vector<float> scores, const std::string& source) {
    LLAMA_TP_CHECK(pieces.size() == scores.size(), source, ": ", pieces.size(), " tokens but ", scores.size(), " scores");
    pieces_ = std::move(pieces);
    scores_ = std::move(scores);
    for (size_t i = 0; i < pieces_.size(); ++i) ids_.try_emplace(pieces_[i], static_cast<int32_t>(i));
    LLAMA_TP_CHECK(pieces_.size() >= kFirstByteId + 256, source, " holds ", pieces_.size(),
                   " tokens; a llama2.c-style tokenizer has at least 259 (<unk>, BOS, EOS, 256 bytes)");
    init();
  }

 private:
  void init() {
    TokenizerSpecials s;
    s.bos_id = kBosId;
    s.bos_text = "<s>";
    s.eos_ids = {kEosId};
    s.eos_text = "</s>";
    s.add_bos_default = true;
    set_specials(s);
    auto space = token_id(" ");
    dummy_prefix_id_ = space ? *space : -1;
  }

 public:

  std::vector<int32_t> encode(const std::string& text, bool add_bos, bool parse_special) const override {
    std::vector<int32_t> ids;
    if (add_bos) ids.push_back(kBosId);
    // run.c knows no special-token text; "<s>" / "</s>" are recognised here on request.
    size_t begin = 0;
    while (begin <= text.size()) {
      size_t special_pos = std::string::npos;
      int32_t special_id = -1;
      size_t special_len = 0;
      if (parse_special) {
        for (auto [marker, id] : {std::pair{"<s>", kBosId}, {"</s>", kEosId}}) {
          size_t at = text.find(marker, begin);
          if (at < special_pos) special_pos = at, special_id = id, special_len = std::strlen(marker);
        }
      }
      size_t end = std::min(special_pos, text.size());
      encode_plain(std::string_view(text).substr(begin, end - begin), ids);
      if (special_pos == std::string::npos) break;
      ids.push_back(special_id);
      begin = special_pos + special_len;
    }
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string bytes;
    for (int32_t id : ids) bytes += token_bytes(id);
    // The dummy prefix's space is not part of the text (run.c drops it after BOS).
    if (!bytes.empty() && bytes[0] == ' ') bytes.erase(0, 1);
    return utf8::to_valid_lossy(bytes);
  }

  std::string token_bytes(int32_t id) const override {
    check_id(id);
    // The file spells BOS/EOS "\n<s>\n" / "\n</s>\n"; show them as the text encode() accepts.
    static const char* kSpecialText[] = {"<unk>", "<s>", "</s>"};
    if (id < kFirstByteId) return kSpecialText[id];
    const std::string& piece = pieces_[id];
    unsigned int byte = 0;
    char tail = 0;
    if (piece.size() == 6 && std::sscanf(piece.c_str(), "<0x%02X%c", &byte, &tail) == 2 && tail == '>')
      return std::string(1, static_cast<char>(byte));
    return piece;
  }

  int leading_spaces_stripped() const override { return 1; }
  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }

  std::optional<int32_t> token_id(const std::string& piece) const override {
    auto it = ids_.find(piece);
    if (it == ids_.end()) return std::nullopt;
    return it->second;
  }

 private:
  void read(const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    LLAMA_TP_CHECK(in, "cannot open tokenizer file ", file);
    int32_t max_token_length = 0;
    LLAMA_TP_CHECK(in.read(reinterpret_cast<char*>(&max_token_length), 4) && max_token_length > 0 &&
                       max_token_length < (1 << 16),
                   file, " is not a llama2.c tokenizer.bin (bad max_token_length header)");
    // The file does not store the vocabulary size: read tokens until the end.
    while (in.peek() != std::char_traits<char>::eof()) {
      float score = 0;
      int32_t length = 0;
      LLAMA_TP_CHECK(in.read(reinterpret_cast<char*>(&score), 4) &&
                         in.read(reinterpret_cast<char*>(&length), 4) && length >= 0 &&
                         length <= max_token_length,
                     file, " is truncated or corrupt at token ", pieces_.size());
      std::string piece(length, '\0');
      LLAMA_TP_CHECK(in.read(piece.data(), length), file, " is truncated at token ", pieces_.size());
      ids_.try_emplace(piece, static_cast<int32_t>(pieces_.size()));  // first wins, like run.c's lookup
      pieces_.push_back(std::move(piece));
      scores_.push_back(score);
    }
    LLAMA_TP_CHECK(pieces_.size() >= kFirstByteId + 256, file, " holds ", pieces_.size(),
                   " tokens; a llama2.c tokenizer has at least 259 (<unk>, BOS, EOS, 256 bytes)");
  }

  void encode_plain(std::string_view text, std::vector<int32_t>& ids) const {
    if (text.empty()) return;
    std::vector<int32_t> symbols;
    if (dummy_prefix_id_ >= 0) symbols.push_back(dummy_prefix_id_);
    for (size_t pos = 0; pos < text.size();) {
      size_t len = utf8::char_length(text, pos);
      if (auto id = token_id(std::string(text.substr(pos, len)))) {
        symbols.push_back(*id);
      } else {
        for (size_t i = 0; i < len; ++i)
          symbols.push_back(static_cast<unsigned char>(text[pos + i]) + kFirstByteId);
      }
      pos += len;
    }
    merge_pairs(symbols, [this](int32_t a, int32_t b) -> std::optional<PairMerge> {
      auto id = token_id(pieces_[a] + pieces_[b]);
      if (!id) return std::nullopt;
      return PairMerge{-double(scores_[*id]), *id};  // best score first
    });
    ids.insert(ids.end(), symbols.begin(), symbols.end());
  }

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int32_t> ids_;
  int32_t dummy_prefix_id_ = -1;
};

}  // namespace

std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& file) {
  return std::make_unique<Llama2cTokenizer>(file);
}

std::unique_ptr<Tokenizer> make_llama2c_tokenizer(std::vector<std::string> pieces, std::vector<float> scores,
                                                   const std::string& source) {
  return std::make_unique<Llama2cTokenizer>(std::move(pieces), std::move(scores), source);
}

}  // namespace llama_tp

#pragma once
// Text <-> token ids on the coordinator, without Python. Three kinds of files are read:
//   - Hugging Face tokenizer.json, model type BPE (Llama 3 byte-level BPE and Llama 2
//     SentencePiece-style BPE, both driven by the file's normalizer / pre_tokenizer / decoder);
//   - llama2.c tokenizer.bin, and the same kind of vocabulary inside a GGUF model (.gguf);
//   - SentencePiece tokenizer.model (through the sentencepiece library).
// Encoding matches Hugging Face `tokenizers` (add_special_tokens=False, plus an optional BOS);
// decoding matches its decode(ids, skip_special_tokens=False).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace llama_tp {

// What tokenizer_config.json (or, failing that, the tokenizer file itself) says about special
// tokens and chat. Filled in by Tokenizer::load.
struct TokenizerSpecials {
  int32_t bos_id = -1;              // -1: the model has no BOS token
  std::string bos_text;             // text that encode(parse_special=true) maps to bos_id
  std::vector<int32_t> eos_ids;     // eos token first, then <|eot_id|> / <|eom_id|> if present
  std::string eos_text;             // text of eos_ids[0] ("" when none)
  bool add_bos_default = false;
  std::string chat_template;        // the Jinja source, "" when the folder has none
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // `path` is a model folder (tokenizer.json, else tokenizer.model, else tokenizer.bin is used)
  // or one of those files. tokenizer_config.json beside it is read when present. Throws
  // llama_tp::Error naming the file on anything missing or malformed.
  static std::unique_ptr<Tokenizer> load(const std::string& path);

  // parse_special=false: special-token text such as "<|eot_id|>" in `text` is encoded as
  // ordinary text; true: it becomes the special token.
  virtual std::vector<int32_t> encode(const std::string& text, bool add_bos,
                                      bool parse_special) const = 0;
  // Same text as HF tokenizers' decode(ids, skip_special_tokens=False); special tokens appear
  // as their text. Invalid UTF-8 becomes U+FFFD. Ids outside the vocabulary are an Error.
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  // Raw bytes of one token (byte-level, "▁" and <0xNN> mappings undone). May be an incomplete
  // UTF-8 sequence; TokenStreamer assembles these into text.
  virtual std::string token_bytes(int32_t id) const = 0;
  // decode() drops up to this many spaces at the very start of the text (SentencePiece-style
  // tokenizers: the space that encoding prepended). TokenStreamer follows the same rule.
  virtual int leading_spaces_stripped() const = 0;

  virtual int32_t vocab_size() const = 0;
  // Id of a vocabulary entry spelled as stored in the file ("<|eot_id|>", "Ġthe", "▁the").
  virtual std::optional<int32_t> token_id(const std::string& piece) const = 0;

  int32_t bos_id() const { return specials_.bos_id; }
  const std::vector<int32_t>& eos_ids() const { return specials_.eos_ids; }
  bool add_bos_default() const { return specials_.add_bos_default; }
  const TokenizerSpecials& specials() const { return specials_; }
  bool is_eos(int32_t id) const;

  // Set by load(); public so that tests and tools can build a tokenizer by hand.
  void set_specials(TokenizerSpecials specials) { specials_ = std::move(specials); }

 protected:
  // Throws an Error when an id is outside [0, vocab_size()).
  void check_id(int32_t id) const;

 private:
  TokenizerSpecials specials_;
};

}  // namespace llama_tp

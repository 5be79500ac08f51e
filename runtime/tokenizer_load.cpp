// Tokenizer::load: finds the tokenizer file, picks its reader, applies tokenizer_config.json.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

#include "runtime/error.h"
#include "runtime/tokenizer.h"
#include "runtime/tokenizer_config.h"
#include "runtime/tokenizer_formats.h"

namespace llama_tp {
namespace fs = std::filesystem;
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// In a model folder, tokenizer.json wins: it is what HF transformers uses for these models.
std::string find_tokenizer_file(const std::string& path) {
  LLAMA_TP_CHECK(fs::exists(path), "tokenizer path ", path, " does not exist");
  if (!fs::is_directory(path)) return path;
  for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer.bin"}) {
    fs::path candidate = fs::path(path) / name;
    if (fs::exists(candidate)) return candidate.string();
  }
  LLAMA_TP_FAIL("no tokenizer in ", path,
                ": expected tokenizer.json, tokenizer.model or tokenizer.bin in that folder");
}

bool starts_like_json(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  char c;
  while (in.get(c))
    if (!std::isspace(static_cast<unsigned char>(c))) return c == '{';
  return false;
}

std::unique_ptr<Tokenizer> read_tokenizer_file(const std::string& file) {
  if (ends_with(file, ".json")) return load_hf_tokenizer(file);
  if (ends_with(file, ".model")) return load_sentencepiece_tokenizer(file);
  if (ends_with(file, ".bin")) return load_llama2c_tokenizer(file);
  if (ends_with(file, ".gguf")) return load_gguf_tokenizer(file);
  if (starts_like_json(file)) return load_hf_tokenizer(file);
  LLAMA_TP_FAIL("cannot tell the format of tokenizer file ", file,
                ": name it tokenizer.json (Hugging Face), tokenizer.model (SentencePiece) or "
                "tokenizer.bin (llama2.c), or pass a .gguf model");
}

int32_t id_of(const Tokenizer& tok, const std::string& text, const char* key,
              const std::string& config_file) {
  auto id = tok.token_id(text);
  LLAMA_TP_CHECK(id, config_file, ": ", key, " \"", text,
                 "\" is not in the tokenizer's vocabulary; the config does not belong to this "
                 "tokenizer");
  return *id;
}

void apply_config(Tokenizer& tok, const TokenizerConfig& config, const std::string& config_file) {
  TokenizerSpecials s = tok.specials();
  if (config.bos_token) {
    s.bos_id = id_of(tok, *config.bos_token, "bos_token", config_file);
    s.bos_text = *config.bos_token;
  }
  if (config.eos_token) {
    int32_t eos = id_of(tok, *config.eos_token, "eos_token", config_file);
    std::erase(s.eos_ids, eos);
    s.eos_ids.insert(s.eos_ids.begin(), eos);
    s.eos_text = *config.eos_token;
  }
  if (config.add_bos_token) s.add_bos_default = *config.add_bos_token;
  s.chat_template = config.chat_template;
  tok.set_specials(std::move(s));
}

// Llama 3 instruct models end a turn with <|eot_id|> (and tool calls with <|eom_id|>), which
// the config's eos_token does not name.
void add_turn_end_tokens(Tokenizer& tok) {
  TokenizerSpecials s = tok.specials();
  for (const char* piece : {"<|eot_id|>", "<|eom_id|>"}) {
    auto id = tok.token_id(piece);
    if (id && std::find(s.eos_ids.begin(), s.eos_ids.end(), *id) == s.eos_ids.end())
      s.eos_ids.push_back(*id);
  }
  tok.set_specials(std::move(s));
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& path) {
  std::string file = find_tokenizer_file(path);
  std::unique_ptr<Tokenizer> tok = read_tokenizer_file(file);
  fs::path config_file = fs::path(file).parent_path() / "tokenizer_config.json";
  if (fs::exists(config_file))
    apply_config(*tok, read_tokenizer_config(config_file.string()), config_file.string());
  add_turn_end_tokens(*tok);
  return tok;
}

bool Tokenizer::is_eos(int32_t id) const {
  return std::find(eos_ids().begin(), eos_ids().end(), id) != eos_ids().end();
}

void Tokenizer::check_id(int32_t id) const {
  LLAMA_TP_CHECK(id >= 0 && id < vocab_size(), "token id ", id,
                 " is outside the tokenizer's vocabulary (0..", vocab_size() - 1, ")");
}

}  // namespace llama_tp

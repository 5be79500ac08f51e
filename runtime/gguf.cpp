#include "runtime/gguf.h"

#include <cstring>
#include <limits>
#include <optional>

#include "runtime/error.h"
#include "runtime/llama2c.h"
#include "runtime/tokenizer.h"
#include "runtime/tokenizer_formats.h"
#include "runtime/weight_block.h"

namespace llama_tp {

namespace {

constexpr uint32_t kVersion = 3;
constexpr uint64_t kMaxDim = uint64_t(1) << 40;

const char* ggml_type_name(uint32_t t) {
  static const char* kNames[] = {"F32",     "F16",    "Q4_0",    "Q4_1",  "Q4_2", "Q4_3",   "Q5_0",  "Q5_1",
                                 "Q8_0",    "Q8_1",   "Q2_K",    "Q3_K",  "Q4_K", "Q5_K",   "Q6_K",  "Q8_K",
                                 "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS",
                                 "I8",      "I16",    "I32",     "I64",   "F64",  "IQ1_M",  "BF16"};
  return t < sizeof(kNames) / sizeof(kNames[0]) ? kNames[t] : "unknown";
}

// A bounds-checked reader over the mapped file; every failure names the file.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& path) : data_(data), size_(size), path_(path) {}
  size_t pos() const { return pos_; }

  void need(uint64_t n, const char* what) const {
    LLAMA_TP_CHECK(n <= size_ - pos_, path_, " is truncated: it ends (at ", size_, " bytes) inside the GGUF ", what,
                   " that starts at byte ", pos_, ".");
  }
  template <typename T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str(const char* what) {
    const uint64_t n = get<uint64_t>(what);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), size_t(n));
    pos_ += size_t(n);
    return s;
  }
  GgufValue value(uint32_t type, const std::string& key, int depth = 0) {
    GgufValue v;
    switch (type) {
      case 0: v.scalar = uint64_t(get<uint8_t>("metadata value")); break;
      case 1: v.scalar = int64_t(get<int8_t>("metadata value")); break;
      case 2: v.scalar = uint64_t(get<uint16_t>("metadata value")); break;
      case 3: v.scalar = int64_t(get<int16_t>("metadata value")); break;
      case 4: v.scalar = uint64_t(get<uint32_t>("metadata value")); break;
      case 5: v.scalar = int64_t(get<int32_t>("metadata value")); break;
      case 6: v.scalar = double(get<float>("metadata value")); break;
      case 7: v.scalar = get<uint8_t>("metadata value") != 0; break;
      case 8: v.scalar = str("metadata string"); break;
      case 9: {
        LLAMA_TP_CHECK(depth < 4, path_, ": metadata key ", key, " nests arrays too deeply; the file is corrupt.");
        const uint32_t elem = get<uint32_t>("metadata array");
        const uint64_t n = get<uint64_t>("metadata array");
        LLAMA_TP_CHECK(n <= size_ - pos_, path_, " is truncated or corrupt: metadata array ", key, " claims ", n,
                       " elements, more than the ", size_ - pos_, " bytes left in the file.");
        v.is_array = true;
        v.array.reserve(size_t(n));
        for (uint64_t i = 0; i < n; ++i) v.array.push_back(value(elem, key, depth + 1));
        break;
      }
      case 10: v.scalar = get<uint64_t>("metadata value"); break;
      case 11: v.scalar = get<int64_t>("metadata value"); break;
      case 12: v.scalar = get<double>("metadata value"); break;
      default:
        LLAMA_TP_FAIL(path_, " is not a valid GGUF file: metadata key ", key, " has unknown value type ", type, ".");
    }
    return v;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  std::string path_;
  size_t pos_ = 0;
};

const GgufValue* find(const std::map<std::string, GgufValue>& kv, const std::string& key) {
  auto it = kv.find(key);
  return it == kv.end() ? nullptr : &it->second;
}

bool as_number(const GgufValue& v, double& out) {
  if (v.is_array) return false;
  if (auto p = std::get_if<int64_t>(&v.scalar)) return out = double(*p), true;
  if (auto p = std::get_if<uint64_t>(&v.scalar)) return out = double(*p), true;
  if (auto p = std::get_if<double>(&v.scalar)) return out = *p, true;
  return false;
}

double number(const std::map<std::string, GgufValue>& kv, const std::string& key, const std::string& path,
              std::optional<double> fallback = std::nullopt) {
  const GgufValue* v = find(kv, key);
  if (!v) {
    LLAMA_TP_CHECK(fallback, path, " lacks the GGUF metadata key ", key, ", which a Llama model needs.");
    return *fallback;
  }
  double out = 0;
  LLAMA_TP_CHECK(as_number(*v, out), path, ": GGUF metadata key ", key, " is not a number.");
  return out;
}

int64_t count(const std::map<std::string, GgufValue>& kv, const std::string& key, const std::string& path,
              std::optional<double> fallback = std::nullopt) {
  const double d = number(kv, key, path, fallback);
  LLAMA_TP_CHECK(d >= 0 && d <= double(kMaxDim) && d == double(int64_t(d)), path, ": GGUF metadata key ", key,
                 " is ", d, ", not a plausible count.");
  return int64_t(d);
}

std::string string_value(const std::map<std::string, GgufValue>& kv, const std::string& key) {
  const GgufValue* v = find(kv, key);
  if (!v || v->is_array) return "";
  auto p = std::get_if<std::string>(&v->scalar);
  return p ? *p : "";
}

// "blk.3.attn_q.weight" -> "model.layers.3.self_attn.q_proj.weight"; "" for tensors llama_tp
// does not read (rope_freqs and the like).
std::string hf_name(const std::string& g, bool& permuted) {
  permuted = false;
  if (g == "token_embd.weight") return "model.embed_tokens.weight";
  if (g == "output_norm.weight") return "model.norm.weight";
  if (g == "output.weight") return "lm_head.weight";
  if (g.rfind("blk.", 0) != 0) return "";
  const size_t dot = g.find('.', 4);
  if (dot == std::string::npos || dot == 4) return "";
  const std::string layer = g.substr(4, dot - 4);
  if (layer.find_first_not_of("0123456789") != std::string::npos) return "";
  static const std::pair<const char*, const char*> kMap[] = {
      {"attn_norm.weight", "input_layernorm.weight"},  {"attn_q.weight", "self_attn.q_proj.weight"},
      {"attn_k.weight", "self_attn.k_proj.weight"},    {"attn_v.weight", "self_attn.v_proj.weight"},
      {"attn_output.weight", "self_attn.o_proj.weight"}, {"ffn_norm.weight", "post_attention_layernorm.weight"},
      {"ffn_gate.weight", "mlp.gate_proj.weight"},     {"ffn_down.weight", "mlp.down_proj.weight"},
      {"ffn_up.weight", "mlp.up_proj.weight"}};
  const std::string rest = g.substr(dot + 1);
  for (auto [from, to] : kMap)
    if (rest == from) {
      permuted = rest == "attn_q.weight" || rest == "attn_k.weight";
      return "model.layers." + layer + "." + to;
    }
  return "";
}

}  // namespace

GgufSource::GgufSource(const std::string& path) : file_(path) {
  const uint8_t* data = file_.data();
  const size_t size = file_.size();
  LLAMA_TP_CHECK(size >= 24, path, " is only ", size, " bytes long, too short for a GGUF file (its header is 24 bytes).");
  LLAMA_TP_CHECK(std::memcmp(data, "GGUF", 4) == 0, path, " is not a GGUF file: it does not start with the \"GGUF\" magic.");
  Cursor c(data, size, path);
  c.get<uint32_t>("magic");
  const uint32_t version = c.get<uint32_t>("header");
  LLAMA_TP_CHECK(version == kVersion, path, " is GGUF version ", version, "; llama_tp reads GGUF version 3.");
  const uint64_t n_tensors = c.get<uint64_t>("header"), n_kv = c.get<uint64_t>("header");
  LLAMA_TP_CHECK(n_tensors <= size && n_kv <= size, path, " is corrupt: its header claims ", n_tensors, " tensors and ",
                 n_kv, " metadata keys, more than fit in its ", size, " bytes.");
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.str("metadata key");
    const uint32_t type = c.get<uint32_t>("metadata value type");
    kv_[key] = c.value(type, key);
  }
  const std::string arch = string_value(kv_, "general.architecture");
  LLAMA_TP_CHECK(arch == "llama", path, " holds a GGUF model of architecture \"", arch,
                 "\"; llama_tp loads Llama models (general.architecture \"llama\").");
  const int64_t alignment = count(kv_, "general.alignment", path, 32);
  LLAMA_TP_CHECK(alignment > 0 && (alignment & (alignment - 1)) == 0, path, ": general.alignment ", alignment,
                 " is not a power of two.");

  struct Raw {
    std::string name;
    std::vector<int64_t> shape;
    uint32_t type;
    uint64_t offset;
  };
  std::vector<Raw> raws;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    Raw r;
    r.name = c.str("tensor info");
    const uint32_t n_dims = c.get<uint32_t>("tensor info");
    LLAMA_TP_CHECK(n_dims >= 1 && n_dims <= 4, path, ": tensor ", r.name, " has ", n_dims,
                   " dimensions; GGUF tensors have 1 to 4.");
    std::vector<int64_t> ne;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t n = c.get<uint64_t>("tensor info");
      LLAMA_TP_CHECK(n > 0 && n <= kMaxDim, path, ": tensor ", r.name, " has implausible dimension ", n, ".");
      ne.push_back(int64_t(n));
    }
    r.shape.assign(ne.rbegin(), ne.rend());  // ne0 is the innermost: the HF column count
    r.type = c.get<uint32_t>("tensor info");
    r.offset = c.get<uint64_t>("tensor info");
    raws.push_back(std::move(r));
  }
  const uint64_t data_start = (uint64_t(c.pos()) + uint64_t(alignment) - 1) / uint64_t(alignment) * uint64_t(alignment);

  for (const Raw& r : raws) {
    DType dt;
    if (r.type == 0) dt = DType::F32;
    else if (r.type == 1) dt = DType::F16;
    else if (r.type == 30) dt = DType::BF16;
    else
      LLAMA_TP_FAIL(path, ": tensor ", r.name, " has GGML type ", ggml_type_name(r.type), " (", r.type,
                    "); llama_tp reads only F32, F16 and BF16 GGUF tensors, not quantized ones (convert with "
                    "--outtype f16 or f32).");
    const uint64_t bytes = uint64_t(checked_numel(r.shape, r.name)) * dtype_size(dt);
    const unsigned __int128 end = (unsigned __int128)data_start + r.offset + bytes;
    LLAMA_TP_CHECK(end <= size, path, ": tensor ", r.name, " (", shape_to_string(r.shape), ", ", ggml_type_name(r.type),
                   ") lies at data offset ", r.offset, " and ends beyond the end of the file (", size,
                   " bytes); the file is truncated or corrupt.");
    bool permuted = false;
    const std::string name = hf_name(r.name, permuted);
    if (name.empty()) continue;
    LLAMA_TP_CHECK(!entries_.count(name), path, " holds tensor ", r.name, " twice.");
    entries_[name] = Entry{r.name, size_t(data_start + r.offset), dt, r.shape, permuted};
  }

  config_.dim = count(kv_, "llama.embedding_length", path);
  config_.ffn_dim = count(kv_, "llama.feed_forward_length", path);
  config_.n_layers = count(kv_, "llama.block_count", path);
  config_.n_heads = count(kv_, "llama.attention.head_count", path);
  config_.n_kv_heads = count(kv_, "llama.attention.head_count_kv", path, double(config_.n_heads));
  LLAMA_TP_CHECK(config_.n_heads > 0, path, ": llama.attention.head_count is 0.");
  config_.head_dim = count(kv_, "llama.attention.key_length", path, double(config_.dim / config_.n_heads));
  double vocab_fallback = 0;
  if (const GgufValue* toks = find(kv_, "tokenizer.ggml.tokens"); toks && toks->is_array)
    vocab_fallback = double(toks->array.size());
  else if (auto it = entries_.find("model.embed_tokens.weight"); it != entries_.end())
    vocab_fallback = double(it->second.shape.at(0));
  config_.vocab_size = count(kv_, "llama.vocab_size", path, vocab_fallback);
  config_.max_seq_len = count(kv_, "llama.context_length", path);
  config_.norm_eps = float(number(kv_, "llama.attention.layer_norm_rms_epsilon", path, 1e-5));
  config_.rope = RopeConfig{};
  config_.rope.theta = number(kv_, "llama.rope.freq_base", path, 10000.0);
  config_.tie_embeddings = !entries_.count("lm_head.weight");
  config_.bos_token_id = count(kv_, "tokenizer.ggml.bos_token_id", path, 1);
  config_.eos_token_ids = {count(kv_, "tokenizer.ggml.eos_token_id", path, 2)};
  auto emb = entries_.find("model.embed_tokens.weight");
  config_.dtype = emb != entries_.end() ? emb->second.dtype : DType::F32;
  config_.validate(path);
}

std::vector<std::string> GgufSource::names() const {
  std::vector<std::string> out;
  for (const auto& [name, e] : entries_) out.push_back(name);
  return out;
}

bool GgufSource::has(const std::string& name) const { return entries_.count(name) != 0; }

const GgufSource::Entry& GgufSource::entry(const std::string& name) const {
  auto it = entries_.find(name);
  LLAMA_TP_CHECK(it != entries_.end(), "tensor ", name, " is not in GGUF file ", path(), ".");
  return it->second;
}

TensorInfo GgufSource::info(const std::string& name) const {
  const Entry& e = entry(name);
  return TensorInfo{e.dtype, e.shape};
}

Tensor GgufSource::read_block(const std::string& name, int64_t row0, int64_t n_rows, int64_t col0, int64_t n_cols,
                              DType out) const {
  const Entry& e = entry(name);
  StoredTensor t;
  t.data = file_.data() + e.offset;
  t.dtype = e.dtype;
  t.shape = e.shape;
  if (e.rope_permuted) {
    const int64_t hd = config_.head_dim;
    t.row_map = [hd](int64_t r) { return llama2c_rope_row(r, hd); };
  }
  return read_stored_block(t, name + " (" + e.gguf_name + ")", path(), row0, n_rows, col0, n_cols, out);
}

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::string& path) {
  GgufSource g(path);
  const auto& kv = g.metadata();
  const std::string model = string_value(kv, "tokenizer.ggml.model");
  LLAMA_TP_CHECK(model == "llama", path, " holds a tokenizer of type \"", model,
                 "\" (tokenizer.ggml.model); llama_tp reads the SentencePiece-style \"llama\" vocabulary from GGUF files.");
  const GgufValue* toks = find(kv, "tokenizer.ggml.tokens");
  const GgufValue* scores = find(kv, "tokenizer.ggml.scores");
  LLAMA_TP_CHECK(toks && toks->is_array && scores && scores->is_array && toks->array.size() == scores->array.size(),
                 path, " lacks tokenizer.ggml.tokens and tokenizer.ggml.scores arrays of equal length.");
  std::vector<std::string> pieces;
  std::vector<float> sc;
  for (size_t i = 0; i < toks->array.size(); ++i) {
    auto p = std::get_if<std::string>(&toks->array[i].scalar);
    double s = 0;
    LLAMA_TP_CHECK(p && as_number(scores->array[i], s), path, ": token ", i, " of tokenizer.ggml.tokens/scores is malformed.");
    // SentencePiece spells a space "▁" (U+2581); the llama2.c tokenizer spells it " ".
    std::string piece;
    for (size_t i = 0; i < p->size();) {
      if (p->compare(i, 3, "\xE2\x96\x81") == 0) {
        piece += ' ';
        i += 3;
      } else {
        piece += (*p)[i++];
      }
    }
    pieces.push_back(std::move(piece));
    sc.push_back(float(s));
  }
  auto tok = make_llama2c_tokenizer(std::move(pieces), std::move(sc), path);
  TokenizerSpecials s = tok->specials();
  s.bos_id = int32_t(g.config().bos_token_id);
  s.eos_ids = {int32_t(g.config().eos_token_ids.at(0))};
  tok->set_specials(s);
  return tok;
}

}  // namespace llama_tp

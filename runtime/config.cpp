#include "runtime/config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "runtime/error.h"

namespace llama_tp {

namespace {

using json = nlohmann::json;

const char* json_type(const json& v) { return v.type_name(); }

std::string shown(const json& v) {
  std::string s = v.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

// Reads fields of one JSON object, naming the file and the field path in every error.
struct Fields {
  const json& obj;
  const std::string& source;
  std::string prefix;  // "" or "rope_scaling."

  bool present(const char* key) const { return obj.contains(key) && !obj.at(key).is_null(); }

  [[noreturn]] void wrong_type(const char* key, const char* expected) const {
    LLAMA_TP_FAIL(source, ": field '", prefix, key, "' must be ", expected, ", but it is ",
                  shown(obj.at(key)), " (", json_type(obj.at(key)), ").");
  }

  int64_t integer(const char* key) const {
    const json& v = obj.at(key);
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float()) {
      double d = v.get<double>();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) return int64_t(d);
    }
    wrong_type(key, "an integer");
  }
  int64_t required_integer(const char* key) const {
    LLAMA_TP_CHECK(present(key), source, ": required field '", prefix, key,
                   "' is missing; add it (a Llama config.json always has it).");
    return integer(key);
  }
  int64_t optional_integer(const char* key, int64_t fallback) const {
    return present(key) ? integer(key) : fallback;
  }

  double number(const char* key) const {
    const json& v = obj.at(key);
    if (!v.is_number()) wrong_type(key, "a number");
    return v.get<double>();
  }
  double required_number(const char* key) const {
    LLAMA_TP_CHECK(present(key), source, ": required field '", prefix, key, "' is missing.");
    return number(key);
  }
  double optional_number(const char* key, double fallback) const {
    return present(key) ? number(key) : fallback;
  }

  bool optional_bool(const char* key, bool fallback) const {
    if (!present(key)) return fallback;
    if (!obj.at(key).is_boolean()) wrong_type(key, "true or false");
    return obj.at(key).get<bool>();
  }

  std::string optional_string(const char* key, const std::string& fallback) const {
    if (!present(key)) return fallback;
    if (!obj.at(key).is_string()) wrong_type(key, "a string");
    return obj.at(key).get<std::string>();
  }

  // eos_token_id: an integer or a list of integers.
  std::vector<int64_t> id_list(const char* key) const {
    const json& v = obj.at(key);
    std::vector<int64_t> ids;
    if (v.is_array()) {
      for (const json& e : v) {
        if (!e.is_number_integer()) wrong_type(key, "an integer or a list of integers");
        ids.push_back(e.get<int64_t>());
      }
    } else {
      ids.push_back(integer(key));
    }
    return ids;
  }
};

json parse_json_object(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    LLAMA_TP_FAIL(source, " is not valid JSON (", e.what(), "); re-download or fix the file.");
  }
  LLAMA_TP_CHECK(j.is_object(), source, " must hold a JSON object, but it holds ", json_type(j), ".");
  return j;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LLAMA_TP_CHECK(in, "cannot open ", path, " for reading.");
  std::ostringstream os;
  os << in.rdbuf();
  LLAMA_TP_CHECK(!in.bad(), "cannot read ", path, ".");
  return os.str();
}

// Reads a rope_scaling / rope_parameters object into `rope` (theta is set by the caller).
void read_rope_object(const json& obj, const std::string& source, const std::string& field,
                      RopeConfig& rope) {
  if (!obj.is_object())
    LLAMA_TP_FAIL(source, ": field '", field, "' must be an object or null, but it is ", shown(obj),
                  " (", json_type(obj), ").");
  Fields f{obj, source, field + "."};
  std::string type = f.present("rope_type") ? f.optional_string("rope_type", "default")
                                            : f.optional_string("type", "default");
  if (type == "default") {
    rope.type = "default";
  } else if (type == "llama3") {
    rope.type = "llama3";
    rope.factor = f.required_number("factor");
    rope.low_freq_factor = f.required_number("low_freq_factor");
    rope.high_freq_factor = f.required_number("high_freq_factor");
    rope.original_max_position_embeddings = f.required_integer("original_max_position_embeddings");
  } else {
    LLAMA_TP_FAIL(source, ": field '", field, ".rope_type' is '", type,
                  "', which llama_tp does not implement; it supports 'default' and 'llama3' RoPE.");
  }
  if (f.present("partial_rotary_factor") && f.number("partial_rotary_factor") != 1.0)
    LLAMA_TP_FAIL(source, ": field '", field,
                  ".partial_rotary_factor' is not 1; llama_tp rotates whole heads only.");
}

DType read_dtype(const Fields& f) {
  // transformers 5 writes "dtype", 4.x writes "torch_dtype".
  const char* key = f.present("dtype") ? "dtype" : "torch_dtype";
  if (!f.present(key)) return DType::F32;
  std::string s = f.optional_string(key, "float32");
  if (s == "float32" || s == "float") return DType::F32;
  if (s == "float16" || s == "half") return DType::F16;
  if (s == "bfloat16") return DType::BF16;
  LLAMA_TP_FAIL(f.source, ": field '", key, "' is '", s,
                "'; llama_tp reads float32, float16 and bfloat16 checkpoints.");
}

void append_unique(std::vector<int64_t>& ids, const std::vector<int64_t>& more) {
  for (int64_t id : more)
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
}

}  // namespace

ModelConfig ModelConfig::from_hf_json(const std::string& json_text, const std::string& source_name) {
  const json j = parse_json_object(json_text, source_name);
  Fields f{j, source_name, ""};
  ModelConfig c;
  c.dim = f.required_integer("hidden_size");
  c.ffn_dim = f.required_integer("intermediate_size");
  c.n_layers = f.required_integer("num_hidden_layers");
  c.n_heads = f.required_integer("num_attention_heads");
  c.vocab_size = f.required_integer("vocab_size");
  c.n_kv_heads = f.optional_integer("num_key_value_heads", c.n_heads);
  c.head_dim = f.optional_integer("head_dim", c.n_heads > 0 ? c.dim / c.n_heads : 0);
  // Defaults are LlamaConfig's, so a config.json that omits a field means what it means to HF.
  c.max_seq_len = f.optional_integer("max_position_embeddings", 2048);
  c.norm_eps = float(f.optional_number("rms_norm_eps", 1e-6));
  c.tie_embeddings = f.optional_bool("tie_word_embeddings", false);
  c.bos_token_id = j.contains("bos_token_id") ? f.optional_integer("bos_token_id", -1) : 1;
  if (!j.contains("eos_token_id"))
    c.eos_token_ids = {2};
  else if (f.present("eos_token_id"))
    append_unique(c.eos_token_ids, f.id_list("eos_token_id"));
  c.dtype = read_dtype(f);

  c.rope.theta = f.optional_number("rope_theta", 10000.0);
  if (f.present("rope_parameters")) {
    const json& rp = j.at("rope_parameters");
    read_rope_object(rp, source_name, "rope_parameters", c.rope);
    if (rp.contains("rope_theta") && !rp.at("rope_theta").is_null())
      c.rope.theta = Fields{rp, source_name, "rope_parameters."}.number("rope_theta");
  } else if (f.present("rope_scaling")) {
    read_rope_object(j.at("rope_scaling"), source_name, "rope_scaling", c.rope);
  }

  // Features of other Llama-like architectures that this engine does not compute.
  std::string act = f.optional_string("hidden_act", "silu");
  LLAMA_TP_CHECK(act == "silu", source_name, ": field 'hidden_act' is '", act,
                 "'; llama_tp implements the SiLU (SwiGLU) MLP only.");
  LLAMA_TP_CHECK(!f.optional_bool("attention_bias", false), source_name,
                 ": field 'attention_bias' is true; llama_tp implements Llama attention without biases.");
  LLAMA_TP_CHECK(!f.optional_bool("mlp_bias", false), source_name,
                 ": field 'mlp_bias' is true; llama_tp implements the Llama MLP without biases.");

  c.validate(source_name);
  return c;
}

ModelConfig ModelConfig::from_hf_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string config_path = (fs::path(dir) / "config.json").string();
  LLAMA_TP_CHECK(fs::is_regular_file(config_path), "no config.json in ", dir,
                 ": a Hugging Face model folder needs one next to its *.safetensors files.");
  ModelConfig c = from_hf_json(read_text_file(config_path), config_path);

  // generate() stops on generation_config.json's eos ids, which may add to config.json's.
  const std::string gen_path = (fs::path(dir) / "generation_config.json").string();
  if (fs::is_regular_file(gen_path)) {
    const json g = parse_json_object(read_text_file(gen_path), gen_path);
    Fields f{g, gen_path, ""};
    if (f.present("eos_token_id")) append_unique(c.eos_token_ids, f.id_list("eos_token_id"));
  }
  return c;
}

void ModelConfig::validate(const std::string& source_name) const {
  auto positive = [&](int64_t v, const char* field) {
    LLAMA_TP_CHECK(v > 0, source_name, ": field '", field, "' is ", v, " but must be positive.");
  };
  positive(dim, "hidden_size");
  positive(ffn_dim, "intermediate_size");
  positive(n_layers, "num_hidden_layers");
  positive(n_heads, "num_attention_heads");
  positive(n_kv_heads, "num_key_value_heads");
  positive(head_dim, "head_dim");
  positive(vocab_size, "vocab_size");
  positive(max_seq_len, "max_position_embeddings");
  LLAMA_TP_CHECK(n_heads % n_kv_heads == 0, source_name, ": num_attention_heads ", n_heads,
                 " is not a multiple of num_key_value_heads ", n_kv_heads,
                 "; grouped-query attention needs whole groups.");
  LLAMA_TP_CHECK(head_dim % 2 == 0, source_name, ": head_dim ", head_dim,
                 " is odd; RoPE rotates pairs of dimensions, so it must be even.");
  LLAMA_TP_CHECK(std::isfinite(norm_eps) && norm_eps > 0, source_name, ": field 'rms_norm_eps' is ",
                 norm_eps, " but must be a small positive number.");
  LLAMA_TP_CHECK(std::isfinite(rope.theta) && rope.theta > 0, source_name, ": field 'rope_theta' is ",
                 rope.theta, " but must be positive.");
  if (rope.type == "llama3") {
    LLAMA_TP_CHECK(rope.factor > 0, source_name, ": rope factor ", rope.factor, " must be positive.");
    LLAMA_TP_CHECK(rope.low_freq_factor > 0 && rope.high_freq_factor > rope.low_freq_factor,
                   source_name, ": rope low_freq_factor ", rope.low_freq_factor,
                   " and high_freq_factor ", rope.high_freq_factor,
                   " must satisfy 0 < low_freq_factor < high_freq_factor.");
    LLAMA_TP_CHECK(rope.original_max_position_embeddings > 0, source_name,
                   ": rope original_max_position_embeddings ", rope.original_max_position_embeddings,
                   " must be positive.");
  } else {
    LLAMA_TP_CHECK(rope.type == "default", source_name, ": rope type '", rope.type,
                   "' is not supported (only 'default' and 'llama3').");
  }
}

std::string ModelConfig::summary() const {
  std::ostringstream os;
  os << "dim " << dim << ", " << n_layers << " layers, " << n_heads << "/" << n_kv_heads
     << " heads of " << head_dim << ", ffn " << ffn_dim << ", vocab " << vocab_size << ", context "
     << max_seq_len << ", rope " << rope.type << " theta " << rope.theta;
  if (rope.type == "llama3") os << " factor " << rope.factor;
  os << ", eps " << norm_eps << ", " << dtype_name(dtype)
     << (tie_embeddings ? ", tied embeddings" : ", separate lm_head");
  return os.str();
}

std::vector<float> rope_inv_freq(const ModelConfig& config) {
  // Mirrors transformers' _compute_default_rope_parameters and _compute_llama3_parameters
  // operation by operation in float32, as torch evaluates them: `scalar / t` is
  // t.reciprocal() * scalar, and Python scalars meet float32 tensors as float32.
  const int64_t dim = config.head_dim;
  const int64_t half = dim / 2;
  const float base = float(config.rope.theta);
  std::vector<float> inv(size_t(std::max<int64_t>(half, 0)));
  for (int64_t i = 0; i < half; ++i) {
    float exponent = float(2 * i) / float(dim);
    // pow in double, rounded once: the correctly rounded float32 power.
    float p = float(std::pow(double(base), double(exponent)));
    inv[size_t(i)] = 1.0f / p;
  }
  if (config.rope.type != "llama3") return inv;

  const RopeConfig& r = config.rope;
  const float factor = float(r.factor);
  const float low = float(r.low_freq_factor), high = float(r.high_freq_factor);
  const float old_ctx = float(r.original_max_position_embeddings);
  // Python computes these in double; the comparison with a float32 tensor rounds them to float.
  const float low_freq_wavelen = float(double(r.original_max_position_embeddings) / r.low_freq_factor);
  const float high_freq_wavelen = float(double(r.original_max_position_embeddings) / r.high_freq_factor);
  const float two_pi = float(6.283185307179586);  // Python 2 * math.pi
  for (float& f : inv) {
    float wavelen = (1.0f / f) * two_pi;
    float scaled = wavelen > low_freq_wavelen ? f / factor : f;
    bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
    if (medium) {
      float smooth = ((1.0f / wavelen) * old_ctx - low) / (high - low);
      scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
    }
    f = scaled;
  }
  return inv;
}

}  // namespace llama_tp

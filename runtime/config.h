#pragma once
// ModelConfig: the architecture of a Llama-family model, read from a Hugging Face config.json
// (or filled in by the llama2.c / dummy-shape loaders).
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/dtype.h"

namespace llama_tp {

struct RopeConfig {
  std::string type = "default";  // "default" or "llama3"
  double theta = 10000.0;
  // llama3 scaling (rope_type "llama3")
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  int64_t dim = 0;              // hidden_size
  int64_t ffn_dim = 0;          // intermediate_size
  int64_t n_layers = 0;         // num_hidden_layers
  int64_t n_heads = 0;          // num_attention_heads
  int64_t n_kv_heads = 0;       // num_key_value_heads (defaults to n_heads)
  int64_t head_dim = 0;         // head_dim (defaults to dim / n_heads)
  int64_t vocab_size = 0;
  int64_t max_seq_len = 0;      // max_position_embeddings
  float norm_eps = 1e-5f;       // rms_norm_eps
  bool tie_embeddings = false;  // tie_word_embeddings
  RopeConfig rope;
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;  // eos_token_id as int or list (+ generation_config.json)
  DType dtype = DType::F32;            // torch_dtype / dtype of the checkpoint

  // Reads <dir>/config.json (and generation_config.json's eos ids when present). Every
  // missing or wrong-typed required field is an error naming the file and the field.
  static ModelConfig from_hf_dir(const std::string& dir);
  static ModelConfig from_hf_json(const std::string& json_text, const std::string& source_name);

  // Checks internal consistency (positive sizes, heads divide, even head_dim); throws naming the field.
  void validate(const std::string& source_name) const;
  std::string summary() const;  // one line: "dim 4096, 32 layers, 32/8 heads, ..."
};

// RoPE inverse frequencies (head_dim / 2 values), with llama3 scaling when configured.
std::vector<float> rope_inv_freq(const ModelConfig& config);

}  // namespace llama_tp

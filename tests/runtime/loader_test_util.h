#pragma once
// Helpers for the loader tests: scratch folders, writing safetensors / config files, and
// checking that an error names what it should.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/error.h"

namespace llama_tp::test {

// A fresh folder under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "llama_tp_test_XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A safetensors file from a header (JSON text, written as is) and the data region.
inline std::string safetensors_raw(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return out + header + data;
}

struct TensorSpec {
  std::string name;
  std::string dtype;  // "F32", "F16", "BF16"
  std::vector<int64_t> shape;
  std::string bytes;  // raw little-endian data
};

inline size_t safetensors_dtype_size(const std::string& dtype) { return dtype == "F32" ? 4 : 2; }

// A valid safetensors file holding `tensors` back to back.
inline std::string safetensors_bytes(const std::vector<TensorSpec>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const TensorSpec& t : tensors) {
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  return safetensors_raw(header.dump(), data);
}

inline std::string float_bytes(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}

// float32 tensor of the given shape with values start, start+1, ... scaled by 1/64.
inline TensorSpec f32_tensor(const std::string& name, std::vector<int64_t> shape, float start = 0) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = (start + float(i)) / 64.f;
  return TensorSpec{name, "F32", std::move(shape), float_bytes(v)};
}

// The tiny Llama used by the bad-input tests: config.json fields and its tensors.
inline nlohmann::json tiny_config() {
  return {{"hidden_size", 8},       {"intermediate_size", 12}, {"num_hidden_layers", 2},
          {"num_attention_heads", 2}, {"num_key_value_heads", 1}, {"vocab_size", 16},
          {"rms_norm_eps", 1e-5},    {"rope_theta", 10000.0},   {"tie_word_embeddings", false},
          {"max_position_embeddings", 64}, {"torch_dtype", "float32"}};
}

inline std::vector<TensorSpec> tiny_tensors() {
  std::vector<TensorSpec> t;
  t.push_back(f32_tensor("model.embed_tokens.weight", {16, 8}));
  for (int l = 0; l < 2; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    t.push_back(f32_tensor(p + "input_layernorm.weight", {8}));
    t.push_back(f32_tensor(p + "self_attn.q_proj.weight", {8, 8}));
    t.push_back(f32_tensor(p + "self_attn.k_proj.weight", {4, 8}));
    t.push_back(f32_tensor(p + "self_attn.v_proj.weight", {4, 8}));
    t.push_back(f32_tensor(p + "self_attn.o_proj.weight", {8, 8}));
    t.push_back(f32_tensor(p + "post_attention_layernorm.weight", {8}));
    t.push_back(f32_tensor(p + "mlp.gate_proj.weight", {12, 8}));
    t.push_back(f32_tensor(p + "mlp.up_proj.weight", {12, 8}));
    t.push_back(f32_tensor(p + "mlp.down_proj.weight", {8, 12}));
  }
  t.push_back(f32_tensor("model.norm.weight", {8}));
  t.push_back(f32_tensor("lm_head.weight", {16, 8}));
  return t;
}

inline void write_tiny_model(const TempDir& dir, const nlohmann::json& config,
                             const std::vector<TensorSpec>& tensors) {
  write_file(dir.file("config.json"), config.dump(2));
  write_file(dir.file("model.safetensors"), safetensors_bytes(tensors));
}

}  // namespace llama_tp::test

// Expects `stmt` to throw llama_tp::Error whose message contains every one of the strings.
#define EXPECT_LLAMA_TP_ERROR(stmt, ...)                                                      \
  do {                                                                                        \
    std::string llama_tp_msg_;                                                                \
    EXPECT_THROW(                                                                             \
        {                                                                                     \
          try {                                                                               \
            stmt;                                                                             \
          } catch (const ::llama_tp::Error& e_) {                                             \
            llama_tp_msg_ = e_.what();                                                        \
            throw;                                                                            \
          }                                                                                   \
        },                                                                                    \
        ::llama_tp::Error);                                                                   \
    for (const std::string& want_ : std::initializer_list<std::string>{__VA_ARGS__})          \
      EXPECT_NE(llama_tp_msg_.find(want_), std::string::npos)                                 \
          << "the error should mention '" << want_ << "'; it says: " << llama_tp_msg_;        \
  } while (0)

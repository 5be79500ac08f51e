#pragma once
// GGUF v3 checkpoints (llama.cpp / ggml) of Llama models: the metadata (llama.* keys and the
// tokenizer.ggml.* vocabulary) and F32 / F16 tensors, served under Hugging Face names like the
// llama2.c loader does. llama.cpp stores attn_q / attn_k rows in the adjacent-pair RoPE layout
// (as llama2.c does), so q_proj / k_proj rows are permuted with llama2c_rope_row. Quantized
// GGML types are refused with an Error naming the tensor and its type.
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "runtime/config.h"
#include "runtime/mapped_file.h"
#include "runtime/weight_source.h"

namespace llama_tp {

// One metadata value: integers (any width, signed or not), floats, bools, strings, arrays.
struct GgufValue {
  std::variant<int64_t, uint64_t, double, bool, std::string> scalar;
  bool is_array = false;
  std::vector<GgufValue> array;
};

class GgufSource : public WeightSource {
 public:
  // Maps and parses the file; throws naming it when it is truncated, not GGUF v3, has
  // tensors outside the file, quantized tensors, or shapes disagreeing with its metadata.
  explicit GgufSource(const std::string& path);

  const ModelConfig& config() const { return config_; }
  const std::string& path() const { return file_.path(); }
  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  std::vector<std::string> names() const;  // HF names, sorted

  bool has(const std::string& name) const override;
  TensorInfo info(const std::string& name) const override;
  Tensor read_block(const std::string& name, int64_t row0, int64_t n_rows, int64_t col0,
                    int64_t n_cols, DType out) const override;
  std::string describe(const std::string& /*name*/) const override { return file_.path(); }

 private:
  struct Entry {
    std::string gguf_name;
    size_t offset = 0;  // bytes from the start of the file
    DType dtype = DType::F32;
    std::vector<int64_t> shape;  // row-major (HF order): reversed ggml ne
    bool rope_permuted = false;
  };
  const Entry& entry(const std::string& name) const;

  MappedFile file_;
  std::map<std::string, GgufValue> kv_;
  ModelConfig config_;
  std::map<std::string, Entry> entries_;
};

// load_gguf_tokenizer (tokenizer_formats.h) reads the vocabulary stored in a GGUF file.

}  // namespace llama_tp

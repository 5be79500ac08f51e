#pragma once
// A WeightSource hands out a checkpoint's tensors by Hugging Face name
// ("model.layers.3.self_attn.q_proj.weight"), reading only the block a rank asks for, so that
// no rank ever holds a whole 70B checkpoint. Implementations: safetensors (single file or
// sharded with model.safetensors.index.json), llama2.c .bin, GGUF v3 (F32/F16/BF16), dummy (random weights of a shape).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/config.h"
#include "runtime/tensor.h"

namespace llama_tp {

class Backend;

struct TensorInfo {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
};

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual bool has(const std::string& name) const = 0;
  // Throws, naming the tensor and the file, when it is missing.
  virtual TensorInfo info(const std::string& name) const = 0;
  // Reads the block rows [row0, row0+n_rows) x columns [col0, col0+n_cols) of a 2-D tensor
  // (for a 1-D tensor: row0 = 0, n_rows = 1, columns index the elements) into a new host
  // tensor of shape [n_rows, n_cols] (1-D: [n_cols]) in dtype `out`.
  virtual Tensor read_block(const std::string& name, int64_t row0, int64_t n_rows, int64_t col0,
                            int64_t n_cols, DType out) const = 0;
  // read_block, made directly where `backend` keeps its tensors when this source can (dummy
  // weights on a GPU), else read_block's host tensor; upload_weight and upload_linear take either.
  virtual Tensor read_block_for(Backend& backend, const std::string& name, int64_t row0, int64_t n_rows, int64_t col0,
                                int64_t n_cols, DType out) const {
    (void)backend;
    return read_block(name, row0, n_rows, col0, n_cols, out);
  }
  // Where the tensors come from, for messages ("model-00001-of-00003.safetensors", ...).
  virtual std::string describe(const std::string& name) const = 0;
};

// Reads the whole tensor (convenience over read_block; with a backend, over read_block_for).
Tensor read_whole(const WeightSource& src, const std::string& name, DType out, Backend* backend = nullptr);

// A model folder or file opened for loading: its config and its weights.
struct Checkpoint {
  ModelConfig config;
  std::unique_ptr<WeightSource> weights;
  std::string path;  // the folder or file it came from
};

// Opens a Hugging Face folder (config.json + *.safetensors), a llama2.c .bin file or a GGUF v3
// .gguf file (F32/F16/BF16 tensors; quantized types are refused).
Checkpoint open_checkpoint(const std::string& path);

// Checks that `weights` holds every tensor a Llama model of `config` reads, each with the
// shape the config implies and a float dtype (f32/f16/bf16); lm_head only when the
// embeddings are not tied. Throws naming the tensor, its file, and the expected and actual
// shapes; `config_name` (e.g. the config.json path) says where the expectation came from.
// open_checkpoint calls it.
void validate_llama_weights(const ModelConfig& config, const WeightSource& weights,
                            const std::string& config_name = "the model config");

}  // namespace llama_tp

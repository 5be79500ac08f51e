#pragma once
// Random weights of a named shape (like vLLM's dummy load format), so benchmarks and 70B runs
// need no download. Each value is a hash of (tensor name, row, column): any rank reading any
// block sees the same numbers a single process reading the whole tensor would, with no state.
#include <optional>
#include <string>
#include <vector>

#include "kernels/dummy_fill.h"
#include "runtime/weight_source.h"

namespace llama_tp {

// The architecture of a published model by short name: llama3-8b, llama3.2-1b, llama3.2-3b,
// llama3-70b, llama2-7b, llama2-13b, llama2-70b, tinyllama-1.1b. nullopt for other names.
std::optional<ModelConfig> named_model_shape(const std::string& name);
std::vector<std::string> named_model_shapes();

class DummyWeightSource final : public WeightSource {
 public:
  DummyWeightSource(ModelConfig config, uint64_t seed = 1);
  bool has(const std::string& name) const override;
  TensorInfo info(const std::string& name) const override;
  Tensor read_block(const std::string& name, int64_t row0, int64_t n_rows, int64_t col0, int64_t n_cols,
                    DType out) const override;
  // On a GPU backend the block is made there (kernels/dummy_fill_cuda.h), the same bits.
  Tensor read_block_for(Backend& backend, const std::string& name, int64_t row0, int64_t n_rows, int64_t col0,
                        int64_t n_cols, DType out) const override;
  std::string describe(const std::string& name) const override { return "dummy weights"; }

 private:
  // The fill of a block, after checking it lies inside the tensor; `shape` gets the block's.
  kernels::DummyFill fill_for(const std::string& name, int64_t row0, int64_t n_rows, int64_t col0, int64_t n_cols,
                              std::vector<int64_t>& shape) const;

  ModelConfig config_;
  uint64_t seed_;
};

// A Checkpoint of dummy weights for a named shape or a config.json folder/file.
Checkpoint dummy_checkpoint(const ModelConfig& config, const std::string& label);

}  // namespace llama_tp

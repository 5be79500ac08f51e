#pragma once
// Karpathy llama2.c checkpoints (.bin, float32): the legacy format (a 7-int32 header) and
// version 1 ("ak42" magic, 256-byte header). Tensors are served under Hugging Face names, with
// q_proj/k_proj rows permuted from llama2.c's adjacent-pair RoPE to HF's rotate-half RoPE, so
// the HF-convention forward pass computes what llama2.c's run.c computes.
#include <map>
#include <string>
#include <vector>

#include "runtime/config.h"
#include "runtime/mapped_file.h"
#include "runtime/weight_block.h"
#include "runtime/weight_source.h"

namespace llama_tp {

class Llama2cSource : public WeightSource {
 public:
  // Maps the file, reads its header and checks the file size against it; throws naming the
  // file (and the expected and actual sizes) when they disagree.
  explicit Llama2cSource(const std::string& path);

  // dims from the header; rope default theta 10000, eps 1e-5, bos 1, eos 2, float32.
  const ModelConfig& config() const { return config_; }
  int version() const { return version_; }  // 0 = legacy, 1 = "ak42" version 1
  const std::string& path() const { return file_.path(); }
  std::vector<std::string> names() const;  // sorted

  bool has(const std::string& name) const override;
  TensorInfo info(const std::string& name) const override;
  Tensor read_block(const std::string& name, int64_t row0, int64_t n_rows, int64_t col0,
                    int64_t n_cols, DType out) const override;
  std::string describe(const std::string& /*name*/) const override { return file_.path(); }

 private:
  struct Entry {
    size_t offset = 0;  // bytes from the start of the file
    std::vector<int64_t> shape;
    bool rope_permuted = false;  // q_proj / k_proj: rows permuted per head
  };
  const Entry& entry(const std::string& name) const;

  MappedFile file_;
  ModelConfig config_;
  int version_ = 0;
  std::map<std::string, Entry> entries_;
};

// The llama2.c row that holds row `hf_row` of an HF-layout q_proj/k_proj (heads of head_dim
// rows): HF row j < head_dim/2 of a head is llama2.c row 2j, row j >= head_dim/2 is
// 2(j - head_dim/2) + 1 (transformers' convert_llama_weights_to_hf.py `permute`).
int64_t llama2c_rope_row(int64_t hf_row, int64_t head_dim);

}  // namespace llama_tp

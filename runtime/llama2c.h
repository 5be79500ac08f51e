#pragma once
// Karpathy llama2.c checkpoints (.bin): the legacy format (a 7-int32 header, float32), version 1
// ("ak42" magic, 256-byte header, float32) and version 2 (the same header plus a group size;
// norms in float32, every matrix int8 with one float32 scale per group of group_size values of
// the flattened tensor: llama2.c's Q8_0, written by export.py --version 2 and read by runq.c).
// Version 2 matrices are served dequantized (q * scale, exactly), so every loader path works on
// them; --quant int8 quantizes them again with the file's group size, which gives back the same
// int8 values wherever a group lies inside one row. Tensors are served under Hugging Face names, with
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
  int version() const { return version_; }  // 0 = legacy, 1 = "ak42" version 1, 2 = int8 Q8_0
  int group_size() const { return group_size_; }  // version 2: values per scale; else 0
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
    bool q8 = false;             // version 2 matrix: int8 at offset, float32 scales at scale_offset
    size_t scale_offset = 0;
  };
  const Entry& entry(const std::string& name) const;

  MappedFile file_;
  ModelConfig config_;
  int version_ = 0;
  int group_size_ = 0;
  std::map<std::string, Entry> entries_;
};

// The llama2.c row that holds row `hf_row` of an HF-layout q_proj/k_proj (heads of head_dim
// rows): HF row j < head_dim/2 of a head is llama2.c row 2j, row j >= head_dim/2 is
// 2(j - head_dim/2) + 1 (transformers' convert_llama_weights_to_hf.py `permute`).
int64_t llama2c_rope_row(int64_t hf_row, int64_t head_dim);

}  // namespace llama_tp

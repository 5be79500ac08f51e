#pragma once
// Safetensors checkpoints: one file (SafetensorsFile, memory-mapped, header validated) and the
// WeightSource over a model's files, single or sharded with model.safetensors.index.json.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/mapped_file.h"
#include "runtime/weight_block.h"
#include "runtime/weight_source.h"

namespace llama_tp {

struct SafetensorsEntry {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data region (after the header)
  uint64_t end = 0;
};

class SafetensorsFile {
 public:
  // Maps the file and validates the whole header: its length, JSON, each tensor's dtype
  // (F32, F16, BF16, I8, I32), shape and data_offsets (inside the file, sized to the shape,
  // no two tensors overlapping). Every error names the file and, where there is one, the tensor.
  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const { return file_.path(); }
  bool has(const std::string& name) const { return entries_.count(name) != 0; }
  // Throws naming the tensor and the file when it is missing.
  const SafetensorsEntry& entry(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted
  const std::map<std::string, std::string>& metadata() const { return metadata_; }  // __metadata__
  // The tensor's bytes and geometry, for read_stored_block.
  StoredTensor stored(const std::string& name) const;

 private:
  MappedFile file_;
  uint64_t data_start_ = 0;  // 8 + header length
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

class SafetensorsSource : public WeightSource {
 public:
  // <dir>/model.safetensors.index.json if present, else <dir>/model.safetensors, else the one
  // *.safetensors file in dir.
  static std::unique_ptr<SafetensorsSource> open_dir(const std::string& dir);
  // One .safetensors file.
  static std::unique_ptr<SafetensorsSource> open_file(const std::string& path);
  // A model.safetensors.index.json: every file in its weight_map must exist and hold the
  // tensors the map assigns to it.
  static std::unique_ptr<SafetensorsSource> open_index(const std::string& index_path);

  std::vector<std::string> names() const;  // sorted
  bool has(const std::string& name) const override;
  TensorInfo info(const std::string& name) const override;
  Tensor read_block(const std::string& name, int64_t row0, int64_t n_rows, int64_t col0,
                    int64_t n_cols, DType out) const override;
  // The file holding the tensor; for an unknown name, the index or file that was searched.
  std::string describe(const std::string& name) const override;

 private:
  SafetensorsSource() = default;
  const SafetensorsFile& file_of(const std::string& name) const;

  std::string origin_;  // the index or the single file, for messages
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> where_;  // tensor name -> its file
};

}  // namespace llama_tp

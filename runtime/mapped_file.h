#pragma once
// A read-only memory map of a whole file. Checkpoint readers hand out views into it, so the
// operating system pages in only the slices a rank actually reads.
#include <cstddef>
#include <cstdint>
#include <string>

namespace llama_tp {

class MappedFile {
 public:
  // Maps `path` read-only; throws naming the file when it cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace llama_tp

#pragma once
// A Tensor is a typed, shaped block of memory on the CPU or a CUDA device. It either owns its
// storage (shared between copies of the Tensor object) or views memory owned elsewhere (an
// mmapped checkpoint, a slice of another tensor). Row-major, contiguous.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/dtype.h"

namespace llama_tp {

enum class Device : uint8_t { CPU, CUDA };
const char* device_name(Device d);

class Tensor {
 public:
  Tensor() = default;

  // Owning allocation (uninitialised). CUDA memory goes to the current device.
  static Tensor empty(std::vector<int64_t> shape, DType dtype, Device device = Device::CPU);
  static Tensor zeros(std::vector<int64_t> shape, DType dtype, Device device = Device::CPU);
  // Non-owning view of memory that outlives the Tensor.
  static Tensor view(void* data, std::vector<int64_t> shape, DType dtype, Device device = Device::CPU);
  // Host float32 tensor holding a copy of `values`.
  static Tensor from_floats(const std::vector<float>& values, std::vector<int64_t> shape);

  bool defined() const { return data_ != nullptr; }
  void* raw() const { return data_; }
  template <typename T>
  T* data() const { return static_cast<T*>(data_); }

  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int ndim() const { return int(shape_.size()); }
  int64_t dim(int i) const { return shape_.at(i < 0 ? shape_.size() + i : i); }
  int64_t numel() const;
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }
  std::string shape_string() const;  // "[4, 64]"

  // View of rows [first, first+count) along dimension 0 (shares storage).
  Tensor rows(int64_t first, int64_t count) const;
  // Same memory, new shape with the same number of elements.
  Tensor reshaped(std::vector<int64_t> shape) const;
  // Deep copy to `device` (same dtype).
  Tensor to(Device device) const;
  // Copies `src` (same dtype and element count, any devices) into this tensor's memory.
  void copy_from(const Tensor& src);
  // Host copy converted to float32 (any source dtype/device): for tests and the coordinator.
  std::vector<float> to_floats() const;

 private:
  std::shared_ptr<void> storage_;
  void* data_ = nullptr;
  std::vector<int64_t> shape_;
  DType dtype_ = DType::F32;
  Device device_ = Device::CPU;
};

// Copies nbytes between any two places (host/device); synchronous.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);

// True when this build has the CUDA backend and a GPU is visible.
bool cuda_available();

}  // namespace llama_tp

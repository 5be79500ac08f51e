#include "runtime/tensor.h"

#include <cstdlib>
#include <cstring>
#include <sstream>

#include "runtime/error.h"

#ifdef LLAMA_TP_CUDA
#include <cuda_runtime.h>

#include "runtime/cuda_check.h"
#endif

namespace llama_tp {

const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

bool cuda_available() {
#ifdef LLAMA_TP_CUDA
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return false;
  }
  return n > 0;
#else
  return false;
#endif
}

namespace {

std::shared_ptr<void> allocate(size_t nbytes, Device device) {
  if (device == Device::CPU) {
    // 64-byte alignment for vector loads; at least 1 byte so empty tensors still have storage.
    size_t rounded = (std::max<size_t>(nbytes, 1) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    LLAMA_TP_CHECK(p, "out of host memory allocating ", nbytes, " bytes");
    return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  }
#ifdef LLAMA_TP_CUDA
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, std::max<size_t>(nbytes, 1));
  if (err != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    LLAMA_TP_FAIL("out of GPU memory allocating ", nbytes / (1 << 20), " MiB (", free_b / (1 << 20),
                  " MiB free of ", total_b / (1 << 20), " MiB): ", cudaGetErrorString(err));
  }
  return std::shared_ptr<void>(p, [](void* q) { cudaFree(q); });
#else
  LLAMA_TP_FAIL("this llama_tp was built without CUDA (configure with -DLLAMA_TP_CUDA=ON)");
#endif
}

}  // namespace

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

std::string Tensor::shape_string() const {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape_.size(); ++i) os << (i ? ", " : "") << shape_[i];
  os << "]";
  return os.str();
}

Tensor Tensor::empty(std::vector<int64_t> shape, DType dtype, Device device) {
  Tensor t;
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.device_ = device;
  for (int64_t d : t.shape_) LLAMA_TP_CHECK(d >= 0, "negative tensor dimension in ", t.shape_string());
  t.storage_ = allocate(t.nbytes(), device);
  t.data_ = t.storage_.get();
  return t;
}

Tensor Tensor::zeros(std::vector<int64_t> shape, DType dtype, Device device) {
  Tensor t = empty(std::move(shape), dtype, device);
  if (device == Device::CPU) {
    std::memset(t.data_, 0, t.nbytes());
  } else {
#ifdef LLAMA_TP_CUDA
    CUDA_CHECK(cudaMemset(t.data_, 0, t.nbytes()));
#endif
  }
  return t;
}

Tensor Tensor::view(void* data, std::vector<int64_t> shape, DType dtype, Device device) {
  Tensor t;
  t.data_ = data;
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.device_ = device;
  return t;
}

Tensor Tensor::from_floats(const std::vector<float>& values, std::vector<int64_t> shape) {
  Tensor t = empty(std::move(shape), DType::F32);
  LLAMA_TP_CHECK(size_t(t.numel()) == values.size(), "from_floats: ", values.size(),
                 " values do not fill shape ", t.shape_string());
  std::memcpy(t.data_, values.data(), values.size() * 4);
  return t;
}

Tensor Tensor::rows(int64_t first, int64_t count) const {
  LLAMA_TP_CHECK(ndim() >= 1 && first >= 0 && count >= 0 && first + count <= shape_[0],
                 "rows(", first, ", ", count, ") out of range for shape ", shape_string());
  Tensor t = *this;
  t.shape_[0] = count;
  size_t row_bytes = shape_[0] ? nbytes() / size_t(shape_[0]) : 0;
  t.data_ = static_cast<char*>(data_) + size_t(first) * row_bytes;
  return t;
}

Tensor Tensor::reshaped(std::vector<int64_t> shape) const {
  Tensor t = *this;
  t.shape_ = std::move(shape);
  LLAMA_TP_CHECK(t.numel() == numel(), "cannot reshape ", shape_string(), " to ", t.shape_string());
  return t;
}

Tensor Tensor::to(Device device) const {
  Tensor t = empty(shape_, dtype_, device);
  t.copy_from(*this);
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  LLAMA_TP_CHECK(src.dtype_ == dtype_ && src.numel() == numel(), "copy_from: ", dtype_name(src.dtype_),
                 src.shape_string(), " into ", dtype_name(dtype_), shape_string());
  copy_bytes(data_, device_, src.data_, src.device_, nbytes());
}

std::vector<float> Tensor::to_floats() const {
  Tensor host = device_ == Device::CPU ? *this : to(Device::CPU);
  std::vector<float> out(static_cast<size_t>(numel()));
  convert_to_f32(host.data_, dtype_, out.data(), out.size());
  return out;
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_device == Device::CPU && src_device == Device::CPU) {
    std::memcpy(dst, src, nbytes);
    return;
  }
#ifdef LLAMA_TP_CUDA
  CUDA_CHECK(cudaMemcpy(dst, src, nbytes, cudaMemcpyDefault));
  // cudaMemcpy between two device buffers may return before the copy ends; this function
  // promises a finished copy (bench times device copies with it).
  if (dst_device == Device::CUDA && src_device == Device::CUDA) CUDA_CHECK(cudaDeviceSynchronize());
#else
  LLAMA_TP_FAIL("this llama_tp was built without CUDA");
#endif
}

}  // namespace llama_tp

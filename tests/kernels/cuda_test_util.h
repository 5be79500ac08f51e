#pragma once
// Helpers shared by the CUDA kernel tests (include only where LLAMA_TP_CUDA is defined).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <vector>

#include "runtime/backend_cuda.h"

namespace llama_tp::test {

// Host floats copied into a new f32 device tensor of `shape`.
inline Tensor device_floats(const std::vector<float>& v, std::vector<int64_t> shape) {
  return Tensor::from_floats(v, std::move(shape)).to(Device::CUDA);
}

// All-ones bytes are NaN in f32/f16/bf16: an element the kernel forgets to write shows.
inline Tensor poisoned(CudaBackend& be, std::vector<int64_t> shape, DType dt = DType::F32) {
  Tensor t = be.alloc(std::move(shape), dt);
  EXPECT_EQ(cudaMemset(t.raw(), 0xff, t.nbytes()), cudaSuccess);
  return t;
}

}  // namespace llama_tp::test

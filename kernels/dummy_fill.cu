#include <algorithm>

#include "kernels/common_cuda.h"
#include "kernels/dummy_fill_cuda.h"
#include "runtime/cuda_check.h"

namespace llama_tp::kernels {
namespace {

template <typename T>
__global__ void dummy_fill_kernel(T* out, DummyFill f, int64_t n_rows, int64_t n_cols) {
  const int64_t n = n_rows * n_cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = from_f32<T>(dummy_value(f, i / n_cols, i % n_cols));
}

}  // namespace

void dummy_fill_cuda(void* out, DType dtype, const DummyFill& f, int64_t n_rows, int64_t n_cols, cudaStream_t stream) {
  if (n_rows == 0 || n_cols == 0) return;
  const int64_t n = n_rows * n_cols;
  const int blocks = int(std::min<int64_t>(cdiv(n, 256), int64_t(sm_count()) * 16));
  dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    dummy_fill_kernel<T><<<blocks, 256, 0, stream>>>(static_cast<T*>(out), f, n_rows, n_cols);
  });
  CUDA_CHECK_LAUNCH();
}

}  // namespace llama_tp::kernels

#include "kernels/common_cuda.h"
#include "kernels/swiglu_cuda.h"
#include "runtime/cuda_check.h"

namespace llama_tp::kernels {
namespace {

// Grid-stride loops: the grid is capped, each thread does several elements.
constexpr int kThreads = 256;
constexpr size_t kMaxBlocks = 4096;

int blocks_for(size_t n) { return int(std::min((n + kThreads - 1) / kThreads, kMaxBlocks)); }

__global__ void swiglu_kernel(float* out, const float* gate_up, size_t n, int ffn) {
  for (size_t idx = blockIdx.x * size_t(blockDim.x) + threadIdx.x; idx < n; idx += size_t(gridDim.x) * blockDim.x) {
    const size_t t = idx / ffn, i = idx % ffn;
    const float g = gate_up[t * 2 * ffn + i], u = gate_up[t * 2 * ffn + ffn + i];
    out[idx] = g / (1.0f + expf(-g)) * u;
  }
}

__global__ void add_kernel(float* x, const float* y, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    x[i] += y[i];
}

}  // namespace

void swiglu_cuda(float* out, const float* gate_up, int n_tokens, int ffn, cudaStream_t stream) {
  const size_t n = size_t(n_tokens) * ffn;
  if (n == 0) return;
  swiglu_kernel<<<blocks_for(n), kThreads, 0, stream>>>(out, gate_up, n, ffn);
  CUDA_CHECK_LAUNCH();
}

void add_cuda(float* x, const float* y, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  add_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, y, n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace llama_tp::kernels

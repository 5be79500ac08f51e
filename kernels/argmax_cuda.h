#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace llama_tp::kernels {
// out[r] = index of the largest of x[r, 0..n) (the first one on ties), for r < rows. The
// sampler's greedy path: only the rows' indices come back to the host.
void argmax_cuda(int32_t* out, const float* x, int rows, int n, cudaStream_t stream);
}  // namespace llama_tp::kernels

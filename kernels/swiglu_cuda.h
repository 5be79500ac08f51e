#pragma once
#include <cuda_runtime.h>

#include <cstddef>

namespace llama_tp::kernels {
// out[t, i] = silu(gate_up[t, i]) * gate_up[t, ffn + i]; gate_up rows are [gate(ffn) | up(ffn)].
void swiglu_cuda(float* out, const float* gate_up, int n_tokens, int ffn, cudaStream_t stream);
// x[i] += y[i]
void add_cuda(float* x, const float* y, size_t n, cudaStream_t stream);
}  // namespace llama_tp::kernels

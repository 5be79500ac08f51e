#pragma once
#include <cstddef>

namespace llama_tp::kernels {
// out[t, i] = silu(gate_up[t, i]) * gate_up[t, ffn + i]: each row of gate_up is the fused
// [gate | up] projection (2 * ffn floats); out is [n_tokens, ffn].
void swiglu_cpu(float* out, const float* gate_up, int n_tokens, int ffn);
// x[i] += y[i]
void add_cpu(float* x, const float* y, size_t n);
}  // namespace llama_tp::kernels

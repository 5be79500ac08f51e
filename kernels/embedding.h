#pragma once
#include <cstdint>

namespace llama_tp::kernels {
// out[t, :] = table[ids[t], :] for t < n_tokens. ids must already be validated (< vocab).
void embedding_cpu(float* out, const float* table, const int32_t* ids, int n_tokens, int dim);
}  // namespace llama_tp::kernels

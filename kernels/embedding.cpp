#include "kernels/embedding.h"

#include <cstring>

namespace llama_tp::kernels {
void embedding_cpu(float* out, const float* table, const int32_t* ids, int n_tokens, int dim) {
  for (int t = 0; t < n_tokens; ++t)
    std::memcpy(out + size_t(t) * dim, table + size_t(ids[t]) * dim, size_t(dim) * sizeof(float));
}
}  // namespace llama_tp::kernels

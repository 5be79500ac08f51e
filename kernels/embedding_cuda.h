#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "runtime/dtype.h"

namespace llama_tp::kernels {
// out[t, :] = float(table[ids[t], :]) for t < n_tokens; table [vocab, dim] in table_dtype, ids
// on the device. An id outside [0, vocab) gives a row of zeros (the host validates ids first).
void embedding_cuda(float* out, const void* table, DType table_dtype, const int32_t* ids,
                    int n_tokens, int vocab, int dim, cudaStream_t stream);
}  // namespace llama_tp::kernels

#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace llama_tp::kernels {
// Most blocks one row is split over (8192 elements each).
constexpr int kArgmaxMaxParts = 64;
// Bytes of scratch argmax_cuda needs to split `rows` rows over blocks.
size_t argmax_scratch_bytes(int rows);

// out[r] = index of the largest of x[r, 0..n) (the first one on ties), for r < rows, and (when
// values is not null) values[r] = x[r, out[r]]. The greedy path: only the rows' indices (and
// their logits, which tensor-parallel ranks compare) come back to the host. With scratch
// (argmax_scratch_bytes(rows)) and counters (rows unsigned, zero before the call and left zero)
// each long row is split over several blocks; without, one block per row.
void argmax_cuda(int32_t* out, float* values, const float* x, int rows, int n, cudaStream_t stream,
                 void* scratch = nullptr, unsigned* counters = nullptr);
}  // namespace llama_tp::kernels

#pragma once
// Dummy weights made on the GPU (kernels/dummy_fill.h): a 70B shard needs no host time.
#include <cuda_runtime.h>

#include "kernels/dummy_fill.h"
#include "runtime/dtype.h"

namespace llama_tp::kernels {

// out[r, j] = dummy_value(f, r, j) for a block [n_rows, n_cols], row-major, in dtype (f32, f16
// or bf16, rounded to nearest even as convert_from_f32 does).
void dummy_fill_cuda(void* out, DType dtype, const DummyFill& f, int64_t n_rows, int64_t n_cols, cudaStream_t stream);

}  // namespace llama_tp::kernels

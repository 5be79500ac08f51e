#include "kernels/common_cuda.h"
#include "kernels/embedding_cuda.h"
#include "runtime/cuda_check.h"

namespace llama_tp::kernels {
namespace {

template <typename T>
__global__ void embedding_kernel(float* out, const T* table, const int32_t* ids, int vocab, int dim) {
  const int t = blockIdx.x;
  wait_for_previous_kernel();  // launched with programmatic dependent launch
  release_next_kernel();
  const int id = ids[t];
  const bool ok = id >= 0 && id < vocab;
  const T* row = table + size_t(ok ? id : 0) * dim;
  float* o = out + size_t(t) * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) o[i] = ok ? to_f32(row[i]) : 0.f;
}

}  // namespace

void embedding_cuda(float* out, const void* table, DType table_dtype, const int32_t* ids,
                    int n_tokens, int vocab, int dim, cudaStream_t stream) {
  if (n_tokens == 0) return;
  dispatch_float(table_dtype, [&](auto tag) {
    using T = decltype(tag);
    CUDA_CHECK(launch(embedding_kernel<T>, dim3(n_tokens), dim3(256), 0, stream, true, out, static_cast<const T*>(table),
                      ids, vocab, dim));
  });
  CUDA_CHECK_LAUNCH();
}

}  // namespace llama_tp::kernels

#include "kernels/common_cuda.h"
#include "kernels/convert_cuda.h"
#include "runtime/cuda_check.h"

namespace llama_tp::kernels {
namespace {

template <typename D, typename S>
__global__ void convert_kernel(D* dst, const S* src, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    dst[i] = from_f32<D>(to_f32(src[i]));
}

}  // namespace

void convert_cuda(void* dst, DType dst_dtype, const void* src, DType src_dtype, size_t n,
                  cudaStream_t stream) {
  if (n == 0) return;
  const int blocks = int(std::min<size_t>((n + 255) / 256, 8192));
  dispatch_float(dst_dtype, [&](auto dtag) {
    dispatch_float(src_dtype, [&](auto stag) {
      using D = decltype(dtag);
      using S = decltype(stag);
      convert_kernel<D, S><<<blocks, 256, 0, stream>>>(static_cast<D*>(dst), static_cast<const S*>(src), n);
    });
  });
  CUDA_CHECK_LAUNCH();
}

}  // namespace llama_tp::kernels

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

// hi[i] = round(x[i]), lo[i] = round(x[i] - hi[i]): hi + lo carries ~16 mantissa bits of x.
template <typename D>
__global__ void split_hi_lo_kernel(D* hi, D* lo, const float* x, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const D h = from_f32<D>(x[i]);
    hi[i] = h;
    lo[i] = from_f32<D>(x[i] - to_f32(h));
  }
}

__global__ void add_halves_kernel(float* out, const float* parts, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    out[i] = parts[i] + parts[n + i];
}

}  // namespace

void split_hi_lo_cuda(void* hi_lo, DType dtype, const float* x, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  const int blocks = int(std::min<size_t>((n + 255) / 256, 8192));
  dispatch_float(dtype, [&](auto tag) {
    using D = decltype(tag);
    D* hi = static_cast<D*>(hi_lo);
    split_hi_lo_kernel<D><<<blocks, 256, 0, stream>>>(hi, hi + n, x, n);
  });
  CUDA_CHECK_LAUNCH();
}

void add_halves_cuda(float* out, const float* parts, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  const int blocks = int(std::min<size_t>((n + 255) / 256, 8192));
  add_halves_kernel<<<blocks, 256, 0, stream>>>(out, parts, n);
  CUDA_CHECK_LAUNCH();
}

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

#include "kernels/common_cuda.h"
#include "kernels/rmsnorm_cuda.h"
#include "runtime/cuda_check.h"

namespace llama_tp::kernels {
namespace {

// One block per row. With `delta`, x_out = x + delta is folded into the first pass (then the
// norm reads x_out). No __restrict__: out may alias x, x_out may alias x (each thread reads
// element i before it writes it, and the reduction's barrier separates all reads of the sum
// from the writes).
template <typename W>
__global__ void rmsnorm_kernel(float* out, float* x_out, const float* x, const float* delta, const W* weight,
                               int dim, float eps) {
  const float* xr = x + size_t(blockIdx.x) * dim;
  float* o = out + size_t(blockIdx.x) * dim;
  float ss = 0.f;
  if (delta) {
    const float* dr = delta + size_t(blockIdx.x) * dim;
    float* xo = x_out + size_t(blockIdx.x) * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
      float v = xr[i] + dr[i];
      xo[i] = v;
      ss += v * v;
    }
    xr = xo;
  } else {
    for (int i = threadIdx.x; i < dim; i += blockDim.x) ss += xr[i] * xr[i];
  }
  ss = block_sum(ss);
  const float scale = 1.0f / sqrtf(ss / float(dim) + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x) o[i] = xr[i] * scale * to_f32(weight[i]);
}

void launch(float* out, float* x_out, const float* x, const float* delta, const void* weight, DType wt, int rows,
            int dim, float eps, cudaStream_t stream) {
  if (rows == 0 || dim == 0) return;
  // Few rows (decode): wide blocks so one row is read by many threads at once.
  const int threads = rows < 128 ? 1024 : 256;
  dispatch_float(wt, [&](auto tag) {
    using W = decltype(tag);
    rmsnorm_kernel<W><<<rows, threads, 0, stream>>>(out, x_out, x, delta, static_cast<const W*>(weight), dim, eps);
  });
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void rmsnorm_cuda(float* out, const float* x, const void* weight, DType weight_dtype, int rows,
                  int dim, float eps, cudaStream_t stream) {
  launch(out, nullptr, x, nullptr, weight, weight_dtype, rows, dim, eps, stream);
}

void add_rmsnorm_cuda(float* out, float* x_out, const float* x, const float* delta, const void* weight,
                      DType weight_dtype, int rows, int dim, float eps, cudaStream_t stream) {
  launch(out, x_out, x, delta, weight, weight_dtype, rows, dim, eps, stream);
}

}  // namespace llama_tp::kernels

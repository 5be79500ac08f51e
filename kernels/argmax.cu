#include "kernels/argmax_cuda.h"
#include "kernels/common_cuda.h"
#include "runtime/cuda_check.h"

namespace llama_tp::kernels {
namespace {

// (value, index) pairs; the larger value wins, the smaller index on ties.
__device__ __forceinline__ void keep_best(float& v, int& i, float ov, int oi) {
  if (ov > v || (ov == v && oi < i)) v = ov, i = oi;
}

__global__ void argmax_kernel(int32_t* out, const float* x, int n) {
  __shared__ float sv[32];
  __shared__ int si[32];
  const float* row = x + size_t(blockIdx.x) * n;
  float v = -INFINITY;
  int best = n;  // stays n only for threads that see no element
  for (int i = threadIdx.x; i < n; i += blockDim.x) keep_best(v, best, row[i], i);
  for (int o = 16; o > 0; o >>= 1)
    keep_best(v, best, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, best, o));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) sv[warp] = v, si[warp] = best;
  __syncthreads();
  if (warp == 0) {
    v = lane < int(blockDim.x / 32) ? sv[lane] : -INFINITY;
    best = lane < int(blockDim.x / 32) ? si[lane] : n;
    for (int o = 16; o > 0; o >>= 1)
      keep_best(v, best, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, best, o));
    if (lane == 0) out[blockIdx.x] = best < n ? best : 0;  // all -inf/NaN: index 0, as on the CPU
  }
}

}  // namespace

void argmax_cuda(int32_t* out, const float* x, int rows, int n, cudaStream_t stream) {
  if (rows == 0) return;
  argmax_kernel<<<rows, 1024, 0, stream>>>(out, x, n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace llama_tp::kernels

#include <algorithm>

#include "kernels/argmax_cuda.h"
#include "kernels/common_cuda.h"
#include "runtime/cuda_check.h"

namespace llama_tp::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kPerBlock = 8192;  // elements per block when a row is split over blocks

// (value, index) pairs; the larger value wins, the smaller index on ties.
__device__ __forceinline__ void keep_best(float& v, int& i, float ov, int oi) {
  if (ov > v || (ov == v && oi < i)) v = ov, i = oi;
}

__device__ __forceinline__ void warp_best(float& v, int& i) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
    keep_best(v, i, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, i, o));
}

struct Params {
  int32_t* out;
  float* values;
  const float* x;
  int n;
  float* part_v;       // [rows][parts]
  int* part_i;         // [rows][parts]
  unsigned* counters;  // [rows], zero between launches
};

// Block (part, row) reduces its slice of the row; with several parts, the last block of a row to
// finish reduces the parts' winners (so a long row is read by many SMs, in one kernel).
__global__ void __launch_bounds__(kThreads) argmax_kernel(Params p) {
  __shared__ float sv[kThreads / 32];
  __shared__ int si[kThreads / 32];
  __shared__ bool s_last;
  const int row = blockIdx.y, part = blockIdx.x, parts = gridDim.x;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  wait_for_previous_kernel();  // launched with programmatic dependent launch
  release_next_kernel();
  const float* x = p.x + size_t(row) * p.n;
  const int chunk = cdiv(p.n, parts), end = min(p.n, (part + 1) * chunk);
  float v = -INFINITY;
  int best = p.n;  // stays n only for threads that see no element
#pragma unroll 8
  for (int i = part * chunk + threadIdx.x; i < end; i += kThreads) keep_best(v, best, x[i], i);
  warp_best(v, best);
  if (lane == 0) sv[warp] = v, si[warp] = best;
  __syncthreads();
  if (warp != 0) return;
  v = lane < kThreads / 32 ? sv[lane] : -INFINITY;
  best = lane < kThreads / 32 ? si[lane] : p.n;
  warp_best(v, best);
  if (parts > 1) {
    if (lane == 0) {
      p.part_v[size_t(row) * parts + part] = v, p.part_i[size_t(row) * parts + part] = best;
      __threadfence();
      s_last = atomicAdd(&p.counters[row], 1u) == unsigned(parts - 1);
    }
    __syncwarp();
    if (!s_last) return;
    __threadfence();
    v = -INFINITY, best = p.n;
    for (int s = lane; s < parts; s += 32)
      keep_best(v, best, __ldcg(p.part_v + size_t(row) * parts + s), __ldcg(p.part_i + size_t(row) * parts + s));
    warp_best(v, best);
  }
  if (lane == 0) {
    const int i = best < p.n ? best : 0;  // all -inf/NaN: index 0, as on the CPU
    p.out[row] = i;
    if (p.values) p.values[row] = x[i];
    if (parts > 1) p.counters[row] = 0;  // ready for the next launch
  }
}

}  // namespace

size_t argmax_scratch_bytes(int rows) { return size_t(rows) * kArgmaxMaxParts * (sizeof(float) + sizeof(int)); }

void argmax_cuda(int32_t* out, float* values, const float* x, int rows, int n, cudaStream_t stream, void* scratch,
                 unsigned* counters) {
  if (rows == 0) return;
  const int parts = scratch && counters ? std::clamp(cdiv(n, kPerBlock), 1, kArgmaxMaxParts) : 1;
  Params p{out, values, x, n, nullptr, nullptr, counters};
  if (parts > 1) {
    p.part_v = static_cast<float*>(scratch);
    p.part_i = reinterpret_cast<int*>(p.part_v + size_t(rows) * parts);
  }
  CUDA_CHECK(launch(argmax_kernel, dim3(parts, rows), dim3(kThreads), 0, stream, true, p));
  CUDA_CHECK_LAUNCH();
}

}  // namespace llama_tp::kernels

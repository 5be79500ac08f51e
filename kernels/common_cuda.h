#pragma once
// Device helpers shared by the CUDA kernels (include from .cu files only): element conversions,
// 16-byte vector loads, warp/block reductions, and the host-side dispatch from DType to the
// element type a kernel template is instantiated with.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <numbers>
#include <utility>

#include "runtime/dtype.h"
#include "runtime/error.h"

namespace llama_tp::kernels {

using bf16 = __nv_bfloat16;
using f16 = __half;

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(f16 x) { return __half2float(x); }
__device__ __forceinline__ float to_f32(bf16 x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T from_f32(float x);
template <>
__device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <>
__device__ __forceinline__ f16 from_f32<f16>(float x) { return __float2half_rn(x); }
template <>
__device__ __forceinline__ bf16 from_f32<bf16>(float x) { return __float2bfloat16_rn(x); }

// Elements of T in one 16-byte load.
template <typename T>
constexpr int kVec = 16 / int(sizeof(T));

// Unpacks 16 bytes holding kVec<T> elements of T into floats.
__device__ __forceinline__ void unpack(uint4 u, float* f, float) {
  f[0] = __uint_as_float(u.x), f[1] = __uint_as_float(u.y);
  f[2] = __uint_as_float(u.z), f[3] = __uint_as_float(u.w);
}
__device__ __forceinline__ void unpack(uint4 u, float* f, f16) {
  const __half2* h = reinterpret_cast<const __half2*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    float2 p = __half22float2(h[i]);
    f[2 * i] = p.x, f[2 * i + 1] = p.y;
  }
}
__device__ __forceinline__ void unpack(uint4 u, float* f, bf16) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    float2 p = __bfloat1622float2(h[i]);
    f[2 * i] = p.x, f[2 * i + 1] = p.y;
  }
}

// A hint to bring the 128-byte line at p into L2 (no register, no wait).
__device__ __forceinline__ void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the whole block, returned to every thread. blockDim.x must be a multiple of 32.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float partial[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = warp_sum(v);
  __syncthreads();  // partial[] may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < int(blockDim.x / 32) ? partial[lane] : 0.f;
  return warp_sum(v);
}

__host__ __device__ inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }
__host__ __device__ inline int cdiv(int64_t a, int64_t b) { return int((a + b - 1) / b); }

// An attribute of the current device, asked once per device; `fallback` where it cannot be had.
template <cudaDeviceAttr kAttr>
int device_attribute(int fallback) {
  static int cached[64] = {};
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64) {
    cudaGetLastError();
    return fallback;
  }
  if (cached[dev] == 0) {
    int v = 0;
    if (cudaDeviceGetAttribute(&v, kAttr, dev) != cudaSuccess) cudaGetLastError();
    cached[dev] = v > 0 ? v : fallback;
  }
  return cached[dev];
}

// Multiprocessors of the current device.
inline int sm_count() { return device_attribute<cudaDevAttrMultiProcessorCount>(1); }
// Most shared memory one block may use (opted in above the 48 KiB default).
inline int smem_optin() { return device_attribute<cudaDevAttrMaxSharedMemoryPerBlockOptin>(48 * 1024); }

// Blocks of `kernel` (`threads` threads, `smem` bytes of dynamic shared memory) resident on one
// SM of the current device, asked once per kernel and size; the opt-in above 48 KiB is set then.
inline int resident_blocks(const void* kernel, int threads, size_t smem) {
  struct Entry {
    const void* kernel;
    int threads, device;
    size_t smem;
    int fit;
  };
  static Entry cache[256];
  static int n = 0;
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) cudaGetLastError();
  for (int i = 0; i < n; ++i)
    if (cache[i].kernel == kernel && cache[i].threads == threads && cache[i].smem == smem && cache[i].device == dev)
      return cache[i].fit;
  // The opt-in is the most the kernel may have (the device's, less its static shared memory),
  // not this size: one kernel may be asked for several sizes (GEMVs of different k), and a later,
  // smaller opt-in would make launches of a larger one fail.
  if (smem > 48 * 1024) {
    cudaFuncAttributes attr{};
    const int most = cudaFuncGetAttributes(&attr, kernel) == cudaSuccess ? smem_optin() - int(attr.sharedSizeBytes) : int(smem);
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, std::max(int(smem), most)) != cudaSuccess)
      LLAMA_TP_FAIL("cannot give a kernel ", smem, " bytes of shared memory: ", cudaGetErrorString(cudaGetLastError()));
  }
  int fit = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&fit, kernel, threads, smem) != cudaSuccess) {
    cudaGetLastError();
    fit = 1;
  }
  fit = fit > 0 ? fit : 1;
  if (n < 256) cache[n++] = Entry{kernel, threads, dev, smem, fit};
  return fit;
}

// Whether an optional fast path named by environment variable `name` may be taken: yes unless
// the variable starts with '0' (for comparisons with the path it replaces).
inline bool env_allows(const char* name) {
  const char* v = std::getenv(name);
  return !(v && v[0] == '0');
}

// 16 bytes from global to shared memory without registers (zeros where !ok), in flight until
// commit_copies() and groups_arrived().
__device__ __forceinline__ void copy_async16(uint4* dst, const uint4* src, bool ok) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(unsigned(__cvta_generic_to_shared(dst))), "l"(src),
               "r"(ok ? 16 : 0)
               : "memory");
#else
  *dst = ok ? *src : make_uint4(0, 0, 0, 0);
#endif
}
// The copies issued so far become one group; groups_arrived() waits for the groups (not for
// copies issued after the last commit).
__device__ __forceinline__ void commit_copies() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}
__device__ __forceinline__ void groups_arrived() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group 0;" ::: "memory");
#endif
}

// log2(e) / sqrt(head_dim): what attention scores are multiplied by in base-2 units, for exp2f
// (the decode and the flash prefill kernels' softmax).
inline float softmax_scale_log2(int head_dim) { return float(std::numbers::log2e / std::sqrt(double(head_dim))); }

// ---- Programmatic dependent launch (Hopper and later) ----
// A kernel launched with launch(..., pdl = true) may start while the kernel before it on the
// stream is still finishing: it must call wait_for_previous_kernel() before it reads anything
// an earlier kernel wrote or writes anything an earlier kernel reads (work on constant data,
// such as pulling weights into L2, may come first), and calls release_next_kernel() once the
// next kernel may be scheduled beside its own blocks. On older GPUs both are no-ops and the
// launch is ordinary. Meant to hide each kernel's launch latency and tail in a decode step of
// a few hundred small kernels (see pdl_enabled for what it measured).
__device__ __forceinline__ void wait_for_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void release_next_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Whether launches on the current device use programmatic dependent launch: compute
// capability 9.0 or later, unless LLAMA_TP_PDL=0. Measured on an H200 (bf16, batch 1, graphs):
// Llama-3.2-1B decode 873 -> 976 tok/s, Llama-3-8B 206 -> 211, at depth 8192 188 -> 195. (On
// the H100 it measured slower before the GEMV issued its first weight loads ahead of the wait:
// the early blocks then had nothing to do.)
inline bool pdl_enabled() {
  static const bool allowed = env_allows("LLAMA_TP_PDL");
  return allowed && device_attribute<cudaDevAttrComputeCapabilityMajor>(0) >= 9;
}

// kernel<<<grid, block, smem, stream>>>(args...), with programmatic dependent launch when `pdl`
// and the device supports it (see wait_for_previous_kernel), in thread block clusters of
// cluster_x blocks along x where > 1 (compute capability 9.0 and later). Returns the launch's error.
template <typename... Params, typename... Args>
cudaError_t launch_clustered(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                             bool pdl, unsigned cluster_x, Args&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[2];
  unsigned n = 0;
  if (pdl && pdl_enabled()) {
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n++].val.programmaticStreamSerializationAllowed = 1;
  }
  if (cluster_x > 1) {
    attr[n].id = cudaLaunchAttributeClusterDimension;
    attr[n++].val.clusterDim = {cluster_x, 1, 1};
  }
  cfg.attrs = attr;
  cfg.numAttrs = n;
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}
template <typename... Params, typename... Args>
cudaError_t launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, bool pdl,
                   Args&&... args) {
  return launch_clustered(kernel, grid, block, smem, stream, pdl, 1u, std::forward<Args>(args)...);
}

// Calls f(T{}) with T the element type of a floating dtype: float, f16 or bf16.
template <typename F>
void dispatch_float(DType t, F&& f) {
  switch (t) {
    case DType::F32: f(float{}); return;
    case DType::F16: f(f16{}); return;
    case DType::BF16: f(bf16{}); return;
    default: LLAMA_TP_FAIL("CUDA kernels take f32, f16 or bf16 tensors, not ", dtype_name(t));
  }
}

}  // namespace llama_tp::kernels

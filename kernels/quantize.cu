#include <algorithm>
#include <cstring>

#include "kernels/common_cuda.h"
#include "kernels/quant_scale.h"
#include "kernels/quantize_cuda.h"
#include "runtime/cuda_check.h"

namespace llama_tp::kernels {
namespace {

constexpr int kWarpsPerBlock = 8;

template <typename T>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    quantize_kernel(int8_t* __restrict__ q, QuantScale* __restrict__ scales, const T* __restrict__ w, int64_t n,
                    int64_t k, int64_t group, int64_t groups) {
  const int64_t id = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;  // (row, group) index
  const int lane = threadIdx.x % 32;
  if (id >= n * groups) return;
  const int64_t row = id / groups, g = id % groups;
  const int64_t c0 = g * group, count = k - c0 < group ? k - c0 : group;
  const T* wg = w + row * k + c0;
  float amax = 0.f;
  for (int64_t c = lane; c < count; c += 32) amax = fmaxf(amax, fabsf(to_f32(wg[c])));
  amax = warp_max(amax);
  const QuantScale stored = device_quant_scale_round(amax / 127.0f);  // IEEE division, as the CPU reference
  const float scale = device_quant_scale_value(stored);
  int8_t* qg = q + row * k + c0;
  for (int64_t c = lane; c < count; c += 32) {
    const float v = scale > 0.f ? rintf(to_f32(wg[c]) / scale) : 0.f;  // rintf: half to even
    qg[c] = int8_t(fminf(fmaxf(v, -127.f), 127.f));
  }
  if (lane == 0) scales[id] = stored;
}

// Stores 16 floats as 16 elements of T at dst (16-byte aligned for T = f16/bf16, 64 for f32).
__device__ __forceinline__ void store16(float* dst, const float* f) {
#pragma unroll
  for (int j = 0; j < 4; ++j)
    reinterpret_cast<float4*>(dst)[j] = make_float4(f[4 * j], f[4 * j + 1], f[4 * j + 2], f[4 * j + 3]);
}
template <typename H2>
__device__ __forceinline__ uint32_t pack2(H2 p) {
  uint32_t u;
  memcpy(&u, &p, 4);
  return u;
}
template <typename H, typename H2>
__device__ __forceinline__ void store16_half(H* dst, const float* f) {
  uint32_t u[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    H2 p;
    p.x = from_f32<H>(f[2 * j]);
    p.y = from_f32<H>(f[2 * j + 1]);
    u[j] = pack2(p);
  }
  reinterpret_cast<uint4*>(dst)[0] = make_uint4(u[0], u[1], u[2], u[3]);
  reinterpret_cast<uint4*>(dst)[1] = make_uint4(u[4], u[5], u[6], u[7]);
}
__device__ __forceinline__ void store16(f16* dst, const float* f) { store16_half<f16, __half2>(dst, f); }
__device__ __forceinline__ void store16(bf16* dst, const float* f) { store16_half<bf16, __nv_bfloat162>(dst, f); }

// Vectorized: one thread per 16 weights (k and group multiples of 16, so the 16 share a row
// and a scale, and every pointer is 16-byte aligned).
template <typename T>
__global__ void dequantize16_kernel(T* __restrict__ out, const int8_t* __restrict__ q,
                                    const QuantScale* __restrict__ scales, int64_t n, int64_t k, int64_t group,
                                    int64_t groups) {
  const int64_t chunks = n * (k / 16);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < chunks; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t e = i * 16, row = e / k, col = e % k;
    const float s = device_quant_scale_value(scales[row * groups + col / group]);
    const uint4 u = *reinterpret_cast<const uint4*>(q + e);
    const uint32_t words[4] = {u.x, u.y, u.z, u.w};
    float f[16];
#pragma unroll
    for (int j = 0; j < 16; ++j) f[j] = float(int8_t(words[j / 4] >> (8 * (j % 4)))) * s;
    store16(out + e, f);
  }
}

template <typename T>
__global__ void dequantize_kernel(T* __restrict__ out, const int8_t* __restrict__ q,
                                  const QuantScale* __restrict__ scales, int64_t n, int64_t k, int64_t group,
                                  int64_t groups) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n * k; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = e / k, col = e % k;
    out[e] = from_f32<T>(float(q[e]) * device_quant_scale_value(scales[row * groups + col / group]));
  }
}

}  // namespace

void quantize_int8_cuda(int8_t* q, QuantScale* scales, const void* w, DType w_dtype, int64_t n, int64_t k, int64_t group,
                        cudaStream_t stream) {
  if (n == 0 || k == 0) return;
  LLAMA_TP_CHECK(group > 0, "quantize_int8_cuda: group must be positive");
  const int64_t groups = (k + group - 1) / group;
  const int64_t blocks = (n * groups + kWarpsPerBlock - 1) / kWarpsPerBlock;
  LLAMA_TP_CHECK(blocks < (int64_t(1) << 31), "quantize_int8_cuda: ", n, " x ", k, " is too large for one launch");
  dispatch_float(w_dtype, [&](auto tag) {
    using T = decltype(tag);
    quantize_kernel<T><<<unsigned(blocks), kWarpsPerBlock * 32, 0, stream>>>(q, scales, static_cast<const T*>(w), n,
                                                                               k, group, groups);
  });
  CUDA_CHECK_LAUNCH();
}

void dequantize_int8_cuda(void* out, DType out_dtype, const int8_t* q, const QuantScale* scales, int64_t n, int64_t k,
                          int64_t group, cudaStream_t stream) {
  if (n == 0 || k == 0) return;
  const int64_t groups = (k + group - 1) / group;
  const bool vec = k % 16 == 0 && group % 16 == 0 && aligned16(q) && aligned16(out);
  const int64_t work = vec ? n * k / 16 : n * k;
  const int blocks = int(std::min<int64_t>((work + 255) / 256, 65536));
  dispatch_float(out_dtype, [&](auto tag) {
    using T = decltype(tag);
    T* o = static_cast<T*>(out);
    if (vec)
      dequantize16_kernel<T><<<blocks, 256, 0, stream>>>(o, q, scales, n, k, group, groups);
    else
      dequantize_kernel<T><<<blocks, 256, 0, stream>>>(o, q, scales, n, k, group, groups);
  });
  CUDA_CHECK_LAUNCH();
}

}  // namespace llama_tp::kernels

#pragma once
// Private to kernels/gemv.cu: how int8 GEMVs sum with integer dot products. x, staged as floats,
// is rounded to 16-bit integers per 16 columns and kept as two byte planes; gemv.cu's
// dot_batch_int takes 8 dp4a per 16-byte weight chunk and row.
#include <cstddef>
#include <cstdint>

#include "kernels/common_cuda.h"

namespace llama_tp::kernels {
namespace {  // one translation unit (gemv.cu) includes this

// ---- int8 weights with integer dot products -----------------------------------------------
// On the float path, int8 weights leave the GEMV compute-bound: each weight takes two
// instructions to become a float and one FMA. Instead, x is rounded to 16-bit integers with one
// f32 scale per 16 columns (one 16-byte weight chunk), kept in shared memory as two byte planes:
// byte 1 (signed) and byte 0 (unsigned) of each integer q, so q = hi * 256 + lo. A chunk's dot
// is then 8 dp4a (four-byte integer dot products, exact in int32) per row, with no conversion of
// the weights: 4 with the hi plane, 4 with the lo plane, one int-to-float, one FMA with both
// scales. The rounding of x (at most max|x| of its 16 columns / 2^16) is two orders of magnitude
// below the int8 weights' own (their group's max / 2^8).
//
// Measured on an H200 (kernel bench, 20 launches back to back, Llama-3-8B shapes): against the
// tensor-core form this replaced (mma.m16n8k32 with x as three int8 planes, whose diagonal gave
// the sums), qkv 11.0 -> 9.7 us, o 8.6 -> 7.3, gate/up 32.0 -> 30.2, down 25.2 -> 20.7. Whole
// decode steps (Llama-3-8B, int8, tg128): 294.5 t/s with the tensor cores, 342.9 with dp4a (x in
// 16-bit planes, a separate call), 350.3 once quantize_staged_x lost its bank conflicts.

constexpr int kSegment = 16;    // columns per x scale: one weight chunk
constexpr int kMaxQ = 0x7FFF;   // the largest |x| as a 16-bit integer

// Where the staged x lives for the integer kind, after the floats: the hi plane and the lo plane
// (k bytes each), then one f32 scale per 16 columns.
struct XPlanes {
  uint4* hi;  // chunk c of the hi plane; the lo plane follows k / 16 entries later
  float* scale;
};
__host__ __device__ inline size_t int_dot_smem_bytes(int k) {
  return size_t(k) * (sizeof(float) + 2) + sizeof(float) * size_t(k / kSegment);
}

__device__ __forceinline__ int dp4a_s8s8(uint32_t a, uint32_t b, int c) {
  int d;
  asm("dp4a.s32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}
__device__ __forceinline__ int dp4a_s8u8(uint32_t a, uint32_t b, int c) {
  int d;
  asm("dp4a.s32.u32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}

// Where the integer kind's planes start: after the k staged floats.
__device__ __forceinline__ XPlanes planes_after(float* s_x, int k) {
  uint4* hi = reinterpret_cast<uint4*>(s_x + k);
  return {hi, reinterpret_cast<float*>(reinterpret_cast<uint8_t*>(hi) + 2 * size_t(k))};
}

// max(a, |b|), NaN if either is NaN (fmaxf would drop it).
__device__ __forceinline__ float max_abs_nan(float a, float b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  float d;
  asm("max.NaN.f32 %0, %1, %2;" : "=f"(d) : "f"(a), "f"(fabsf(b)));
  return d;
#else
  return a != a || b != b ? NAN : fmaxf(a, fabsf(b));
#endif
}

// x (staged as floats in s_x, see stage_input; k % 16 == 0) as 16-bit integers into the planes,
// one 16-column segment per thread at a time. Every block does this for the whole of x, so it is
// kept short: no shuffles, one reciprocal per segment, one FMA per value (adding 1.5 * 2^23
// leaves the integer in the low mantissa bits: bytes 0 and 1 are its 16-bit two's complement),
// two byte permutes per two values. A NaN makes its segment's scale NaN, so that NaN reaches the
// output as on the float path.
__device__ void quantize_staged_x(float* s_x, int k) {
  const XPlanes x = planes_after(s_x, k);
  uint4* hi = x.hi;
  float* scale = x.scale;
  const int segments = k / kSegment;
  // A thread reads its segment's four 16-byte quarters starting at quarter (lane / 2) % 4, so that
  // the 8 lanes of each shared-memory phase hit 8 different bank groups (in order, the segments
  // 64 bytes apart made it a 4-way conflict: on Llama-3-8B's down projection that was 2 us).
  const int rot = (threadIdx.x >> 1) & 3;
  for (int s = threadIdx.x; s < segments; s += blockDim.x) {
    const float4* v4 = reinterpret_cast<const float4*>(s_x) + 4 * s;
    float4 f[4];  // f[j]: quarter (j + rot) % 4
#pragma unroll
    for (int j = 0; j < 4; ++j) f[j] = v4[(j + rot) & 3];
    float mx = 0.f;
#pragma unroll
    for (int j = 0; j < 4; ++j)
      mx = max_abs_nan(max_abs_nan(max_abs_nan(max_abs_nan(mx, f[j].x), f[j].y), f[j].z), f[j].w);
    scale[s] = mx * (1.f / float(kMaxQ));
    // |v * inv| stays below kMaxQ + 0.5 (inv at most 2 ulp above kMaxQ / mx); below 1e-30: zeros.
    const float inv = mx >= 1e-30f ? __fdividef(float(kMaxQ), mx) : 0.f;
    uint32_t h[4], l[4];  // quarter (j + rot) % 4, as f
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      auto q = [&](float e) { return __float_as_uint(fmaf(e, inv, 12582912.f)); };
      const uint32_t a = __byte_perm(q(f[j].x), q(f[j].y), 0x5140), b = __byte_perm(q(f[j].z), q(f[j].w), 0x5140);
      l[j] = __byte_perm(a, b, 0x5410);  // a: lo0 lo1 hi0 hi1, b: lo2 lo3 hi2 hi3
      h[j] = __byte_perm(a, b, 0x7632);
    }
    // Back in column order: quarter w came from f[(w - rot) % 4].
    auto at = [&](const uint32_t (&v)[4], int w) {
      const int j = (w - rot) & 3;
      return j == 0 ? v[0] : j == 1 ? v[1] : j == 2 ? v[2] : v[3];
    };
    hi[s] = make_uint4(at(h, 0), at(h, 1), at(h, 2), at(h, 3));
    hi[segments + s] = make_uint4(at(l, 0), at(l, 1), at(l, 2), at(l, 3));
  }
  __syncthreads();
}

}  // namespace
}  // namespace llama_tp::kernels

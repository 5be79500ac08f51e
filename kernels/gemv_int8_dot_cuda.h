#pragma once
// Private to kernels/gemv.cu: how int8 GEMVs sum with integer dot products. x is rounded to
// 16-bit integers per 16 columns as it is staged (gemv.cu's stage_input_planes) and kept as two
// byte planes; gemv.cu's dot_batch_int takes 8 dp4a per 16-byte weight chunk and row.
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
// 16-bit planes, a separate call), 350.3 once the quantization lost its bank conflicts. Planes
// made straight from x (no float staging, session 15): 8B 362.3 -> 363.8, 1B 1446 -> 1469 t/s.

constexpr int kSegment = 16;    // columns per x scale: one weight chunk
constexpr int kMaxQ = 0x7FFF;   // the largest |x| as a 16-bit integer

// Where the staged x lives for the integer kind: the hi plane and the lo plane (k bytes each),
// then one f32 scale per 16 columns.
struct XPlanes {
  uint4* hi;  // chunk c of the hi plane; the lo plane follows k / 16 entries later
  float* scale;
};
// Shared memory of the integer kind's staged x.
__host__ __device__ inline size_t int_dot_smem_bytes(int k) { return size_t(k) * 2 + sizeof(float) * size_t(k / kSegment); }

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

// The planes at the start of the kernel's shared memory.
__device__ __forceinline__ XPlanes x_planes(float* smem, int k) {
  uint4* hi = reinterpret_cast<uint4*>(smem);
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

}  // namespace
}  // namespace llama_tp::kernels

#pragma once
// The scales of int8 weights (kernels/quantize.h) are stored as f16 of the scale times 2^8, its
// bits in a uint16_t: half the bytes of f32 (a weight streams 1 + 2 / 128 bytes instead of
// 1 + 4 / 128 in groups of 128) with f16's 11-bit precision. The 2^8 moves f16's range to scales
// of max|w| from 3e-5 (below that its subnormals lose precision; f16 itself from 8e-3) up to
// 32500 (larger groups saturate there; no Llama checkpoint comes near). The quantizer rounds the
// scale first and divides by the rounded value, so each value stays within half a step.
// bf16 scales (8-bit precision, the step moved by up to 0.4%) had lowered tiny-llama2's mean
// cosine against the float model from 0.99920 to 0.99894 (tests/runtime/test_int8_model.cpp).
#include <cstdint>

#include "runtime/dtype.h"

#ifdef __CUDACC__
#include <cuda_fp16.h>
#endif

namespace llama_tp::kernels {

using QuantScale = uint16_t;  // f16 bits of scale * kQuantScaleShift
constexpr DType kQuantScaleDType = DType::F16;  // the dtype of a LinearWeight's scales tensor
constexpr float kQuantScaleShift = 256.f;
constexpr float kQuantScaleMax = 65504.f;  // the largest finite f16

inline float quant_scale_value(QuantScale s) { return f16_to_f32(s) * (1.f / kQuantScaleShift); }
// Round to nearest even (saturating); the GPU quantizer's device_quant_scale_round gives the same.
inline QuantScale quant_scale_round(float scale) {
  const float shifted = scale * kQuantScaleShift;
  return f32_to_f16(shifted < kQuantScaleMax ? shifted : kQuantScaleMax);
}

#ifdef __CUDACC__
__device__ __forceinline__ float device_quant_scale_value(QuantScale s) {
  return __half2float(__ushort_as_half(s)) * (1.f / kQuantScaleShift);
}
__device__ __forceinline__ QuantScale device_quant_scale_round(float scale) {
  const float shifted = scale * kQuantScaleShift;
  return __half_as_ushort(__float2half_rn(shifted < kQuantScaleMax ? shifted : kQuantScaleMax));
}
#endif

}  // namespace llama_tp::kernels

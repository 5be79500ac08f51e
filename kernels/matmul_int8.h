#pragma once
#include <cstdint>

#include "kernels/quant_scale.h"

namespace llama_tp::kernels {
// out[m, n] = x[m, k] · wᵀ where w[n, k] = q * scale is int8 with one f16 scale per group of
// `group` columns of a row (scales [n, ceil(k / group)]; see kernels/quantize.h). The reference:
// dequantizes on the fly, float32 accumulation (per group, then scaled).
void matmul_int8_cpu(float* out, const float* x, const int8_t* q, const QuantScale* scales, int m, int n, int k,
                     int group);
}  // namespace llama_tp::kernels

#pragma once
// Int8 weight-only quantization of a [n, k] row-major matrix: each row is cut into groups of
// `group` consecutive columns (the last one shorter when group does not divide k), and each
// group gets one scale = max|w| / 127 rounded to f16 (kernels/quant_scale.h); q =
// round-half-even(w / scale), in [-127, 127] (llama2.c's Q8_0 and llama.cpp's Q8_0 round the same
// way). An all-zero group gets scale 0.
#include <cstdint>

#include "kernels/quant_scale.h"

namespace llama_tp::kernels {

// q[n, k], scales[n, ceil(k / group)].
void quantize_int8_cpu(int8_t* q, QuantScale* scales, const float* w, int64_t n, int64_t k, int64_t group);
// w[n, k] = q * scale.
void dequantize_int8_cpu(float* w, const int8_t* q, const QuantScale* scales, int64_t n, int64_t k, int64_t group);
// One group: its scale and the quantized values.
QuantScale quantize_int8_group(int8_t* q, const float* w, int64_t count);

}  // namespace llama_tp::kernels

#include "kernels/quantize.h"

#include <algorithm>
#include <cmath>

namespace llama_tp::kernels {

QuantScale quantize_int8_group(int8_t* q, const float* w, int64_t count) {
  float amax = 0.f;
  for (int64_t i = 0; i < count; ++i) amax = std::max(amax, std::fabs(w[i]));
  // Division by the stored scale (not multiplication by its inverse) so that the GPU kernel,
  // which does the same IEEE division, produces the same bytes.
  const QuantScale stored = quant_scale_round(amax / 127.0f);
  const float scale = quant_scale_value(stored);
  for (int64_t i = 0; i < count; ++i) {
    const float v = scale > 0.f ? std::nearbyint(w[i] / scale) : 0.f;
    q[i] = int8_t(std::clamp(v, -127.f, 127.f));
  }
  return stored;
}

void quantize_int8_cpu(int8_t* q, QuantScale* scales, const float* w, int64_t n, int64_t k, int64_t group) {
  const int64_t groups = (k + group - 1) / group;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t c0 = g * group, count = std::min(group, k - c0);
      scales[r * groups + g] = quantize_int8_group(q + r * k + c0, w + r * k + c0, count);
    }
}

void dequantize_int8_cpu(float* w, const int8_t* q, const QuantScale* scales, int64_t n, int64_t k, int64_t group) {
  const int64_t groups = (k + group - 1) / group;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) w[r * k + c] = float(q[r * k + c]) * quant_scale_value(scales[r * groups + c / group]);
}

}  // namespace llama_tp::kernels

// Int8 weight-only quantization on the CPU (the reference every other int8 path is held to):
// scales, rounding, the round trip, partial groups, and the int8 product against the float one.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/matmul.h"
#include "kernels/matmul_int8.h"
#include "kernels/quantize.h"
#include "runtime/backend.h"
#include "test_util.h"

namespace llama_tp {
namespace {

struct Quantized {
  std::vector<int8_t> q;
  std::vector<kernels::QuantScale> scales;
  std::vector<float> back;
};

Quantized round_trip(const std::vector<float>& w, int64_t n, int64_t k, int64_t group) {
  Quantized r;
  const int64_t groups = (k + group - 1) / group;
  r.q.resize(size_t(n * k));
  r.scales.resize(size_t(n * groups));
  r.back.resize(size_t(n * k));
  kernels::quantize_int8_cpu(r.q.data(), r.scales.data(), w.data(), n, k, group);
  kernels::dequantize_int8_cpu(r.back.data(), r.q.data(), r.scales.data(), n, k, group);
  return r;
}

TEST(Quantize, ScaleIsGroupMaxOver127AndErrorAtMostHalfAStep) {
  struct Shape { int64_t n, k, group; };
  // Whole groups, a shorter last group (100 = 64 + 36), a group wider than the row (one scale
  // per row), and group 1.
  for (Shape s : {Shape{7, 256, 128}, Shape{5, 100, 64}, Shape{3, 64, 128}, Shape{2, 9, 1}}) {
    const auto w = test::random_floats(size_t(s.n * s.k), 11, -0.3f, 0.2f);
    const Quantized r = round_trip(w, s.n, s.k, s.group);
    const int64_t groups = (s.k + s.group - 1) / s.group;
    for (int64_t row = 0; row < s.n; ++row)
      for (int64_t g = 0; g < groups; ++g) {
        float amax = 0;
        int qmax = 0;
        for (int64_t c = g * s.group; c < std::min(s.k, (g + 1) * s.group); ++c) {
          amax = std::max(amax, std::fabs(w[size_t(row * s.k + c)]));
          qmax = std::max(qmax, std::abs(int(r.q[size_t(row * s.k + c)])));
        }
        // max|w| / 127 rounded to f16 (times 2^8), which moves it by at most 2^-11 of itself.
        const float scale = kernels::quant_scale_value(r.scales[size_t(row * groups + g)]);
        EXPECT_EQ(scale, kernels::quant_scale_value(kernels::quant_scale_round(amax / 127.0f)))
            << "row " << row << " group " << g;
        EXPECT_NEAR(scale, amax / 127.0f, amax / 127.0f / 2048) << "row " << row << " group " << g;
        EXPECT_EQ(qmax, 127) << "the largest value of a group maps to ±127";
        for (int64_t c = g * s.group; c < std::min(s.k, (g + 1) * s.group); ++c) {
          const size_t i = size_t(row * s.k + c);
          EXPECT_LE(std::fabs(r.back[i] - w[i]), 0.5f * scale * (1 + 1e-5f)) << "element " << i;
        }
      }
  }
}

TEST(Quantize, RoundsHalfToEvenAndKeepsZeroGroups) {
  // Row 0: max 127 gives scale 1, so w / scale is w itself: 2.5 -> 2, -2.5 -> -2, 1.5 -> 2,
  // 0.5 -> 0. Row 1: -127 -> -127. Row 2: all zero.
  const std::vector<float> w = {127.f, 2.5f, -2.5f, 1.5f, 0.5f, -127.f, 3.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  const Quantized r = round_trip(w, 3, 5, 5);
  EXPECT_EQ(kernels::quant_scale_value(r.scales[0]), 1.0f);
  EXPECT_EQ(kernels::quant_scale_value(r.scales[1]), 1.0f);
  EXPECT_EQ(r.q, (std::vector<int8_t>{127, 2, -2, 2, 0, -127, 3, 0, 0, 0, 0, 0, 0, 0, 0}));
  // An all-zero group: scale 0, values 0, no NaN.
  EXPECT_EQ(kernels::quant_scale_value(r.scales[2]), 0.0f);
  for (float v : r.back) EXPECT_FALSE(std::isnan(v));
  for (int i = 10; i < 15; ++i) EXPECT_EQ(r.back[size_t(i)], 0.f);
}

TEST(Quantize, Int8MatmulEqualsFloatMatmulOnDequantizedWeights) {
  struct Shape { int m, n, k, group; };
  for (Shape s : {Shape{1, 33, 256, 128}, Shape{5, 17, 176, 128}, Shape{3, 8, 64, 64}, Shape{2, 12, 100, 32}}) {
    const auto w = test::random_floats(size_t(s.n) * s.k, 5);
    const auto x = test::random_floats(size_t(s.m) * s.k, 6);
    const Quantized r = round_trip(w, s.n, s.k, s.group);
    std::vector<float> got(size_t(s.m) * s.n), want(size_t(s.m) * s.n);
    kernels::matmul_int8_cpu(got.data(), x.data(), r.q.data(), r.scales.data(), s.m, s.n, s.k, s.group);
    kernels::matmul_cpu(want.data(), x.data(), r.back.data(), s.m, s.n, s.k);
    EXPECT_LT(test::rel_error(got.data(), want.data(), got.size()), 1e-5) << s.m << "x" << s.n << "x" << s.k;
  }
}

TEST(Quantize, CpuBackendStoresInt8AndSizesAgreeWithThePlanFormula) {
  auto backend = make_cpu_backend();
  const auto w = test::random_floats(40 * 176, 8);
  Tensor host = Tensor::from_floats(w, {40, 176});
  for (QuantSpec spec : {QuantSpec::none(), QuantSpec::int8_groups(128), QuantSpec::int8_groups(0),
                         QuantSpec::int8_groups(64)}) {
    LinearWeight lw = backend->upload_linear(host, spec);
    EXPECT_EQ(lw.quantized(), spec.int8) << spec.describe();
    EXPECT_EQ(lw.nbytes(), linear_weight_bytes(40, 176, DType::F32, spec)) << spec.describe();
    if (spec.int8) {
      EXPECT_EQ(lw.dtype(), DType::I8);
      EXPECT_EQ(lw.group, spec.group == 0 ? 176 : spec.group);
      EXPECT_EQ(lw.scales.dim(1), quant_groups(176, lw.group));
    }
    // The product through the backend agrees with the float one to int8 accuracy.
    const auto x = test::random_floats(3 * 176, 9);
    Tensor xs = Tensor::from_floats(x, {3, 176}), out = Tensor::empty({3, 40}, DType::F32);
    backend->linear(out, xs, lw);
    std::vector<float> want(3 * 40);
    kernels::matmul_cpu(want.data(), x.data(), w.data(), 3, 40, 176);
    EXPECT_LT(test::rel_error(out.data<float>(), want.data(), want.size()), spec.int8 ? 1e-2 : 1e-6) << spec.describe();
  }
}

}  // namespace
}  // namespace llama_tp

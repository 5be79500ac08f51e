// kernels/rope_sincos.h (the q/k/v GEMV's RoPE sin and cos) against double sin and cos, on the
// angles RoPE makes: positions up to where its range ends, for the inv_freq tables of head_dim 64
// and 128 at theta 1e4 and 5e5, and random angles across the range.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "kernels/rope_sincos.h"

namespace llama_tp {
namespace {

using kernels::rope_sincos;

double error_at(float a) {
  float s, c;
  rope_sincos(a, s, c);
  return std::max(std::fabs(s - std::sin(double(a))), std::fabs(c - std::cos(double(a))));
}

TEST(RopeSincos, WithinSincosfsErrorOnRopeAngles) {
  double worst = 0;
  float worst_at = 0;
  for (int head_dim : {64, 128})
    for (double theta : {1e4, 5e5})
      for (int i = 0; i < head_dim / 2; ++i) {
        const float inv_freq = float(std::pow(theta, -2.0 * i / head_dim));
        for (int pos = 0; pos < 140000; pos += pos < 20000 ? 1 : 7) {
          const float a = float(pos) * inv_freq;
          if (!kernels::rope_sincos_in_range(a)) continue;
          const double e = error_at(a);
          if (e > worst) worst = e, worst_at = a;
        }
      }
  // 2 ulp of 1 (sincosf's documented bound) is 2.4e-7; measured 7.1e-8.
  EXPECT_LT(worst, 1.2e-7) << "at " << worst_at;
}

TEST(RopeSincos, RandomAnglesAcrossTheRange) {
  std::mt19937 rng(20);
  std::uniform_real_distribution<float> angle(-kernels::kRopeSincosMax, kernels::kRopeSincosMax);
  double worst = 0;
  for (int n = 0; n < 200000; ++n) worst = std::max(worst, error_at(angle(rng)));
  EXPECT_LT(worst, 1.2e-7);
}

TEST(RopeSincos, RangeEndsBeforeTheReductionLosesBits) {
  EXPECT_TRUE(kernels::rope_sincos_in_range(kernels::kRopeSincosMax));
  EXPECT_FALSE(kernels::rope_sincos_in_range(std::nextafter(kernels::kRopeSincosMax, 1e6f)));
  EXPECT_FALSE(kernels::rope_sincos_in_range(NAN));
  EXPECT_FALSE(kernels::rope_sincos_in_range(INFINITY));
}

}  // namespace
}  // namespace llama_tp

#pragma once
// sin and cos of a RoPE angle (pos * inv_freq), short enough to sit inline in a GEMV's epilogue
// (kernels/gemv.cu): sincosf's slow-path range reduction is large code (and a stack) that the
// GEMV's loop carried at both of its sum sites. Cody-Waite reduction by pi/2 in three fma steps
// (hi = pi/2 in f32, mid and lo the rest), exact enough up to |a| = 105615 as sincosf's own fast
// path; cephes' sinf and cosf polynomials on |r| <= pi/4. Within 7.2e-8 of double sin and cos
// (sincosf: 2 ulp) over RoPE tables (tests/kernels/test_rope_sincos.cpp). Angles past the range
// (and NaN) are the caller's to send to sincosf.
#include <cmath>

#if defined(__CUDACC__)
#define LLAMA_TP_HD __host__ __device__ __forceinline__
#else
#define LLAMA_TP_HD inline
#endif

namespace llama_tp::kernels {

constexpr float kRopeSincosMax = 105615.f;

LLAMA_TP_HD bool rope_sincos_in_range(float a) { return std::fabs(a) <= kRopeSincosMax; }  // false for NaN

LLAMA_TP_HD void rope_sincos(float a, float& s, float& c) {
  const float j = std::rint(a * 0.636619772f);  // the nearest multiple of pi/2
  float r = std::fma(j, -1.570796371e+00f, a);
  r = std::fma(j, 4.371138829e-08f, r);
  r = std::fma(j, 1.715099417e-15f, r);
  const float r2 = r * r;
  float ps = std::fma(r2, -1.9515295891e-4f, 8.3321608736e-3f);
  ps = std::fma(ps, r2, -1.6666654611e-1f);
  const float sn = std::fma(ps * r2, r, r);
  float pc = std::fma(r2, 2.443315711809948e-5f, -1.388731625493765e-3f);
  pc = std::fma(pc, r2, 4.166664568298827e-2f);
  pc = std::fma(pc, r2, -0.5f);
  const float cs = std::fma(pc, r2, 1.0f);
  const int q = int(j) & 3;  // the quadrant
  s = q == 0 ? sn : q == 1 ? cs : q == 2 ? -sn : -cs;
  c = q == 0 ? cs : q == 1 ? -sn : q == 2 ? -cs : sn;
}

}  // namespace llama_tp::kernels

#undef LLAMA_TP_HD

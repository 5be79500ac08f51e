#pragma once
// The values of dummy weights (runtime/dummy_weights.h), as one formula that the CPU and the
// GPU evaluate to the same bits: a hash of the element's place in its whole tensor mapped to a
// uniform value in center ± half_width (never exactly `center`: no zeros in a matrix).
#include <cstdint>

#ifdef __CUDACC__
#define LLAMA_TP_HOST_DEVICE __host__ __device__
#else
#define LLAMA_TP_HOST_DEVICE
#endif

namespace llama_tp::kernels {

struct DummyFill {
  uint64_t base = 0;      // the tensor's hash (name and seed)
  int64_t cols = 0;       // columns of the whole tensor (the hash counts row-major elements)
  int64_t row0 = 0, col0 = 0;  // where the block starts in it
  float center = 0.f, half_width = 0.f;
};

// splitmix64: a good 64-bit mix for counter-based random numbers.
LLAMA_TP_HOST_DEVICE inline uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Element (r, j) of the block.
LLAMA_TP_HOST_DEVICE inline float dummy_value(const DummyFill& f, int64_t r, int64_t j) {
  const uint64_t bits = splitmix64(f.base + uint64_t((f.row0 + r) * f.cols + f.col0 + j));
  // (k + 0.5) / 2^24 is never exactly 1/2.
  const float u = (float(bits >> 40) + 0.5f) * (1.0f / 16777216.0f);
#ifdef __CUDA_ARCH__
  // Rounded operations, never fused into an FMA, as the host computes them.
  return __fadd_rn(f.center, __fmul_rn(__fsub_rn(__fmul_rn(2.0f, u), 1.0f), f.half_width));
#else
  return f.center + (2.0f * u - 1.0f) * f.half_width;
#endif
}

}  // namespace llama_tp::kernels

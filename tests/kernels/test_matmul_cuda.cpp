// CUDA linear layers against the float32 CPU matmul: the batch-1 GEMV kernel (16-byte and
// scalar paths) and cuBLAS, for f32, bf16 and f16 weights, and the two against each other.
#ifdef LLAMA_TP_CUDA
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "kernels/matmul.h"
#include "kernels/gemv_cuda.h"
#include "kernels/matmul_cuda.h"
#include "kernels/swiglu.h"
#include "runtime/backend_cuda.h"
#include "test_util.h"

namespace llama_tp {
namespace {

using Algo = CudaBackend::LinearAlgo;
using test::random_floats;
using test::fresh_seed;
using test::rounded;
using test::rel_error;

// ‖Δ‖/‖ref‖ allowed for products with this weight dtype (cuBLAS also rounds x to it).
double tolerance(DType dt) { return dt == DType::F32 ? 1e-5 : dt == DType::BF16 ? 1e-2 : 3e-3; }

// ‖got - want‖ / ‖want‖ over n outputs, with ‖want‖ floored at a third of its typical size
// (typical_square: the expected want[i]²): a few outputs whose terms happen to cancel are small
// against their rounding. (Seen on an H200 with a floor of a tenth: the f16 GEMV case once in
// session 20; the f32 SwiGLU case of one output from 8 columns in session 21, 2.5e-5 against
// 2e-5; cuBLAS's bf16 product of 3 rows of 8200 in session 24, 1.24e-2 against 1e-2. A wrong
// row or dtype is off by the order of the outputs themselves.)
double floored_error(const std::vector<float>& got, const std::vector<float>& want, size_t n,
                     double typical_square) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  return std::sqrt(num / std::max(den, double(n) * typical_square / 9.0));
}

// For n dot products of k values uniform in [-1, 1]: each term has variance 1/9.
double dot_error(const std::vector<float>& got, const std::vector<float>& want, int n, int k) {
  return floored_error(got, want, size_t(n), k / 9.0);
}

// For n SwiGLU outputs silu(g) * u of such dot products (g, u ~ N(0, k/9), silu(g)² ~ g²/2 on
// average): want² ~ (k/9)² / 2.
double swiglu_error(const std::vector<float>& got, const std::vector<float>& want, size_t n, int k) {
  return floored_error(got, want, n, double(k) * k / 162.0);
}

class CudaLinear : public ::testing::TestWithParam<DType> {
 protected:
  // out = x[m, k] · w[n, k]ᵀ with the given kernel; x may be a view at row `first` of a larger
  // tensor (to exercise unaligned pointers).
  std::vector<float> run(CudaBackend& be, const std::vector<float>& x, const Tensor& w, int m, int n, int k,
                         Algo algo, int first = 0) {
    std::vector<float> padded(size_t(first + m) * k, 0.f);
    std::copy(x.begin(), x.end(), padded.begin() + size_t(first) * k);
    Tensor xs = Tensor::from_floats(padded, {first + m, k}).to(Device::CUDA);
    Tensor out = be.alloc({m, n}, DType::F32);
    EXPECT_EQ(cudaMemset(out.raw(), 0xff, out.nbytes()), cudaSuccess);  // NaN
    be.linear_with(out, xs.rows(first, m), w, algo);
    return out.to_floats();
  }
};

TEST_P(CudaLinear, GemvMatchesCpuAndCublas) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU";
  const DType dt = GetParam();
  CudaBackend be(dt, 0);
  struct Shape { int n, k, first; };
  // k = 77 (and 4100 for 2-byte weights) is not a multiple of the 16-byte vector width: the
  // scalar path. first = 1 takes x from a row view inside a larger tensor.
  for (Shape s : {Shape{1, 1, 0}, Shape{37, 77, 1}, Shape{1000, 4096, 0}, Shape{333, 1032, 1}, Shape{130, 4100, 1},
                  Shape{128256, 64, 0}, Shape{64, 14336, 0}, Shape{768, 4096, 0}, Shape{3, 8200, 1}}) {
    const auto x = random_floats(s.k, fresh_seed());
    const auto w = random_floats(size_t(s.n) * s.k, fresh_seed());
    Tensor w_dev = be.upload_weight(Tensor::from_floats(w, {s.n, s.k}));
    const auto gemv = run(be, x, w_dev, 1, s.n, s.k, Algo::Gemv, s.first);
    const auto cublas = run(be, x, w_dev, 1, s.n, s.k, Algo::Cublas, s.first);
    std::vector<float> ref(s.n), ref_w(s.n);
    kernels::matmul_cpu(ref.data(), x.data(), w.data(), 1, s.n, s.k);
    const auto w_r = rounded(w, dt);
    kernels::matmul_cpu(ref_w.data(), x.data(), w_r.data(), 1, s.n, s.k);
    const std::string at = std::to_string(s.n) + "x" + std::to_string(s.k);
    // The GEMV keeps x in f32, so against the CPU on the same rounded weights only the order of
    // the fp32 sums differs.
    EXPECT_LT(dot_error(gemv, ref_w, s.n, s.k), 2e-5) << at;
    EXPECT_LT(dot_error(gemv, ref, s.n, s.k), tolerance(dt)) << at;
    EXPECT_LT(dot_error(cublas, ref, s.n, s.k), tolerance(dt)) << at;
    EXPECT_LT(dot_error(gemv, cublas, s.n, s.k), tolerance(dt)) << at;
  }
}

// Every split of a row over warps (the automatic choice takes one per shape) gives the same
// products, including rows that end in the middle of a round of loads.
TEST_P(CudaLinear, GemvEveryWarpsPerRow) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU";
  const DType dt = GetParam();
  CudaBackend be(dt, 0);
  struct Shape { int n, k; };
  for (Shape s : {Shape{1, 8}, Shape{17, 4096}, Shape{9, 14336}, Shape{100, 2056}, Shape{5, 77}, Shape{2, 65536}}) {
    const auto x = random_floats(s.k, fresh_seed());
    const auto w = random_floats(size_t(s.n) * s.k, fresh_seed());
    Tensor w_dev = be.upload_weight(Tensor::from_floats(w, {s.n, s.k}));
    Tensor x_dev = Tensor::from_floats(x, {1, s.k}).to(Device::CUDA);
    std::vector<float> ref(s.n);
    const auto w_r = rounded(w, dt);
    // Double accumulation: at k = 65536 a float32 reference is itself off by ~1e-4.
    for (int r = 0; r < s.n; ++r) {
      double acc = 0;
      for (int j = 0; j < s.k; ++j) acc += double(x[j]) * w_r[size_t(r) * s.k + j];
      ref[r] = float(acc);
    }
    for (int wpr : {1, 2, 4, 8, 16}) {
      Tensor out = be.alloc({1, s.n}, DType::F32);
      ASSERT_EQ(cudaMemset(out.raw(), 0xff, out.nbytes()), cudaSuccess);
      kernels::gemv_cuda(out.data<float>(), x_dev.data<float>(), w_dev.raw(), dt, s.n, s.k,
                         static_cast<cudaStream_t>(be.stream()), wpr);
      const auto got = out.to_floats();
      EXPECT_LT(dot_error(got, ref, s.n, s.k), 2e-5) << s.n << "x" << s.k << ", " << wpr << " warps per row";
    }
    const int chosen = kernels::gemv_warps_per_row(s.n, s.k, dt);
    EXPECT_TRUE(chosen == 1 || chosen == 2 || chosen == 4 || chosen == 8 || chosen == 16) << chosen;
  }
}

// The gate/up GEMV fused with SwiGLU against the CPU's matmul then swiglu on the same weights,
// every split over warps, and the Backend op for one token and (through cuBLAS) for several.
TEST_P(CudaLinear, GemvSwigluMatchesLinearThenSwiglu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU";
  const DType dt = GetParam();
  CudaBackend be(dt, 0);
  struct Shape { int ffn, k, m; };
  for (Shape s : {Shape{1, 8, 1}, Shape{7, 77, 1}, Shape{1000, 4096, 1}, Shape{40, 8192, 1}, Shape{300, 2056, 3}}) {
    const auto x = random_floats(size_t(s.m) * s.k, fresh_seed());
    const auto w = random_floats(size_t(2 * s.ffn) * s.k, fresh_seed());
    Tensor w_dev = be.upload_weight(Tensor::from_floats(w, {2 * s.ffn, s.k}));
    Tensor x_dev = Tensor::from_floats(x, {s.m, s.k}).to(Device::CUDA);
    std::vector<float> gate_up(size_t(s.m) * 2 * s.ffn), ref(size_t(s.m) * s.ffn);
    const auto w_r = rounded(w, dt);
    kernels::matmul_cpu(gate_up.data(), x.data(), w_r.data(), s.m, 2 * s.ffn, s.k);
    kernels::swiglu_cpu(ref.data(), gate_up.data(), s.m, s.ffn);
    const std::string at = std::to_string(s.m) + "x" + std::to_string(s.ffn) + "x" + std::to_string(s.k);
    Tensor out = be.alloc({s.m, s.ffn}, DType::F32), scratch = be.alloc({s.m, 2 * s.ffn}, DType::F32);
    ASSERT_EQ(cudaMemset(out.raw(), 0xff, out.nbytes()), cudaSuccess);
    be.linear_swiglu(out, scratch, x_dev, w_dev);
    auto got = out.to_floats();
    // cuBLAS (m > 1) rounds x to the weight dtype.
    EXPECT_LT(swiglu_error(got, ref, ref.size(), s.k), s.m == 1 ? 2e-5 : tolerance(dt)) << at;
    if (s.m != 1) continue;
    for (int wpr : {1, 2, 4, 8, 16}) {
      ASSERT_EQ(cudaMemset(out.raw(), 0xff, out.nbytes()), cudaSuccess);
      kernels::gemv_swiglu_cuda(out.data<float>(), x_dev.data<float>(), w_dev.raw(), dt, s.ffn, s.k,
                                static_cast<cudaStream_t>(be.stream()), wpr);
      got = out.to_floats();
      EXPECT_LT(swiglu_error(got, ref, ref.size(), s.k), 2e-5) << at << ", " << wpr << " warps per row";
    }
  }
}

TEST_P(CudaLinear, CublasManyTokens) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU";
  const DType dt = GetParam();
  CudaBackend be(dt, 0);
  struct Shape { int m, n, k, first; };
  for (Shape s : {Shape{2, 33, 65, 0}, Shape{17, 1000, 257, 3}, Shape{4097, 64, 96, 0}, Shape{130, 1024, 1024, 0},
                  Shape{3, 5, 1, 0}}) {
    const auto x = random_floats(size_t(s.m) * s.k, fresh_seed());
    const auto w = random_floats(size_t(s.n) * s.k, fresh_seed());
    Tensor w_dev = be.upload_weight(Tensor::from_floats(w, {s.n, s.k}));
    const auto got = run(be, x, w_dev, s.m, s.n, s.k, Algo::Auto, s.first);
    std::vector<float> ref(size_t(s.m) * s.n);
    kernels::matmul_cpu(ref.data(), x.data(), w.data(), s.m, s.n, s.k);
    EXPECT_LT(rel_error(got.data(), ref.data(), ref.size()), tolerance(dt)) << s.m << "x" << s.n << "x" << s.k;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaLinear, ::testing::Values(DType::F32, DType::BF16, DType::F16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace llama_tp
#endif  // LLAMA_TP_CUDA

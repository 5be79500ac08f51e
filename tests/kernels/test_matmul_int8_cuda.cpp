// CUDA int8 weight-only path against the CPU reference: quantization on the GPU (the same bytes
// as the CPU's), the int8 GEMV (16-byte and scalar paths), and dequantized tiles + cuBLAS for
// prompts, through CudaBackend::upload_linear / linear_with. Skips without a GPU.
#ifdef LLAMA_TP_CUDA
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "kernels/gemv_cuda.h"
#include "kernels/matmul.h"
#include "kernels/matmul_int8.h"
#include "kernels/quantize.h"
#include "runtime/backend_cuda.h"
#include "test_util.h"

namespace llama_tp {
namespace {

using Algo = CudaBackend::LinearAlgo;
using test::random_floats;
using test::fresh_seed;
using test::rounded;
using test::rel_error;

Tensor host_in(const std::vector<float>& v, int64_t n, int64_t k, DType dt) {
  Tensor t = Tensor::empty({n, k}, dt);
  convert_from_f32(v.data(), dt, t.raw(), v.size());
  return t;
}

template <typename T>
std::vector<T> to_host(const Tensor& t) {
  std::vector<T> out(size_t(t.numel()));
  copy_bytes(out.data(), Device::CPU, t.raw(), t.device(), t.nbytes());
  return out;
}

struct Shape {
  int n, k, group, first;
};
// Whole groups; k = 176 (a last group of 48 with group 128); per row (group 0); k = 77 and
// group 24 (not multiples of 16: the scalar path); first = 1: x a row view inside a larger
// tensor; a wide vocab slice; a long row; k = 352, whose last 64 columns are half past the end
// (a shape that once broke a per-64-column form of the integer GEMV); k = 8192 between two of
// 14336: one kernel asked for two shared-memory sizes above 48 KiB, the larger one again after
// (its opt-in must not shrink to the smaller one); k = 28672 (Llama-3-70B's down projection at
// tp 1), too long for x as floats in shared memory, not for its 16-bit planes. Groups of 256 and
// 512 (k = 1200: a last group of 176) take the GEMV's shared scales like 128 (shared_scale), 64
// and 16 a scale a chunk.
const Shape kShapes[] = {{1, 16, 16, 0},   {37, 176, 128, 0},  {1000, 4096, 128, 0}, {333, 1024, 0, 1},
                         {130, 77, 128, 1}, {64, 96, 24, 0},    {128256, 64, 128, 0}, {64, 14336, 128, 0},
                         {257, 2048, 64, 1}, {19, 352, 128, 0}, {33, 8192, 128, 0},   {31, 14336, 128, 1},
                         {21, 28672, 128, 1}, {45, 1200, 256, 0}, {29, 2560, 512, 1}};

class CudaInt8 : public ::testing::TestWithParam<DType> {};

TEST_P(CudaInt8, QuantizesLikeTheCpuAndGemvMatchesTheReference) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU";
  const DType dt = GetParam();  // the checkpoint's dtype, which is also the compute dtype here
  CudaBackend be(dt, 0);
  for (const Shape& s : kShapes) {
    const std::string at = std::to_string(s.n) + "x" + std::to_string(s.k) + " group " + std::to_string(s.group);
    const auto w = rounded(random_floats(size_t(s.n) * s.k, fresh_seed()), dt);
    const QuantSpec spec = QuantSpec::int8_groups(s.group);
    LinearWeight lw = be.upload_linear(host_in(w, s.n, s.k, dt), spec);
    const int64_t group = spec.group_for(s.k), groups = quant_groups(s.k, group);
    ASSERT_TRUE(lw.quantized()) << at;
    ASSERT_EQ(lw.group, group) << at;

    // Same bytes as the CPU reference (both round the scale to f16 and divide by it, round half to even).
    std::vector<int8_t> q_ref(size_t(s.n) * s.k);
    std::vector<kernels::QuantScale> s_ref(size_t(s.n * groups));
    kernels::quantize_int8_cpu(q_ref.data(), s_ref.data(), w.data(), s.n, s.k, group);
    EXPECT_EQ(to_host<int8_t>(lw.values), q_ref) << at;
    EXPECT_EQ(to_host<kernels::QuantScale>(lw.scales), s_ref) << at;

    // GEMV and the dequantize + cuBLAS path on one token, against the CPU int8 product.
    const auto x = random_floats(s.k, fresh_seed());
    std::vector<float> padded(size_t(s.first + 1) * s.k, 0.f);
    std::copy(x.begin(), x.end(), padded.begin() + size_t(s.first) * s.k);
    Tensor xs = Tensor::from_floats(padded, {s.first + 1, s.k}).to(Device::CUDA);
    std::vector<float> ref(s.n);
    kernels::matmul_int8_cpu(ref.data(), x.data(), q_ref.data(), s_ref.data(), 1, s.n, s.k, int(group));
    // Rounding errors are bounded by sum_k |w_k x_k|, not by the dot, which may cancel to near 0
    // (one output of 16 terms made this test fail now and then when held to the dot).
    std::vector<double> bound(size_t(s.n), 0.0);
    for (int r = 0; r < s.n; ++r)
      for (int c = 0; c < s.k; ++c)
        bound[size_t(r)] += std::fabs(double(q_ref[size_t(r) * s.k + c]) * kernels::quant_scale_value(s_ref[size_t(r) * groups + c / group]) * x[size_t(c)]);
    for (Algo algo : {Algo::Gemv, Algo::Cublas}) {
      Tensor out = be.alloc({1, s.n}, DType::F32);
      ASSERT_EQ(cudaMemset(out.raw(), 0xff, out.nbytes()), cudaSuccess);  // NaN
      be.linear_with(out, xs.rows(s.first, 1), lw, algo);
      const auto got = out.to_floats();
      double worst = 0.0;
      for (int r = 0; r < s.n; ++r) {
        const double err = std::fabs(double(got[size_t(r)]) - ref[size_t(r)]) / std::max(bound[size_t(r)], 1e-30);
        worst = std::isnan(err) ? INFINITY : std::max(worst, err);
      }
      // The GEMV keeps x in f32, or as 16-bit integers per 16 columns (each off by at most 2^-16 of
      // the largest of its 16: a few 1e-6 of this bound, which sums |w x|). cuBLAS multiplies x
      // and the dequantized weights rounded to the compute dtype.
      const double tol = algo == Algo::Gemv ? 2e-5 : dt == DType::F32 ? 1e-5 : dt == DType::BF16 ? 1e-2 : 3e-3;
      EXPECT_LT(worst, tol) << at << (algo == Algo::Gemv ? " gemv" : " cublas");
    }
  }
}

// The integer GEMV (kernels/gemv.cu) takes x as 16-bit integers with a scale per 16 columns:
// inputs far outside f16's range (1e-6, 3e5, and one row mixing 1e5 with 1e-3) and every number
// of warps per row pair keep that precision. For x uniform in [-1, 1] the rounding (a uniform
// error of up to 2^-16 of a segment's largest) leaves 1.4e-5 of the result's norm; 3e-5 holds it
// with room and still catches any wrong scale or column. n = 515: a last pair of one row.
TEST_P(CudaInt8, GemvKeepsPrecisionAtAnyInputScale) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU";
  const DType dt = GetParam();
  CudaBackend be(dt, 0);
  const int n = 515, k = 2048, group = 128;
  const auto w = rounded(random_floats(size_t(n) * k, fresh_seed()), dt);
  LinearWeight lw = be.upload_linear(host_in(w, n, k, dt), QuantSpec::int8_groups(group));
  std::vector<int8_t> q(size_t(n) * k);
  std::vector<kernels::QuantScale> scales(size_t(n) * (k / group));
  kernels::quantize_int8_cpu(q.data(), scales.data(), w.data(), n, k, group);
  auto mixed = random_floats(k, fresh_seed());
  for (int i = 0; i < k; ++i) mixed[size_t(i)] *= i % 7 == 0 ? 1e5f : 1e-3f;
  for (float scale : {1e-6f, 1.f, 3e5f, 0.f}) {
    auto x = random_floats(k, fresh_seed());
    for (float& v : x) v *= scale;
    if (scale == 0.f) x = mixed;
    std::vector<float> ref(n);
    kernels::matmul_int8_cpu(ref.data(), x.data(), q.data(), scales.data(), 1, n, k, group);
    Tensor xd = Tensor::from_floats(x, {1, k}).to(Device::CUDA);
    for (int wpp : {1, 2, 4, 8, 16}) {
      Tensor out = be.alloc({1, n}, DType::F32);
      ASSERT_EQ(cudaMemset(out.raw(), 0xff, out.nbytes()), cudaSuccess);  // NaN
      kernels::GemvInput in;
      in.x = static_cast<const float*>(xd.raw());
      kernels::gemv_cuda(static_cast<float*>(out.raw()), in,
                         kernels::GemvWeight{lw.values.raw(), DType::I8, static_cast<const kernels::QuantScale*>(lw.scales.raw()), group},
                         n, k, kernels::GemvEpilogue::Store, nullptr, static_cast<cudaStream_t>(be.stream()), wpp);
      const auto got = out.to_floats();
      EXPECT_LT(rel_error(got.data(), ref.data(), n), 3e-5) << "x scale " << scale << ", " << wpp << " warps per row pair";
    }
  }
  // A NaN in x reaches every output, as on the float path (rounding x to integers must not hide it).
  auto x = random_floats(k, fresh_seed());
  x[size_t(k / 3)] = NAN;
  Tensor xd = Tensor::from_floats(x, {1, k}).to(Device::CUDA);
  Tensor out = be.alloc({1, n}, DType::F32);
  kernels::GemvInput in;
  in.x = static_cast<const float*>(xd.raw());
  kernels::gemv_cuda(static_cast<float*>(out.raw()), in,
                     kernels::GemvWeight{lw.values.raw(), DType::I8, static_cast<const kernels::QuantScale*>(lw.scales.raw()), group}, n, k,
                     kernels::GemvEpilogue::Store, nullptr, static_cast<cudaStream_t>(be.stream()));
  const auto got = out.to_floats();
  for (int r = 0; r < n; ++r) ASSERT_TRUE(std::isnan(got[size_t(r)])) << "row " << r;
}

TEST_P(CudaInt8, PromptProductsMatchTheReference) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU";
  const DType dt = GetParam();
  CudaBackend be(dt, 0);
  struct Case { int m, n, k, group; };
  // 40000 x 1024 needs more than one 64 MiB dequantization tile in f32 (and bf16: 32768 rows).
  for (Case c : {Case{2, 33, 64, 128}, Case{17, 1000, 256, 128}, Case{130, 1024, 1024, 128}, Case{5, 77, 77, 0},
                 Case{9, 40000, 1024, 128}, Case{3, 5, 1, 128}}) {
    const auto w = rounded(random_floats(size_t(c.n) * c.k, fresh_seed()), dt);
    const auto x = random_floats(size_t(c.m) * c.k, fresh_seed());
    const QuantSpec spec = QuantSpec::int8_groups(c.group);
    LinearWeight lw = be.upload_linear(host_in(w, c.n, c.k, dt), spec);
    const int64_t group = spec.group_for(c.k);
    std::vector<int8_t> q(size_t(c.n) * c.k);
    std::vector<kernels::QuantScale> sc(size_t(c.n * quant_groups(c.k, group)));
    kernels::quantize_int8_cpu(q.data(), sc.data(), w.data(), c.n, c.k, group);
    std::vector<float> ref(size_t(c.m) * c.n);
    kernels::matmul_int8_cpu(ref.data(), x.data(), q.data(), sc.data(), c.m, c.n, c.k, int(group));
    Tensor xs = Tensor::from_floats(x, {c.m, c.k}).to(Device::CUDA);
    Tensor out = be.alloc({c.m, c.n}, DType::F32);
    be.linear(out, xs, lw);  // Auto: m > 1 takes the dequantize + cuBLAS path
    const auto got = out.to_floats();
    const double tol = dt == DType::F32 ? 1e-5 : dt == DType::BF16 ? 1e-2 : 3e-3;
    EXPECT_LT(rel_error(got.data(), ref.data(), ref.size()), tol) << c.m << "x" << c.n << "x" << c.k;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaInt8, ::testing::Values(DType::F32, DType::BF16, DType::F16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace llama_tp
#endif  // LLAMA_TP_CUDA

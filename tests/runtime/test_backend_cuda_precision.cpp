// The CUDA backend's precision options: --precise-activations (prompt products on float32-
// accurate activations) and --kv-dtype (a KV cache dtype other than the compute dtype).
#ifdef LLAMA_TP_CUDA
#include <gtest/gtest.h>

#include <random>
#include <tuple>

#include "kernels/matmul.h"
#include "runtime/backend_cuda.h"
#include "runtime/error.h"
#include "test_util.h"

namespace llama_tp {
namespace {

#define SKIP_WITHOUT_GPU() \
  if (!llama_tp::cuda_available()) GTEST_SKIP() << "no CUDA GPU"

// Weights exactly representable in bf16, so the float32 CPU product is the exact reference.
std::vector<float> bf16_exact(std::vector<float> v) {
  for (float& x : v) x = bf16_to_f32(f32_to_bf16(x));
  return v;
}

double linear_error(bool precise, int m, int n, int k) {
  const uint32_t seed = std::random_device{}();
  std::vector<float> x = test::random_floats(size_t(m) * k, seed), w = bf16_exact(test::random_floats(size_t(n) * k, seed + 1));
  std::vector<float> want(size_t(m) * n);
  kernels::matmul_cpu(want.data(), x.data(), w.data(), m, n, k);
  CudaBackend be(DType::BF16, 0, std::nullopt, precise);
  Tensor wd = be.upload_weight(Tensor::from_floats(w, {n, k}));
  Tensor xd = Tensor::from_floats(x, {m, k}).to(Device::CUDA);
  Tensor out = be.alloc({m, n}, DType::F32);
  be.linear(out, xd, wd);
  be.synchronize();
  std::vector<float> got = out.to_floats();
  return test::rel_error(got.data(), want.data(), got.size());
}

TEST(CudaPrecision, PreciseActivationsMakePromptProductsFloat32Accurate) {
  SKIP_WITHOUT_GPU();
  for (auto [m, n, k] : {std::tuple{17, 131, 257}, std::tuple{300, 96, 1000}}) {
    const double rounded = linear_error(false, m, n, k), precise = linear_error(true, m, n, k);
    EXPECT_LT(precise, 2e-5) << m << "x" << n << "x" << k;
    EXPECT_GT(rounded, 10 * precise) << "activations rounded to bf16 should be visibly less accurate";
  }
}

TEST(CudaPrecision, KvDtypeOption) {
  SKIP_WITHOUT_GPU();
  EXPECT_EQ(CudaBackend(DType::BF16, 0).kv_dtype(), DType::BF16);
  EXPECT_EQ(CudaBackend(DType::BF16, 0, DType::F32).kv_dtype(), DType::F32);
  EXPECT_THROW(CudaBackend(DType::BF16, 0, DType::I8), Error);
}

}  // namespace
}  // namespace llama_tp
#endif

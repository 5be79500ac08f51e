// CUDA KV-cache append and causal GQA attention (prefill and split-K decode) against the CPU
// reference, for f32, bf16 and f16 caches.
#ifdef LLAMA_TP_CUDA
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/attention.h"
#include "runtime/backend_cuda.h"
#include "test_util.h"

namespace llama_tp {
namespace {

using test::random_floats;
using test::rel_error;

uint32_t fresh_seed() { return std::random_device{}(); }
std::vector<float> rounded(const std::vector<float>& v, DType dt) {
  std::vector<uint8_t> buf(v.size() * dtype_size(dt));
  convert_from_f32(v.data(), dt, buf.data(), v.size());
  std::vector<float> out(v.size());
  convert_to_f32(buf.data(), dt, out.data(), v.size());
  return out;
}
double tolerance(DType dt) { return dt == DType::F32 ? 1e-5 : dt == DType::BF16 ? 1e-2 : 3e-3; }

struct Case {
  int n_heads, n_kv_heads, head_dim, n_tokens, pos0, max_seq;
};

// Appends n_tokens rows of random qkv at pos0 to caches whose earlier positions hold random
// values and whose later positions hold NaN (so a read past the causal limit shows), then runs
// attention and compares with the CPU on the cache contents the GPU holds, and (except for the
// large cases) with the CPU in float32 on the unrounded values.
void check(DType dt, Case c, bool compare_unrounded = true) {
  CudaBackend be(dt, 0);
  AttentionShape shape{c.n_heads, c.n_kv_heads, c.head_dim, c.max_seq};
  const int width = shape.qkv_width(), kv_width = c.n_kv_heads * c.head_dim;
  const size_t cache_n = size_t(c.n_kv_heads) * c.max_seq * c.head_dim;
  std::vector<float> k0 = random_floats(cache_n, fresh_seed()), v0 = random_floats(cache_n, fresh_seed());
  for (int h = 0; h < c.n_kv_heads; ++h)
    for (size_t i = (size_t(h) * c.max_seq + c.pos0) * c.head_dim; i < size_t(h + 1) * c.max_seq * c.head_dim; ++i)
      k0[i] = v0[i] = NAN;
  Tensor k_cache = be.upload_weight(Tensor::from_floats(k0, {c.n_kv_heads, c.max_seq, c.head_dim}));
  Tensor v_cache = be.upload_weight(Tensor::from_floats(v0, {c.n_kv_heads, c.max_seq, c.head_dim}));
  ASSERT_EQ(k_cache.dtype(), be.kv_dtype());
  const auto qkv = random_floats(size_t(c.n_tokens) * width, fresh_seed(), -2.f, 2.f);
  Tensor qkv_dev = Tensor::from_floats(qkv, {c.n_tokens, width}).to(Device::CUDA);
  Tensor out = be.alloc({c.n_tokens, c.n_heads * c.head_dim}, DType::F32);
  ASSERT_EQ(cudaMemset(out.raw(), 0xff, out.nbytes()), cudaSuccess);

  be.kv_append(k_cache, v_cache, qkv_dev, shape, c.pos0);
  be.attention(out, qkv_dev, k_cache, v_cache, shape, c.pos0);
  const auto got = out.to_floats();
  const auto k_got = k_cache.to_floats(), v_got = v_cache.to_floats();

  // The cache: appended rows are the rounded k and v; every other position is unchanged.
  std::vector<float> k_want = k0, v_want = v0;
  kernels::kv_write_cpu(k_want.data(), qkv.data() + size_t(c.n_heads) * c.head_dim, c.n_tokens, c.n_kv_heads,
                        c.head_dim, width, c.pos0, c.max_seq);
  kernels::kv_write_cpu(v_want.data(), qkv.data() + size_t(c.n_heads) * c.head_dim + kv_width, c.n_tokens,
                        c.n_kv_heads, c.head_dim, width, c.pos0, c.max_seq);
  k_want = rounded(k_want, dt), v_want = rounded(v_want, dt);
  size_t mismatches = 0;
  for (size_t i = 0; i < cache_n; ++i)
    mismatches += !(k_got[i] == k_want[i] || (std::isnan(k_got[i]) && std::isnan(k_want[i]))) +
                  !(v_got[i] == v_want[i] || (std::isnan(v_got[i]) && std::isnan(v_want[i])));
  EXPECT_EQ(mismatches, 0u);

  std::vector<float> ref(got.size());
  kernels::attention_cpu(ref.data(), qkv.data(), width, k_got.data(), v_got.data(), c.n_tokens, c.n_heads,
                         c.n_kv_heads, c.head_dim, c.pos0, c.max_seq);
  EXPECT_LT(rel_error(got.data(), ref.data(), ref.size()), 2e-5);
  if (compare_unrounded) {
    std::vector<float> k_exact = k0, v_exact = v0;
    kernels::kv_write_cpu(k_exact.data(), qkv.data() + size_t(c.n_heads) * c.head_dim, c.n_tokens, c.n_kv_heads,
                          c.head_dim, width, c.pos0, c.max_seq);
    kernels::kv_write_cpu(v_exact.data(), qkv.data() + size_t(c.n_heads) * c.head_dim + kv_width, c.n_tokens,
                          c.n_kv_heads, c.head_dim, width, c.pos0, c.max_seq);
    kernels::attention_cpu(ref.data(), qkv.data(), width, k_exact.data(), v_exact.data(), c.n_tokens, c.n_heads,
                           c.n_kv_heads, c.head_dim, c.pos0, c.max_seq);
    EXPECT_LT(rel_error(got.data(), ref.data(), ref.size()), tolerance(dt));
  }
}

class CudaAttention : public ::testing::TestWithParam<DType> {};

#define SKIP_WITHOUT_GPU() \
  if (!llama_tp::cuda_available()) GTEST_SKIP() << "no CUDA GPU"

TEST_P(CudaAttention, DecodeOneToken) {
  SKIP_WITHOUT_GPU();
  for (Case c : {Case{4, 4, 64, 1, 0, 16},         // a single key
                 Case{32, 8, 128, 1, 1234, 2048},  // Llama-3-8B heads
                 Case{8, 1, 128, 1, 777, 1000},    // 8 query heads per kv head
                 Case{6, 2, 36, 1, 300, 401},      // head_dim not a multiple of 8: scalar tile loads
                 Case{4, 2, 34, 1, 95, 97}}) {
    SCOPED_TRACE(testing::Message() << c.n_heads << "/" << c.n_kv_heads << " heads, hd " << c.head_dim << ", pos " << c.pos0);
    check(GetParam(), c);
  }
}

TEST_P(CudaAttention, DecodeLongContextSplitsKeys) {
  SKIP_WITHOUT_GPU();
  for (Case c : {Case{8, 2, 128, 1, 4999, 5000}, Case{2, 1, 64, 1, 8191, 8200}, Case{8, 2, 128, 5, 3000, 3100}}) {
    SCOPED_TRACE(testing::Message() << c.n_heads << "/" << c.n_kv_heads << " heads, T " << c.n_tokens << ", pos " << c.pos0);
    check(GetParam(), c);
  }
}

TEST_P(CudaAttention, PrefillCausal) {
  SKIP_WITHOUT_GPU();
  for (Case c : {Case{4, 2, 64, 37, 0, 64}, Case{2, 2, 80, 300, 0, 512}, Case{12, 4, 96, 65, 10, 100},
                 Case{40, 1, 64, 3, 0, 3}, Case{3, 3, 128, 33, 200, 233}}) {
    SCOPED_TRACE(testing::Message() << c.n_heads << "/" << c.n_kv_heads << " heads, T " << c.n_tokens << ", pos " << c.pos0);
    check(GetParam(), c);
  }
}

TEST_P(CudaAttention, PrefillLarge4097Tokens) {
  SKIP_WITHOUT_GPU();
  check(GetParam(), Case{2, 1, 64, 4097, 0, 4097}, /*compare_unrounded=*/false);
}

TEST(CudaAttentionReuse, DecodeStepsAfterPrefill) {
  SKIP_WITHOUT_GPU();
  // One backend through a prefill and several decode steps: the workspace grows and is reused,
  // each step sees the keys appended by the ones before.
  CudaBackend be(DType::BF16, 0);
  AttentionShape shape{8, 2, 64, 600};
  const int width = shape.qkv_width();
  Tensor k_cache = be.alloc({2, 600, 64}, be.kv_dtype()), v_cache = be.alloc({2, 600, 64}, be.kv_dtype());
  std::vector<float> all;
  int pos = 0;
  for (int n : {513, 1, 1, 1, 7, 1}) {
    const auto qkv = random_floats(size_t(n) * width, fresh_seed());
    Tensor qkv_dev = Tensor::from_floats(qkv, {n, width}).to(Device::CUDA);
    Tensor out = be.alloc({n, 8 * 64}, DType::F32);
    be.kv_append(k_cache, v_cache, qkv_dev, shape, pos);
    be.attention(out, qkv_dev, k_cache, v_cache, shape, pos);
    const auto got = out.to_floats(), k = k_cache.to_floats(), v = v_cache.to_floats();
    std::vector<float> ref(got.size());
    kernels::attention_cpu(ref.data(), qkv.data(), width, k.data(), v.data(), n, 8, 2, 64, pos, 600);
    EXPECT_LT(rel_error(got.data(), ref.data(), ref.size()), 2e-5) << "step at " << pos;
    pos += n;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaAttention, ::testing::Values(DType::F32, DType::BF16, DType::F16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace llama_tp
#endif  // LLAMA_TP_CUDA

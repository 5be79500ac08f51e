// CUDA prefill attention (kernels/attention_prefill_cuda.h), both algorithms, against the CPU
// reference for f32, bf16 and f16 caches: awkward token counts and offsets, head_dim 64/128 (and
// others on the cuBLAS path), GQA groups 1 to 8, passes split by a small workspace, and the
// routing through CudaBackend::attention across chunks.
#ifdef LLAMA_TP_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "kernels/attention.h"
#include "kernels/attention_prefill_cuda.h"
#include "runtime/backend_cuda.h"
#include "test_util.h"

namespace llama_tp {
namespace {

using kernels::PrefillAttentionAlgo;
using test::random_floats;
using test::fresh_seed;
using test::rounded;
using test::rel_error;

#define SKIP_WITHOUT_GPU() \
  if (!llama_tp::cuda_available()) GTEST_SKIP() << "no CUDA GPU"

// Against the CPU on the same (rounded) q and caches the GPU reads, only the rounding of the
// probabilities to the cache dtype remains (~2^-9 relative for bf16, 2^-12 for f16).
double tol_same_inputs(DType dt) { return dt == DType::F32 ? 2e-5 : dt == DType::BF16 ? 5e-3 : 1e-3; }
// Against the CPU on the unrounded float32 inputs (as tests/kernels/test_attention_cuda.cpp).
double tol_unrounded(DType dt) { return dt == DType::F32 ? 2e-5 : dt == DType::BF16 ? 1e-2 : 3e-3; }

// Largest relative error of one (token, head) output row: catches a few wrong rows that the
// global norm would average away.
double worst_row_error(const std::vector<float>& got, const std::vector<float>& ref, int head_dim) {
  double worst = 0;
  for (size_t r = 0; r < got.size() / head_dim; ++r)
    worst = std::max(worst, rel_error(got.data() + r * head_dim, ref.data() + r * head_dim, head_dim));
  return worst;
}

struct Cublas {
  cublasHandle_t h = nullptr;
  explicit Cublas(void* stream) {
    EXPECT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    EXPECT_EQ(cublasSetStream(h, static_cast<cudaStream_t>(stream)), CUBLAS_STATUS_SUCCESS);
  }
  ~Cublas() { cublasDestroy(h); }
};

struct DeviceBuffer {
  void* p = nullptr;
  explicit DeviceBuffer(size_t n) {
    if (n) {
      EXPECT_EQ(cudaMalloc(&p, n), cudaSuccess);
    }
  }
  ~DeviceBuffer() { cudaFree(p); }
};

struct Case {
  int n_heads, n_kv_heads, head_dim, n_tokens, pos0;
};

std::string describe(const Case& c) {
  return testing::PrintToString(c.n_heads) + "/" + testing::PrintToString(c.n_kv_heads) + " heads, hd " +
         testing::PrintToString(c.head_dim) + ", T " + testing::PrintToString(c.n_tokens) + ", pos0 " +
         testing::PrintToString(c.pos0);
}

const char* algo_name(PrefillAttentionAlgo a) {
  return a == PrefillAttentionAlgo::Cublas ? "cublas" : a == PrefillAttentionAlgo::Flash ? "flash" : "auto";
}

// Caches hold random values at positions 0 .. pos0+T-1 and NaN after (a read past the last key
// shows); q is the first part of random qkv rows (so its row stride is the fused width). Runs
// each algorithm that applies (Flash only where supported) and compares with the CPU.
// workspace_divisor > 1 gives the cuBLAS path a workspace that fits only part of the tokens.
void check(DType dt, Case c, bool compare_unrounded = true, size_t workspace_divisor = 1) {
  CudaBackend be(dt, 0);
  const int max_seq = c.pos0 + c.n_tokens + 3;
  const int width = (c.n_heads + 2 * c.n_kv_heads) * c.head_dim;
  const size_t cache_n = size_t(c.n_kv_heads) * max_seq * c.head_dim;
  std::vector<float> k0 = random_floats(cache_n, fresh_seed()), v0 = random_floats(cache_n, fresh_seed());
  for (int h = 0; h < c.n_kv_heads; ++h)
    for (int p = c.pos0 + c.n_tokens; p < max_seq; ++p)
      for (int d = 0; d < c.head_dim; ++d) {
        const size_t i = (size_t(h) * max_seq + p) * c.head_dim + d;
        k0[i] = v0[i] = NAN;
      }
  Tensor k_cache = be.upload_weight(Tensor::from_floats(k0, {c.n_kv_heads, max_seq, c.head_dim}));
  Tensor v_cache = be.upload_weight(Tensor::from_floats(v0, {c.n_kv_heads, max_seq, c.head_dim}));
  ASSERT_EQ(k_cache.dtype(), dt);
  const auto qkv = random_floats(size_t(c.n_tokens) * width, fresh_seed(), -2.f, 2.f);
  Tensor qkv_dev = Tensor::from_floats(qkv, {c.n_tokens, width}).to(Device::CUDA);
  Tensor out = be.alloc({c.n_tokens, c.n_heads * c.head_dim}, DType::F32);
  const auto k_dev = k_cache.to_floats(), v_dev = v_cache.to_floats();

  std::vector<float> ref(size_t(c.n_tokens) * c.n_heads * c.head_dim), ref_exact;
  const auto q_rounded = rounded(qkv, dt);
  kernels::attention_cpu(ref.data(), q_rounded.data(), width, k_dev.data(), v_dev.data(), c.n_tokens, c.n_heads,
                         c.n_kv_heads, c.head_dim, c.pos0, max_seq);
  if (compare_unrounded) {
    ref_exact.resize(ref.size());
    kernels::attention_cpu(ref_exact.data(), qkv.data(), width, k0.data(), v0.data(), c.n_tokens, c.n_heads,
                           c.n_kv_heads, c.head_dim, c.pos0, max_seq);
  }

  kernels::AttentionArgs a{};
  a.out = out.data<float>();
  a.q = qkv_dev.data<float>();
  a.q_stride = width;
  a.k_cache = k_cache.raw();
  a.v_cache = v_cache.raw();
  a.cache_dtype = dt;
  a.n_tokens = c.n_tokens, a.n_heads = c.n_heads, a.n_kv_heads = c.n_kv_heads, a.head_dim = c.head_dim;
  a.pos0 = c.pos0;
  a.max_seq = max_seq;
  Cublas cublas(be.stream());

  for (PrefillAttentionAlgo algo : {PrefillAttentionAlgo::Cublas, PrefillAttentionAlgo::Flash}) {
    if (algo == PrefillAttentionAlgo::Flash && !kernels::attention_prefill_flash_supported(a)) continue;
    SCOPED_TRACE(algo_name(algo));
    const size_t full = kernels::attention_prefill_workspace_bytes(a, algo);
    const size_t bytes = workspace_divisor > 1 ? kernels::attention_prefill_workspace_bytes(a, algo, full / workspace_divisor)
                                               : full;
    if (algo == PrefillAttentionAlgo::Flash) {
      EXPECT_EQ(full, 0u);
    }
    DeviceBuffer ws(bytes);
    ASSERT_EQ(cudaMemset(out.raw(), 0xff, out.nbytes()), cudaSuccess);  // NaN where nothing is written
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    kernels::attention_prefill_cuda(a, algo, cublas.h, ws.p, bytes, static_cast<cudaStream_t>(be.stream()));
    be.synchronize();
    ASSERT_EQ(cudaGetLastError(), cudaSuccess);
    const auto got = out.to_floats();
    EXPECT_LT(rel_error(got.data(), ref.data(), ref.size()), tol_same_inputs(dt));
    EXPECT_LT(worst_row_error(got, ref, c.head_dim), 4 * tol_same_inputs(dt));
    if (compare_unrounded) {
      EXPECT_LT(rel_error(got.data(), ref_exact.data(), ref.size()), tol_unrounded(dt));
    }
  }
}

class CudaPrefillAttention : public ::testing::TestWithParam<DType> {};

// Every token count with every offset; head_dim and group size cycle so that each pair of
// them appears twice.
TEST_P(CudaPrefillAttention, TokensOffsetsHeadDimsGroups) {
  SKIP_WITHOUT_GPU();
  const int tokens[] = {2, 17, 300, 1000}, offsets[] = {0, 5, 700}, groups[] = {1, 4, 8};
  int i = 0;
  for (int t : tokens)
    for (int pos0 : offsets) {
      const int hd = i % 2 == 0 ? 128 : 64, group = groups[i % 3], n_kv = group == 8 ? 1 : 2;
      ++i;
      const Case c{group * n_kv, n_kv, hd, t, pos0};
      SCOPED_TRACE(describe(c));
      check(GetParam(), c, /*compare_unrounded=*/t < 1000);
    }
}

TEST_P(CudaPrefillAttention, Llama3HeadsAndOddGroups) {
  SKIP_WITHOUT_GPU();
  for (Case c : {Case{32, 8, 128, 96, 700},  // Llama-3-8B heads
                 Case{6, 2, 64, 77, 33},      // group 3: a block's 64 rows straddle tokens
                 Case{5, 1, 128, 40, 0},      // group 5
                 Case{16, 1, 64, 65, 64}}) {  // group 16, one row past a whole block
    SCOPED_TRACE(describe(c));
    check(GetParam(), c);
  }
}

TEST_P(CudaPrefillAttention, CublasOtherHeadDims) {
  SKIP_WITHOUT_GPU();
  // The flash kernel takes head_dim 64/128 only; the cuBLAS path any (ld not a multiple of 8).
  for (Case c : {Case{4, 2, 80, 45, 10}, Case{6, 2, 36, 30, 3}, Case{3, 3, 96, 19, 0}}) {
    SCOPED_TRACE(describe(c));
    check(GetParam(), c);
  }
}

TEST_P(CudaPrefillAttention, CublasPassesSplitByWorkspace) {
  SKIP_WITHOUT_GPU();
  {
    const Case c{8, 2, 64, 300, 50};  // about 5 passes
    SCOPED_TRACE(describe(c));
    check(GetParam(), c, true, 5);
  }
  {
    const Case c{4, 1, 128, 17, 9};  // one token per pass
    SCOPED_TRACE(describe(c));
    check(GetParam(), c, true, 1000000);
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaPrefillAttention, ::testing::Values(DType::F32, DType::BF16, DType::F16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(CudaPrefillAttentionPlan, WorkspaceIsBounded) {
  SKIP_WITHOUT_GPU();
  // A long prompt's scores do not all fit: the workspace stays under the bound.
  kernels::AttentionArgs a{};
  a.cache_dtype = DType::BF16;
  a.n_tokens = 8192, a.n_heads = 32, a.n_kv_heads = 8, a.head_dim = 128, a.pos0 = 0, a.max_seq = 8192;
  a.q_stride = 48 * 128;
  const size_t ws = kernels::attention_prefill_workspace_bytes(a, PrefillAttentionAlgo::Cublas);
  EXPECT_GT(ws, 0u);
  EXPECT_LE(ws, kernels::kPrefillAttentionMaxWorkspace);
  EXPECT_EQ(kernels::attention_prefill_workspace_bytes(a, PrefillAttentionAlgo::Flash), 0u);
  a.n_tokens = 8;
  EXPECT_FALSE(kernels::attention_prefill_applies(a));
}

// Through the backend, as the model runs a prompt: chunks of tokens (prefill path) then single
// tokens (decode kernel), each seeing the keys the ones before appended.
TEST(CudaPrefillAttentionBackend, ChunksThenDecode) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::BF16, DType::F32}) {
    SCOPED_TRACE(dtype_name(dt));
    CudaBackend be(dt, 0);
    AttentionShape shape{32, 8, 128, 1200};
    const int width = shape.qkv_width();
    Tensor k_cache = be.alloc({8, 1200, 128}, be.kv_dtype()), v_cache = be.alloc({8, 1200, 128}, be.kv_dtype());
    int pos = 0;
    for (int n : {512, 300, 17, 1, 1}) {
      const auto qkv = random_floats(size_t(n) * width, fresh_seed());
      Tensor qkv_dev = Tensor::from_floats(qkv, {n, width}).to(Device::CUDA);
      Tensor out = be.alloc({n, 32 * 128}, DType::F32);
      be.kv_append(k_cache, v_cache, qkv_dev, shape, pos);
      be.attention(out, qkv_dev, k_cache, v_cache, shape, pos);
      const auto got = out.to_floats(), k = k_cache.to_floats(), v = v_cache.to_floats();
      std::vector<float> ref(got.size());
      // The prefill path rounds q to the cache dtype; the decode kernel reads it in float32.
      const auto q = n >= kernels::kPrefillAttentionMinTokens ? rounded(qkv, dt) : qkv;
      kernels::attention_cpu(ref.data(), q.data(), width, k.data(), v.data(), n, 32, 8, 128, pos, 1200);
      EXPECT_LT(rel_error(got.data(), ref.data(), ref.size()), tol_same_inputs(dt)) << "chunk at " << pos;
      pos += n;
    }
  }
}

}  // namespace
}  // namespace llama_tp
#endif  // LLAMA_TP_CUDA

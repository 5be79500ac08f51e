// CUDA KV-cache append and causal GQA attention (prefill and split-K decode) against the CPU
// reference, for f32, bf16 and f16 caches.
#ifdef LLAMA_TP_CUDA
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <utility>

#include "kernels/attention.h"
#include "kernels/attention_cuda.h"
#include "runtime/backend_cuda.h"
#include "test_util.h"

namespace llama_tp {
namespace {

// Against the CPU run on the same (rounded) cache. Decode keeps q and the probabilities in
// float32 (2e-5); prompts of 16+ tokens take the tensor-core path, which rounds q and the
// probabilities to the cache dtype as flash attention does, so 16-bit caches get that dtype's
// rounding error there.
double attention_tolerance(DType cache, int n_tokens) {
  if (n_tokens < 16 || cache == DType::F32) return 2e-5;
  return cache == DType::BF16 ? 5e-3 : 1e-3;
}

using test::random_floats;
using test::fresh_seed;
using test::rounded;
using test::rel_error;

double tolerance(DType dt) { return dt == DType::F32 ? 1e-5 : dt == DType::BF16 ? 1e-2 : 3e-3; }

struct Case {
  int n_heads, n_kv_heads, head_dim, n_tokens, pos0, max_seq;
};

// Appends n_tokens rows of random qkv at pos0 to caches whose earlier positions hold random
// values and whose later positions hold NaN (so a read past the causal limit shows), then runs
// attention and compares with the CPU on the cache contents the GPU holds, and (except for the
// large cases) with the CPU in float32 on the unrounded values. With step_slot (one token) the
// position reaches the kernels through the backend's step slot on the device (kStepPos). With
// unaligned_out the output starts 4 bytes past a 16-byte boundary.
void check(DType dt, Case c, bool compare_unrounded = true, bool step_slot = false, bool unaligned_out = false) {
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
  Tensor out_buf = be.alloc({int64_t(c.n_tokens) * c.n_heads * c.head_dim + 4}, DType::F32);
  Tensor out = Tensor::view(static_cast<float*>(out_buf.raw()) + (unaligned_out ? 1 : 0),
                            {c.n_tokens, c.n_heads * c.head_dim}, DType::F32, Device::CUDA);
  ASSERT_EQ(cudaMemset(out_buf.raw(), 0xff, out_buf.nbytes()), cudaSuccess);

  int pos = c.pos0;
  if (step_slot) {
    be.set_step(0, c.pos0);
    pos = kStepPos;
  }
  be.kv_append(k_cache, v_cache, qkv_dev, shape, pos);
  be.attention(out, qkv_dev, k_cache, v_cache, shape, pos);
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
  EXPECT_LT(rel_error(got.data(), ref.data(), ref.size()), attention_tolerance(dt, c.n_tokens));
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

// check() of one token with the case and the variant in the failure's trace.
void check_decode(DType dt, Case c, bool step_slot, bool unaligned_out = false) {
  SCOPED_TRACE(testing::Message() << c.n_heads << "/" << c.n_kv_heads << " heads, hd " << c.head_dim << ", pos "
                                  << c.pos0 << (step_slot ? ", step slot" : "") << (unaligned_out ? ", unaligned" : ""));
  check(dt, c, true, step_slot, unaligned_out);
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

// The position from the step slot (graph replays): the launch covers the whole cache and blocks
// past the position exit early; the result must not depend on it.
TEST_P(CudaAttention, DecodeFromTheStepSlot) {
  SKIP_WITHOUT_GPU();
  for (Case c : {Case{4, 4, 64, 1, 0, 16}, Case{32, 8, 128, 1, 1234, 2048}, Case{8, 1, 128, 1, 777, 1000},
                 Case{6, 2, 36, 1, 300, 401}, Case{8, 2, 128, 1, 4999, 5000}, Case{2, 1, 64, 1, 10, 8200}}) {
    SCOPED_TRACE(testing::Message() << c.n_heads << "/" << c.n_kv_heads << " heads, hd " << c.head_dim << ", pos " << c.pos0);
    check(GetParam(), c, true, /*step_slot=*/true);
  }
}

// An output that is not 16-byte aligned: the last block of a kv head weighs the splits in shared
// memory before it combines them (the aligned case reads them 4 dims at a time).
TEST_P(CudaAttention, DecodeToAnUnalignedOutput) {
  SKIP_WITHOUT_GPU();
  for (Case c : {Case{32, 8, 128, 1, 1234, 2048}, Case{8, 1, 128, 1, 777, 1000}, Case{6, 2, 36, 1, 300, 401},
                 Case{2, 1, 64, 1, 8191, 8200}}) {
    for (bool step_slot : {false, true}) check_decode(GetParam(), c, step_slot, /*unaligned_out=*/true);
  }
}

// Group sizes that are not powers of two (idle query-head slots), more than 8 query heads per kv
// head (the general kernel), head dims whose rows are not a power-of-two number of 16-byte
// vectors (idle lanes), one or 32 lanes per key, and a cache long enough that blocks take
// several key chunks each.
TEST_P(CudaAttention, DecodeShapes) {
  SKIP_WITHOUT_GPU();
  for (Case c : {Case{3, 1, 64, 1, 500, 600}, Case{10, 2, 64, 1, 300, 301}, Case{7, 7, 128, 1, 129, 200},
                 Case{16, 1, 64, 1, 400, 401}, Case{4, 2, 80, 1, 333, 400}, Case{4, 1, 96, 1, 260, 300},
                 Case{4, 2, 8, 1, 1000, 1001}, Case{4, 2, 16, 1, 127, 128}, Case{2, 1, 256, 1, 640, 700},
                 Case{8, 8, 64, 1, 20000, 20001}}) {
    for (bool step_slot : {false, true}) check_decode(GetParam(), c, step_slot);
  }
}

// Positions where the splits that found keys are few enough to combine within a thread block
// cluster (sm_90: kernels/attention.cu, kDecCluster; elsewhere the count-in), on both sides of
// the cluster's reach (Llama-3-8B heads: 64 keys a split, 4 splits a cluster, 256 keys), with
// group sizes of 3, 4 and 8, head_dim 64, and an unaligned output (the weights in shared memory).
TEST_P(CudaAttention, DecodeSplitsWithinACluster) {
  SKIP_WITHOUT_GPU();
  for (Case c : {Case{32, 8, 128, 1, 64, 300}, Case{32, 8, 128, 1, 127, 300}, Case{32, 8, 128, 1, 200, 300},
                 Case{32, 8, 128, 1, 255, 300}, Case{32, 8, 128, 1, 256, 300}, Case{32, 8, 64, 1, 150, 600},
                 Case{32, 8, 64, 1, 300, 600}, Case{8, 1, 128, 1, 150, 300}, Case{3, 1, 64, 1, 200, 300},
                 Case{6, 2, 128, 1, 190, 200}}) {
    for (int variant = 0; variant < 3; ++variant) check_decode(GetParam(), c, variant >= 1, variant == 2);
  }
}

// The Llama-3-8B decode the model runs (the position on the device, a cache of 8448 rows) takes
// clusters on GPUs that have them, with no fewer than 3 blocks of 4 per kv head; with clusters,
// every one of them is resident at once (32 kv heads, as Llama-2-7B, on an H200: too few splits
// would be left, so no clusters). The plan only reads the pointers' alignment.
TEST(CudaAttentionPlan, Llama3DecodeCombinesInClusters) {
  SKIP_WITHOUT_GPU();
  int major = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0), cudaSuccess);
  auto* fake = reinterpret_cast<float*>(uintptr_t(1) << 20);
  kernels::AttentionArgs a{fake, fake, 6144, fake, fake, DType::BF16, 1, 32, 8, 128, 0, 8448,
                           reinterpret_cast<const int32_t*>(fake), reinterpret_cast<unsigned*>(fake)};
  const kernels::DecodeLaunch l = kernels::attention_decode_launch(a);
  std::printf("Llama-3-8B decode: %d splits, clusters of %d (%d clusters resident at once)\n", l.splits, l.cluster,
              l.resident_clusters);
  EXPECT_GE(l.splits, 12);
  EXPECT_EQ(l.cluster, major >= 9 ? 4 : 1);
  a.n_heads = a.n_kv_heads = 32, a.q_stride = 3 * 32 * 128;
  const kernels::DecodeLaunch mha = kernels::attention_decode_launch(a);
  std::printf("32 kv heads: %d splits, clusters of %d\n", mha.splits, mha.cluster);
  EXPECT_GE(mha.splits, 4);
  for (auto [d, n_kv_heads] : {std::pair{l, 8}, std::pair{mha, 32}})
    if (d.cluster > 1) {
      EXPECT_EQ(d.splits % d.cluster, 0);
      EXPECT_LE(d.splits / d.cluster * n_kv_heads, d.resident_clusters);
    }
}

// Called directly without the split counters (as a kernel benchmark might), a one-token call
// with a host position combines the splits in a second kernel: the same result.
TEST_P(CudaAttention, DecodeWithoutSplitCounters) {
  SKIP_WITHOUT_GPU();
  const DType dt = GetParam();
  CudaBackend be(dt, 0);
  for (Case c : {Case{32, 8, 128, 1, 1234, 2048}, Case{8, 1, 64, 1, 5000, 5001}, Case{4, 2, 64, 1, 3, 10}}) {
    SCOPED_TRACE(testing::Message() << c.n_heads << "/" << c.n_kv_heads << " heads, pos " << c.pos0);
    AttentionShape shape{c.n_heads, c.n_kv_heads, c.head_dim, c.max_seq};
    const size_t cache_n = size_t(c.n_kv_heads) * c.max_seq * c.head_dim;
    Tensor k_cache = be.upload_weight(Tensor::from_floats(random_floats(cache_n, fresh_seed()), {c.n_kv_heads, c.max_seq, c.head_dim}));
    Tensor v_cache = be.upload_weight(Tensor::from_floats(random_floats(cache_n, fresh_seed()), {c.n_kv_heads, c.max_seq, c.head_dim}));
    Tensor qkv = Tensor::from_floats(random_floats(shape.qkv_width(), fresh_seed()), {1, shape.qkv_width()}).to(Device::CUDA);
    Tensor want = be.alloc({1, c.n_heads * c.head_dim}, DType::F32), got = be.alloc({1, c.n_heads * c.head_dim}, DType::F32);
    be.attention(want, qkv, k_cache, v_cache, shape, c.pos0);
    kernels::AttentionArgs a{got.data<float>(), qkv.data<float>(), shape.qkv_width(), k_cache.raw(), v_cache.raw(),
                             k_cache.dtype(), 1, c.n_heads, c.n_kv_heads, c.head_dim, c.pos0, c.max_seq};
    const size_t ws = kernels::attention_workspace_bytes(a);
    Tensor workspace = be.alloc({int64_t(std::max<size_t>(ws, 1))}, DType::I8);
    kernels::attention_cuda(a, workspace.raw(), static_cast<cudaStream_t>(be.stream()));
    const auto g = got.to_floats(), w = want.to_floats();
    EXPECT_LT(rel_error(g.data(), w.data(), w.size()), 1e-6);
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
  for (int n : {513, 1, 1, 1, 7, 1, 1, 1}) {
    const auto qkv = random_floats(size_t(n) * width, fresh_seed());
    Tensor qkv_dev = Tensor::from_floats(qkv, {n, width}).to(Device::CUDA);
    Tensor out = be.alloc({n, 8 * 64}, DType::F32);
    be.kv_append(k_cache, v_cache, qkv_dev, shape, pos);
    be.attention(out, qkv_dev, k_cache, v_cache, shape, pos);
    const auto got = out.to_floats(), k = k_cache.to_floats(), v = v_cache.to_floats();
    std::vector<float> ref(got.size());
    kernels::attention_cpu(ref.data(), qkv.data(), width, k.data(), v.data(), n, 8, 2, 64, pos, 600);
    EXPECT_LT(rel_error(got.data(), ref.data(), ref.size()), attention_tolerance(be.kv_dtype(), n)) << "step at " << pos;
    pos += n;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaAttention, ::testing::Values(DType::F32, DType::BF16, DType::F16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace llama_tp
#endif  // LLAMA_TP_CUDA

// CUDA embedding, rmsnorm (+ fused residual add), rope, swiglu, add, argmax and cast against the
// float32 CPU reference (kernels/*.cpp) on fresh random inputs at awkward sizes.
#ifdef LLAMA_TP_CUDA
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "kernels/argmax.h"
#include "kernels/embedding.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "runtime/backend_cuda.h"
#include "cuda_test_util.h"
#include "test_util.h"

namespace llama_tp {
namespace {

using test::random_floats;
using test::fresh_seed;
using test::rounded;
using test::rel_error;

using test::device_floats;
using test::poisoned;
// Values as the GPU holds them after conversion to dt.
std::string dtype_param_name(const ::testing::TestParamInfo<DType>& info) { return dtype_name(info.param); }
#define SKIP_WITHOUT_GPU() \
  if (!llama_tp::cuda_available()) GTEST_SKIP() << "no CUDA GPU"

class CudaOps : public ::testing::TestWithParam<DType> {};

TEST_P(CudaOps, EmbeddingGathersRows) {
  SKIP_WITHOUT_GPU();
  const DType dt = GetParam();
  CudaBackend be(dt, 0);
  const int vocab = 1001, dim = 333;
  const auto table = random_floats(size_t(vocab) * dim, fresh_seed());
  Tensor table_dev = be.upload_weight(Tensor::from_floats(table, {vocab, dim}));
  for (int n : {1, 17}) {
    std::vector<int32_t> ids(n);
    std::mt19937 rng(fresh_seed());
    for (auto& id : ids) id = int32_t(rng() % vocab);
    ids[0] = vocab - 1;
    Tensor ids_host = Tensor::empty({n}, DType::I32);
    std::copy(ids.begin(), ids.end(), ids_host.data<int32_t>());
    Tensor out = poisoned(be, {n, dim});
    be.embedding(out, table_dev, ids_host.to(Device::CUDA));
    std::vector<float> ref(size_t(n) * dim);
    const auto table_r = rounded(table, dt);
    kernels::embedding_cpu(ref.data(), table_r.data(), ids.data(), n, dim);
    const auto got = out.to_floats();
    EXPECT_EQ(test::max_abs_diff(got.data(), ref.data(), ref.size()), 0.0) << "n=" << n;
  }
}

TEST_P(CudaOps, RmsnormOddDimsAndRows) {
  SKIP_WITHOUT_GPU();
  const DType dt = GetParam();
  CudaBackend be(dt, 0);
  struct Shape { int rows, dim; };
  for (Shape s : {Shape{1, 1}, Shape{3, 7}, Shape{1, 33}, Shape{5, 4095}, Shape{2, 5123}, Shape{130, 4096},
                  Shape{4097, 65}}) {
    const auto x = random_floats(size_t(s.rows) * s.dim, fresh_seed(), -3.f, 3.f);
    const auto w = random_floats(s.dim, fresh_seed(), 0.5f, 1.5f);
    Tensor w_dev = be.upload_weight(Tensor::from_floats(w, {s.dim}));
    Tensor x_dev = device_floats(x, {s.rows, s.dim});
    Tensor out = poisoned(be, {s.rows, s.dim});
    be.rmsnorm(out, x_dev, w_dev, 1e-5f);
    std::vector<float> ref(x.size());
    const auto w_r = rounded(w, dt);
    kernels::rmsnorm_cpu(ref.data(), x.data(), w_r.data(), s.rows, s.dim, 1e-5f);
    auto got = out.to_floats();
    EXPECT_LT(rel_error(got.data(), ref.data(), ref.size()), 1e-5) << s.rows << "x" << s.dim;
    be.rmsnorm(x_dev, x_dev, w_dev, 1e-5f);  // in place
    got = x_dev.to_floats();
    EXPECT_LT(rel_error(got.data(), ref.data(), ref.size()), 1e-5) << "in place " << s.rows << "x" << s.dim;
  }
}

TEST_P(CudaOps, AddRmsnormFusesResidual) {
  SKIP_WITHOUT_GPU();
  const DType dt = GetParam();
  CudaBackend be(dt, 0);
  for (auto [rows, dim] : {std::pair{1, 4096}, std::pair{7, 1001}, std::pair{300, 37}})
    for (bool in_place : {true, false}) {
      const auto x = random_floats(size_t(rows) * dim, fresh_seed(), -2.f, 2.f);
      const auto r = random_floats(x.size(), fresh_seed(), -2.f, 2.f);
      const auto w = random_floats(dim, fresh_seed(), 0.5f, 1.5f);
      Tensor x_dev = device_floats(x, {rows, dim});
      Tensor x_out = in_place ? x_dev : poisoned(be, {rows, dim});
      Tensor out = poisoned(be, {rows, dim});
      be.add_rmsnorm(out, x_out, x_dev, device_floats(r, {rows, dim}), be.upload_weight(Tensor::from_floats(w, {dim})),
                     1e-6f);
      std::vector<float> sum(x.size()), ref(x.size());
      for (size_t i = 0; i < x.size(); ++i) sum[i] = x[i] + r[i];
      const auto w_r = rounded(w, dt);
      kernels::rmsnorm_cpu(ref.data(), sum.data(), w_r.data(), rows, dim, 1e-6f);
      const auto got_x = x_out.to_floats(), got = out.to_floats();
      EXPECT_EQ(test::max_abs_diff(got_x.data(), sum.data(), sum.size()), 0.0);
      EXPECT_LT(rel_error(got.data(), ref.data(), ref.size()), 1e-5) << rows << "x" << dim;
      if (!in_place) EXPECT_EQ(x_dev.to_floats(), x) << "x must stay as it was";
    }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaOps, ::testing::Values(DType::F32, DType::BF16, DType::F16), dtype_param_name);

std::vector<float> hf_inv_freq(int head_dim, double theta) {
  std::vector<float> f(head_dim / 2);
  for (int i = 0; i < head_dim / 2; ++i) f[i] = float(1.0 / std::pow(theta, 2.0 * i / head_dim));
  return f;
}

TEST(CudaRope, RotatesQAndKHeadsOnly) {
  SKIP_WITHOUT_GPU();
  CudaBackend be(DType::BF16, 0);
  struct Case { int n_heads, n_kv_heads, head_dim, n_tokens, pos0; };
  for (Case c : {Case{4, 2, 64, 1, 0}, Case{4, 2, 64, 1, 4999}, Case{3, 1, 128, 37, 100}, Case{8, 8, 96, 4097, 0},
                 Case{5, 5, 2, 3, 7}}) {
    AttentionShape shape{c.n_heads, c.n_kv_heads, c.head_dim, c.pos0 + c.n_tokens};
    const int width = shape.qkv_width();
    const auto qkv = random_floats(size_t(c.n_tokens) * width, fresh_seed());
    const auto inv_freq = hf_inv_freq(c.head_dim, 500000.0);
    Tensor qkv_dev = device_floats(qkv, {c.n_tokens, width});
    // Alternate a device and a host inv_freq table (the host one is cached by the backend).
    Tensor freq = Tensor::from_floats(inv_freq, {c.head_dim / 2});
    be.rope_qk(qkv_dev, shape, c.pos0, c.n_tokens % 2 ? freq.to(Device::CUDA) : freq);
    std::vector<float> ref = qkv;
    std::vector<int32_t> pos(c.n_tokens);
    for (int t = 0; t < c.n_tokens; ++t) pos[t] = c.pos0 + t;
    kernels::rope_cpu(ref.data(), c.n_tokens, c.n_heads, c.head_dim, width, pos.data(), inv_freq.data());
    kernels::rope_cpu(ref.data() + size_t(c.n_heads) * c.head_dim, c.n_tokens, c.n_kv_heads, c.head_dim, width,
                      pos.data(), inv_freq.data());
    const auto got = qkv_dev.to_floats();
    EXPECT_LT(rel_error(got.data(), ref.data(), ref.size()), 1e-5) << c.n_heads << "/" << c.n_kv_heads << " heads, T=" << c.n_tokens;
    // The v part is left alone, bit for bit.
    double v_diff = 0;
    for (int t = 0; t < c.n_tokens; ++t)
      for (int i = (c.n_heads + c.n_kv_heads) * c.head_dim; i < width; ++i)
        v_diff = std::max(v_diff, double(std::fabs(got[size_t(t) * width + i] - qkv[size_t(t) * width + i])));
    EXPECT_EQ(v_diff, 0.0);
  }
}

// The fused kernel against rope_qk followed by kv_append (the composition that is the
// reference), with host positions and with the position from the step slot.
TEST_P(CudaOps, RopeKvAppendMatchesRopeThenAppend) {
  SKIP_WITHOUT_GPU();
  const DType dt = GetParam();
  CudaBackend be(dt, 0);
  struct Case { int n_heads, n_kv_heads, head_dim, n_tokens, pos0, max_seq; };
  for (Case c : {Case{4, 2, 64, 1, 17, 40}, Case{32, 8, 128, 1, 4095, 4096}, Case{3, 1, 128, 37, 100, 200},
                 Case{5, 5, 2, 3, 7, 10}, Case{8, 2, 64, 1, 0, 1}}) {
    for (bool step_slot : {false, true}) {
      if (step_slot && c.n_tokens != 1) continue;
      SCOPED_TRACE(testing::Message() << c.n_heads << "/" << c.n_kv_heads << " heads, T=" << c.n_tokens << ", pos "
                                      << c.pos0 << (step_slot ? ", step slot" : ""));
      AttentionShape shape{c.n_heads, c.n_kv_heads, c.head_dim, c.max_seq};
      const int width = shape.qkv_width();
      const auto qkv = random_floats(size_t(c.n_tokens) * width, fresh_seed());
      const auto cache0 = random_floats(size_t(c.n_kv_heads) * c.max_seq * c.head_dim, fresh_seed());
      Tensor freq = device_floats(hf_inv_freq(c.head_dim, 10000.0), {c.head_dim / 2});
      Tensor qkv_a = device_floats(qkv, {c.n_tokens, width}), qkv_b = device_floats(qkv, {c.n_tokens, width});
      auto cache = [&] { return be.upload_weight(Tensor::from_floats(cache0, {c.n_kv_heads, c.max_seq, c.head_dim})); };
      Tensor ka = cache(), va = cache(), kb = cache(), vb = cache();
      int pos = c.pos0;
      if (step_slot) {
        be.set_step(0, c.pos0);
        pos = kStepPos;
      }
      be.rope_kv_append(qkv_a, ka, va, shape, pos, freq);
      be.rope_qk(qkv_b, shape, pos, freq);
      be.kv_append(kb, vb, qkv_b, shape, pos);
      const auto qa = qkv_a.to_floats(), qb = qkv_b.to_floats();
      EXPECT_LT(rel_error(qa.data(), qb.data(), qa.size()), 1e-6);
      for (auto [x, y] : {std::pair{&ka, &kb}, std::pair{&va, &vb}}) {
        const auto fx = x->to_floats(), fy = y->to_floats();
        EXPECT_LT(rel_error(fx.data(), fy.data(), fx.size()), 1e-5);
      }
    }
  }
}

TEST(CudaSwiglu, MatchesCpu) {
  SKIP_WITHOUT_GPU();
  CudaBackend be(DType::BF16, 0);
  for (auto [n, ffn] : {std::pair{1, 1}, std::pair{1, 14336}, std::pair{5, 37}, std::pair{4097, 100}}) {
    const auto gu = random_floats(size_t(n) * 2 * ffn, fresh_seed(), -6.f, 6.f);
    Tensor out = poisoned(be, {n, ffn});
    be.swiglu(out, device_floats(gu, {n, 2 * ffn}));
    std::vector<float> ref(size_t(n) * ffn);
    kernels::swiglu_cpu(ref.data(), gu.data(), n, ffn);
    const auto got = out.to_floats();
    EXPECT_LT(rel_error(got.data(), ref.data(), ref.size()), 1e-5) << n << "x" << ffn;
  }
}

TEST(CudaAdd, MatchesCpu) {
  SKIP_WITHOUT_GPU();
  CudaBackend be(DType::BF16, 0);
  for (int n : {1, 333, 1000003}) {
    auto x = random_floats(n, fresh_seed());
    const auto y = random_floats(n, fresh_seed());
    Tensor x_dev = device_floats(x, {n});
    be.add(x_dev, device_floats(y, {n}));
    kernels::add_cpu(x.data(), y.data(), n);
    const auto got = x_dev.to_floats();
    EXPECT_EQ(test::max_abs_diff(got.data(), x.data(), x.size()), 0.0) << n;
  }
}

TEST(CudaArgmax, FirstLargestPerRow) {
  SKIP_WITHOUT_GPU();
  CudaBackend be(DType::BF16, 0);
  for (auto [rows, n] : {std::pair{1, 1}, std::pair{2, 31}, std::pair{3, 128257}, std::pair{5, 32000}}) {
    auto x = random_floats(size_t(rows) * n, fresh_seed(), -10.f, 10.f);
    std::mt19937 rng(fresh_seed());
    for (int r = 0; r < rows; ++r) {  // a tie for the maximum in every row: the first one wins
      const int a = int(rng() % n), b = int(rng() % n);
      x[size_t(r) * n + a] = x[size_t(r) * n + b] = 50.f;
    }
    Tensor logits = device_floats(x, {rows, n});
    Tensor ids = poisoned(be, {rows}, DType::I32);
    be.argmax(ids, logits);
    Tensor host = ids.to(Device::CPU);
    for (int r = 0; r < rows; ++r)
      EXPECT_EQ(host.data<int32_t>()[r], kernels::argmax_cpu(x.data() + size_t(r) * n, n)) << "row " << r << " of " << n;
  }
}

// The Backend op: index and value; long rows are split over blocks (the last one reduces), and
// repeated calls find the block counters reset.
TEST(CudaArgmax, IdsAndValuesOfLongRows) {
  SKIP_WITHOUT_GPU();
  CudaBackend be(DType::BF16, 0);
  for (auto [rows, n] : {std::pair{1, 128256}, std::pair{2, 500000}, std::pair{1, 8193}, std::pair{1030, 20000},
                         std::pair{1, 128256}}) {
    auto x = random_floats(size_t(rows) * n, fresh_seed(), -10.f, 10.f);
    std::mt19937 rng(fresh_seed());
    for (int r = 0; r < rows; ++r) {  // ties in different blocks of the row: the first one wins
      const int a = int(rng() % n), b = int(rng() % n);
      x[size_t(r) * n + a] = x[size_t(r) * n + b] = 50.f + r;
    }
    Tensor ids = poisoned(be, {rows}, DType::I32), values = poisoned(be, {rows});
    for (int rep = 0; rep < 2; ++rep) {
      be.argmax(ids, values, device_floats(x, {rows, n}));
      Tensor host_ids = ids.to(Device::CPU);
      const auto host_values = values.to_floats();
      for (int r = 0; r < rows; ++r) {
        const int want = kernels::argmax_cpu(x.data() + size_t(r) * n, n);
        ASSERT_EQ(host_ids.data<int32_t>()[r], want) << "row " << r << " of " << rows << "x" << n;
        ASSERT_EQ(host_values[r], x[size_t(r) * n + want]) << "row " << r;
      }
    }
  }
}

TEST(CudaCast, RoundsLikeTheHost) {
  SKIP_WITHOUT_GPU();
  CudaBackend be(DType::BF16, 0);
  const int n = 100003;
  auto x = random_floats(n, fresh_seed(), -300.f, 300.f);
  x[0] = 0.f, x[1] = -0.f, x[2] = 1e-30f, x[3] = 65504.f, x[4] = 3.0e38f;
  for (DType dt : {DType::BF16, DType::F16, DType::F32}) {
    Tensor out = poisoned(be, {n}, dt);
    be.cast(out, device_floats(x, {n}));
    std::vector<uint8_t> ref(size_t(n) * dtype_size(dt));
    convert_from_f32(x.data(), dt, ref.data(), n);
    Tensor host = out.to(Device::CPU);
    EXPECT_EQ(std::memcmp(host.raw(), ref.data(), ref.size()), 0) << dtype_name(dt);
    Tensor back = poisoned(be, {n});
    be.cast(back, out);  // and back to f32, exactly
    const auto got = back.to_floats(), want = rounded(x, dt);
    EXPECT_EQ(std::memcmp(got.data(), want.data(), n * 4), 0) << dtype_name(dt);
  }
}

}  // namespace
}  // namespace llama_tp
#endif  // LLAMA_TP_CUDA

// Tensor host <-> device copies and the CudaBackend's own contract: weight upload and dtype
// conversion, names, and clear errors for misuse.
#ifdef LLAMA_TP_CUDA
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "runtime/backend_cuda.h"
#include "runtime/error.h"
#include "test_util.h"

namespace llama_tp {
namespace {

using test::random_floats;

#define SKIP_WITHOUT_GPU() \
  if (!llama_tp::cuda_available()) GTEST_SKIP() << "no CUDA GPU"

uint32_t fresh_seed() { return std::random_device{}(); }

Tensor host_tensor(const std::vector<float>& v, std::vector<int64_t> shape, DType dt) {
  Tensor t = Tensor::empty(std::move(shape), dt);
  convert_from_f32(v.data(), dt, t.raw(), v.size());
  return t;
}

TEST(TensorCuda, HostDeviceRoundTripsAreExact) {
  SKIP_WITHOUT_GPU();
  const auto v = random_floats(12345, fresh_seed(), -100.f, 100.f);
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    Tensor host = host_tensor(v, {3, 4115}, dt);
    Tensor dev = host.to(Device::CUDA);
    EXPECT_EQ(dev.device(), Device::CUDA);
    EXPECT_EQ(dev.dtype(), dt);
    Tensor dev2 = Tensor::empty({3, 4115}, dt, Device::CUDA);
    dev2.copy_from(dev);  // device to device
    Tensor back = dev2.to(Device::CPU);
    EXPECT_EQ(std::memcmp(back.raw(), host.raw(), host.nbytes()), 0) << dtype_name(dt);
    // to_floats from the device converts like the host does.
    const auto f_dev = dev.to_floats(), f_host = host.to_floats();
    EXPECT_EQ(std::memcmp(f_dev.data(), f_host.data(), f_host.size() * 4), 0) << dtype_name(dt);
  }
  Tensor ids = Tensor::empty({5}, DType::I32);
  for (int i = 0; i < 5; ++i) ids.data<int32_t>()[i] = 1000 * i - 7;
  Tensor ids_back = ids.to(Device::CUDA).to(Device::CPU);
  EXPECT_EQ(std::memcmp(ids_back.raw(), ids.raw(), ids.nbytes()), 0);
}

TEST(TensorCuda, RowViewsAndZeros) {
  SKIP_WITHOUT_GPU();
  const auto v = random_floats(7 * 33, fresh_seed());
  Tensor dev = Tensor::from_floats(v, {7, 33}).to(Device::CUDA);
  const auto rows = dev.rows(2, 3).to_floats();
  ASSERT_EQ(rows.size(), 3u * 33);
  EXPECT_EQ(std::memcmp(rows.data(), v.data() + 2 * 33, rows.size() * 4), 0);
  Tensor part = Tensor::from_floats(std::vector<float>(33, 5.f), {1, 33});
  Tensor row = dev.rows(6, 1);
  row.copy_from(part);  // host into a device view
  EXPECT_EQ(dev.to_floats()[6 * 33 + 32], 5.f);
  EXPECT_EQ(dev.to_floats()[5 * 33 + 32], v[5 * 33 + 32]);
  const auto z = Tensor::zeros({1001}, DType::BF16, Device::CUDA).to_floats();
  EXPECT_EQ(std::count(z.begin(), z.end(), 0.f), 1001);
}

TEST(BackendCuda, UploadConvertsToTheComputeDtype) {
  SKIP_WITHOUT_GPU();
  const auto v = random_floats(4097, fresh_seed(), -70000.f, 70000.f);  // past f16's range too
  for (DType compute : {DType::F32, DType::BF16, DType::F16}) {
    CudaBackend be(compute, 0);
    EXPECT_EQ(be.kv_dtype(), compute);
    EXPECT_EQ(be.device(), Device::CUDA);
    EXPECT_NE(be.name().find("cuda:0"), std::string::npos) << be.name();
    for (DType from : {DType::F32, DType::BF16, DType::F16}) {
      Tensor host = host_tensor(v, {17, 241}, from);
      for (bool from_device : {false, true}) {
        Tensor w = be.upload_weight(from_device ? host.to(Device::CUDA) : host);
        EXPECT_EQ(w.device(), Device::CUDA);
        EXPECT_EQ(w.dtype(), compute);
        EXPECT_EQ(w.shape(), host.shape());
        // Expected: the host's own conversion from -> f32 -> compute (exact for widening).
        const auto f = host.to_floats();
        Tensor want = host_tensor(f, {17, 241}, compute);
        Tensor got = w.to(Device::CPU);
        EXPECT_EQ(std::memcmp(got.raw(), want.raw(), want.nbytes()), 0)
            << dtype_name(from) << " -> " << dtype_name(compute) << (from_device ? " (on device)" : "");
      }
    }
  }
}

TEST(BackendCuda, MisuseIsAClearError) {
  SKIP_WITHOUT_GPU();
  EXPECT_THROW(CudaBackend(DType::BF16, 4096), Error);
  EXPECT_THROW(CudaBackend(DType::I32, 0), Error);
  auto base = make_cuda_backend(DType::BF16, 0);
  auto& be = dynamic_cast<CudaBackend&>(*base);
  EXPECT_NE(be.stream(), nullptr);
  EXPECT_THROW(be.upload_weight(Tensor::empty({4}, DType::I32)), Error);
  Tensor host_x = Tensor::from_floats({1.f, 2.f}, {1, 2});
  Tensor dev_x = host_x.to(Device::CUDA);
  Tensor w = be.upload_weight(host_x);
  EXPECT_THROW(be.add(host_x, dev_x), Error);        // host tensor
  EXPECT_THROW(be.rmsnorm(dev_x, dev_x, be.upload_weight(Tensor::from_floats({1.f}, {1})), 1e-5f), Error);
  Tensor out = be.alloc({1, 3}, DType::F32);
  EXPECT_THROW(be.linear(out, dev_x, w), Error);     // shapes disagree
  AttentionShape shape{2, 1, 4, 8};
  Tensor qkv = be.alloc({2, shape.qkv_width()}, DType::F32);
  Tensor kc = be.alloc({1, 8, 4}, be.kv_dtype()), vc = be.alloc({1, 8, 4}, be.kv_dtype());
  EXPECT_THROW(be.kv_append(kc, vc, qkv, shape, 7), Error);  // positions 7..8 past the cache
  Tensor att = be.alloc({2, 8}, DType::F32);
  EXPECT_THROW(be.attention(att, qkv, kc, vc, shape, 7), Error);
  be.synchronize();
}

}  // namespace
}  // namespace llama_tp
#endif  // LLAMA_TP_CUDA

// Tensor host <-> device copies and the CudaBackend's own contract: weight upload and dtype
// conversion, names, clear errors for misuse, the step slot, downloads and graph recording; and
// the forward pass on CUDA (decode steps replayed as graphs) against the CPU and against itself
// without graphs.
#ifdef LLAMA_TP_CUDA
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "parallel/single_communicator.h"
#include "kernels/argmax.h"
#include "kernels/attention.h"
#include "runtime/backend_cuda.h"
#include "runtime/dummy_weights.h"
#include "runtime/error.h"
#include "runtime/model.h"
#include "test_util.h"

namespace llama_tp {
namespace {

using test::random_floats;
using test::fresh_seed;

#define SKIP_WITHOUT_GPU() \
  if (!llama_tp::cuda_available()) GTEST_SKIP() << "no CUDA GPU"

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
  EXPECT_THROW(be.attention(att, qkv, kc, vc, shape, kStepPos), Error);  // the step slot holds one token
  EXPECT_THROW(be.set_step(0, -1), Error);
  be.synchronize();
}

TEST(BackendCuda, StepSlotAndDownload) {
  SKIP_WITHOUT_GPU();
  CudaBackend be(DType::BF16, 0);
  for (int i = 0; i < 3; ++i) {
    be.set_step(1000 + i, 7 * i);
    Tensor t = be.step_tokens();
    ASSERT_EQ(t.device(), Device::CUDA);
    ASSERT_EQ(t.dtype(), DType::I32);
    const auto* got = static_cast<const int32_t*>(be.download(t));
    be.synchronize();
    EXPECT_EQ(*got, 1000 + i);
  }
  const auto v = random_floats(100000, fresh_seed());
  for (int n : {3, 100000, 17}) {  // grows the pinned buffer, then reuses it
    Tensor dev = Tensor::from_floats(std::vector<float>(v.begin(), v.begin() + n), {n}).to(Device::CUDA);
    const auto* got = static_cast<const float*>(be.download(dev));
    be.synchronize();
    EXPECT_EQ(std::memcmp(got, v.data(), size_t(n) * 4), 0) << n;
  }
}

// rope + KV append + attention recorded once with the position in the step slot, replayed at
// growing positions: the same results as the same ops queued step by step.
TEST(BackendCuda, GraphReplaysFollowTheStepSlot) {
  SKIP_WITHOUT_GPU();
  CudaBackend be(DType::BF16, 0);
  if (!be.supports_graphs()) GTEST_SKIP() << "graphs are off in debug builds";
  AttentionShape shape{8, 2, 64, 700};
  const int width = shape.qkv_width();
  std::vector<float> freq(32);
  for (int i = 0; i < 32; ++i) freq[i] = std::pow(10000.f, -float(i) / 32.f);
  Tensor inv_freq = Tensor::from_floats(freq, {32}).to(Device::CUDA);
  struct Run {
    Tensor qkv, k, v, out;
  };
  auto make_run = [&] {
    Run r{be.alloc({1, width}, DType::F32), Tensor::zeros({2, 700, 64}, be.kv_dtype(), Device::CUDA),
          Tensor::zeros({2, 700, 64}, be.kv_dtype(), Device::CUDA), be.alloc({1, 8 * 64}, DType::F32)};
    return r;
  };
  Run graph_run = make_run(), eager_run = make_run();
  auto queue = [&](Run& r) {
    be.rope_kv_append(r.qkv, r.k, r.v, shape, kStepPos, inv_freq);
    be.attention(r.out, r.qkv, r.k, r.v, shape, kStepPos);
  };
  std::unique_ptr<Backend::Graph> graph;
  int last = 0;
  for (int pos = 0; pos < 650; last = pos, pos += pos < 5 ? 1 : 97) {
    const auto qkv = random_floats(width, fresh_seed());
    graph_run.qkv.copy_from(Tensor::from_floats(qkv, {1, width}));
    eager_run.qkv.copy_from(Tensor::from_floats(qkv, {1, width}));
    be.set_step(0, pos);
    if (pos == 0) {
      queue(graph_run);  // unrecorded first: sizes the workspace
    } else {
      if (!graph) {
        be.begin_capture();
        queue(graph_run);
        graph = be.end_capture();
      }
      ASSERT_TRUE(be.replay(*graph));
    }
    queue(eager_run);
    be.synchronize();
    const auto a = graph_run.out.to_floats(), b = eager_run.out.to_floats();
    ASSERT_EQ(test::max_abs_diff(a.data(), b.data(), a.size()), 0.0) << "position " << pos;
    const auto ka = graph_run.k.to_floats(), kb = eager_run.k.to_floats();
    ASSERT_EQ(test::max_abs_diff(ka.data(), kb.data(), ka.size()), 0.0) << "position " << pos;
  }
  // And the last step against the CPU on the cache contents.
  const auto q = eager_run.qkv.to_floats(), k = eager_run.k.to_floats(), v = eager_run.v.to_floats();
  const auto got = eager_run.out.to_floats();
  std::vector<float> ref(got.size());
  kernels::attention_cpu(ref.data(), q.data(), width, k.data(), v.data(), 1, 8, 2, 64, last, 700);
  EXPECT_LT(test::rel_error(got.data(), ref.data(), ref.size()), 2e-5);
}

// What a recording must refuse (and how the backend recovers): growing the workspace, waiting
// for the device, updating the step slot.
TEST(BackendCuda, RecordingRefusesAllocationsAndRecovers) {
  SKIP_WITHOUT_GPU();
  CudaBackend be(DType::F32, 0);
  if (!be.supports_graphs()) GTEST_SKIP() << "graphs are off in debug builds";
  AttentionShape shape{8, 2, 64, 4000};
  Tensor qkv = Tensor::zeros({1, shape.qkv_width()}, DType::F32, Device::CUDA);
  Tensor kc = Tensor::zeros({2, 4000, 64}, DType::F32, Device::CUDA), vc = Tensor::zeros({2, 4000, 64}, DType::F32, Device::CUDA);
  Tensor out = be.alloc({1, 8 * 64}, DType::F32);
  be.set_step(0, 3000);
  be.begin_capture();
  EXPECT_THROW(be.attention(out, qkv, kc, vc, shape, kStepPos), Error);  // needs a workspace
  be.abort_capture();
  be.begin_capture();
  EXPECT_THROW(be.set_step(1, 2), Error);
  be.abort_capture();
  // Usable again, unrecorded and recorded.
  be.attention(out, qkv, kc, vc, shape, kStepPos);
  be.synchronize();
  be.begin_capture();
  be.attention(out, qkv, kc, vc, shape, kStepPos);
  auto graph = be.end_capture();
  EXPECT_TRUE(be.replay(*graph));
  be.synchronize();
  const auto got = out.to_floats();
  EXPECT_EQ(std::count(got.begin(), got.end(), 0.f), long(got.size()));  // zero V: zero output
}

// ---- The forward pass on CUDA ------------------------------------------------------------

ModelConfig small_config(int64_t dim, int64_t heads, int64_t kv_heads, DType dtype) {
  ModelConfig c;
  c.dim = dim;
  c.ffn_dim = 2 * dim + 8;
  c.n_layers = 3;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.head_dim = dim / heads;
  c.vocab_size = 1003;
  c.max_seq_len = 4096;
  c.rope.theta = 500000;
  c.dtype = dtype;
  return c;
}

std::unique_ptr<Model> make_model(const ModelConfig& c, Backend& be, Communicator& comm, int max_seq,
                                  bool graphs = true) {
  DummyWeightSource source(c);
  ShardPlan plan = ShardPlan::make(c, 1, 0);
  auto m = std::make_unique<Model>(c, plan, load_weights(c, plan, source, be), be, comm, max_seq, 64);
  m->set_graphs_enabled(graphs);
  return m;
}

// Dummy weights made on the GPU are the host's bits: every kind of tensor (norm, embedding,
// matrices), blocks that start inside the tensor (a rank's rows or columns), all dtypes.
TEST(DummyWeightsCuda, BlocksMadeOnTheGpuAreTheHostsBits) {
  SKIP_WITHOUT_GPU();
  ModelConfig c = small_config(192, 6, 2, DType::BF16);
  c.vocab_size = 70001;  // a wide vocabulary: the embedding block starts at row 60001
  DummyWeightSource source(c, 7);
  CudaBackend be(DType::BF16, 0);
  struct Block { const char* name; int64_t row0, n_rows, col0, n_cols; };
  for (DType dt : {DType::BF16, DType::F16, DType::F32})
    for (Block b : {Block{"model.norm.weight", 0, 1, 5, 150}, Block{"model.embed_tokens.weight", 60001, 9999, 0, 192},
                    Block{"model.layers.1.self_attn.q_proj.weight", 32, 96, 0, 192},
                    Block{"model.layers.0.mlp.down_proj.weight", 0, 192, 17, 301}}) {
      const Tensor host = source.read_block(b.name, b.row0, b.n_rows, b.col0, b.n_cols, dt);
      const Tensor dev = source.read_block_for(be, b.name, b.row0, b.n_rows, b.col0, b.n_cols, dt);
      ASSERT_EQ(dev.device(), Device::CUDA) << b.name;
      ASSERT_EQ(dev.shape(), host.shape()) << b.name;
      const Tensor back = dev.to(Device::CPU);
      EXPECT_EQ(std::memcmp(back.raw(), host.raw(), host.nbytes()), 0) << b.name << " " << dtype_name(dt);
    }
}

// The same work queued the same way gives the same bits; allow only rounding-level noise (a
// graph that read a stale position or buffer would be far off).
void expect_same(const std::vector<float>& a, const std::vector<float>& b, const std::string& where) {
  ASSERT_EQ(a.size(), b.size()) << where;
  EXPECT_LT(test::rel_error(a.data(), b.data(), a.size()), 1e-6) << where;
}

std::vector<int32_t> random_ids(int n, int vocab) {
  std::mt19937 rng(fresh_seed());
  std::vector<int32_t> ids(n);
  for (auto& id : ids) id = int32_t(rng() % vocab);
  return ids;
}

// f32 weights and caches: the CUDA engine with graphs matches the CPU engine to float32 precision,
// and matches itself without graphs bit for bit; greedy ids from the device argmax are the
// argmax of the logits.
TEST(ModelCuda, DecodeGraphsMatchCpuAndUnrecordedSteps) {
  SKIP_WITHOUT_GPU();
  for (auto [dim, heads, kv_heads] : {std::tuple{256, 8, 2}, std::tuple{512, 4, 1}, std::tuple{192, 6, 6}}) {
    SCOPED_TRACE(testing::Message() << "dim " << dim << ", " << heads << "/" << kv_heads << " heads");
    const ModelConfig c = small_config(dim, heads, kv_heads, DType::F32);
    SingleCommunicator comm;
    auto cpu_be = make_cpu_backend();
    CudaBackend gpu_be(DType::F32, 0), plain_be(DType::F32, 0);
    auto cpu = make_model(c, *cpu_be, comm, 400), gpu = make_model(c, gpu_be, comm, 400),
         plain = make_model(c, plain_be, comm, 400, /*graphs=*/false);
    EXPECT_EQ(gpu->graphs_in_use(), gpu_be.supports_graphs());
    EXPECT_FALSE(plain->graphs_in_use());

    const auto prompt = random_ids(150, int(c.vocab_size));  // three chunks of 64
    const auto l_cpu = cpu->forward(prompt.data(), 150, 0, true), l_gpu = gpu->forward(prompt.data(), 150, 0, true);
    plain->forward(prompt.data(), 150, 0, true);
    ASSERT_EQ(l_cpu.size(), l_gpu.size());
    EXPECT_LT(test::rel_error(l_gpu.data(), l_cpu.data(), l_cpu.size()), 1e-4);

    int32_t next = kernels::argmax_cpu(&l_cpu[size_t(149) * c.vocab_size], int(c.vocab_size));
    for (int pos = 150; pos < 160; ++pos) {
      const auto a = cpu->forward(&next, 1, pos, false), b = gpu->forward(&next, 1, pos, false),
                 d = plain->forward(&next, 1, pos, false);
      EXPECT_LT(test::rel_error(b.data(), a.data(), a.size()), 1e-4) << "position " << pos;
      expect_same(b, d, "position " + std::to_string(pos));
      // The greedy step at the same position rewrites the same cache rows.
      const Model::TokenChoice choice = gpu->forward_argmax(&next, 1, pos);
      const int want = kernels::argmax_cpu(b.data(), int(b.size()));
      EXPECT_EQ(choice.id, want) << "position " << pos;
      EXPECT_EQ(choice.logit, b[size_t(want)]) << "position " << pos;
      next = int32_t((next * 31 + pos) % c.vocab_size);
    }
    // A capture that failed would have turned graphs off with a warning.
    EXPECT_EQ(gpu->graphs_in_use(), gpu_be.supports_graphs());
    const Model::TokenChoice prefill_choice = gpu->forward_argmax(prompt.data(), 40, 160);
    const auto prefill_logits = plain->forward(prompt.data(), 40, 160, false);
    EXPECT_EQ(prefill_choice.id, kernels::argmax_cpu(prefill_logits.data(), int(prefill_logits.size())));
  }
}

// bf16: graphs survive activation buffers growing (a longer prompt after decode steps) and
// several models sharing one backend (and its workspace), still matching unrecorded steps.
TEST(ModelCuda, GraphsFollowBufferGrowthAndSharedBackends) {
  SKIP_WITHOUT_GPU();
  const ModelConfig c = small_config(512, 8, 2, DType::BF16);
  SingleCommunicator comm;
  CudaBackend shared_be(DType::BF16, 0), plain_be(DType::BF16, 0);
  auto a = make_model(c, shared_be, comm, 3000), b = make_model(c, shared_be, comm, 200);
  auto plain = make_model(c, plain_be, comm, 3000, /*graphs=*/false);
  const auto ids = random_ids(3000, int(c.vocab_size));
  int pos = 0;
  auto step_all = [&](int n) {
    const auto la = a->forward(&ids[pos], n, pos, false), lp = plain->forward(&ids[pos], n, pos, false);
    expect_same(la, lp, std::to_string(n) + " tokens at " + std::to_string(pos));
    if (pos + n <= 200) b->forward(&ids[pos], n, pos, false);  // interleaved on the same backend
    pos += n;
  };
  for (int i = 0; i < 4; ++i) step_all(1);  // buffers for one token; the second step records
  step_all(37);                              // buffers grow: graphs are recorded again
  for (int i = 0; i < 4; ++i) step_all(1);
  step_all(2500);                            // long prompt in chunks of 64
  for (int i = 0; i < 6; ++i) step_all(1);   // decode over a long cache (many key chunks)
  EXPECT_EQ(a->graphs_in_use(), shared_be.supports_graphs());
}

TEST(ModelCuda, GraphsCanBeTurnedOff) {
  SKIP_WITHOUT_GPU();
  const ModelConfig c = small_config(256, 8, 2, DType::BF16);
  SingleCommunicator comm;
  CudaBackend be(DType::BF16, 0);
  const char* old = std::getenv("LLAMA_TP_NO_GRAPHS");
  const std::string saved = old ? old : "";
  setenv("LLAMA_TP_NO_GRAPHS", "1", 1);
  {
    DummyWeightSource src(c);
    ShardPlan one = ShardPlan::make(c, 1, 0);
    Model off(c, one, load_weights(c, one, src, be), be, comm, 100, 64);  // no set_graphs_enabled: the env decides
    EXPECT_FALSE(off.graphs_enabled());
  }
  if (old) setenv("LLAMA_TP_NO_GRAPHS", saved.c_str(), 1);
  else unsetenv("LLAMA_TP_NO_GRAPHS");
  DummyWeightSource source(c);
  ShardPlan plan = ShardPlan::make(c, 1, 0);
  Model on(c, plan, load_weights(c, plan, source, be), be, comm, 100);
  EXPECT_EQ(on.graphs_enabled(), !old || saved.empty() || saved == "0");
  on.set_graphs_enabled(false);
  EXPECT_FALSE(on.graphs_in_use());
}

// The reference models (../shared/models, when present) on CUDA in f32, decode steps replayed
// as graphs: Hugging Face's logits at every prompt position and its greedy continuation.
TEST(ModelCuda, ReferenceModelsWithGraphs) {
  SKIP_WITHOUT_GPU();
  int found = 0;
  for (const std::string name : {"tiny-llama3", "tiny-llama2", "tiny-gqa-f32"}) {
    const std::string dir = test::shared_path("models/" + name), ref_path = test::shared_path("models/" + name + ".reference.json");
    if (dir.empty() || ref_path.empty()) continue;
    ++found;
    SCOPED_TRACE(name);
    std::ifstream f(ref_path);
    const nlohmann::json j = nlohmann::json::parse(f);
    const auto prompt = j["prompt_ids"].get<std::vector<int32_t>>();
    const auto greedy = j["greedy_ids"].get<std::vector<int32_t>>();
    const int64_t vocab = j["logits_shape"][1].get<int64_t>();
    std::vector<float> want(prompt.size() * vocab);
    std::ifstream lf(test::shared_path("models/" + name + ".logits.f32"), std::ios::binary);
    lf.read(reinterpret_cast<char*>(want.data()), std::streamsize(want.size() * 4));
    ASSERT_TRUE(lf.good());

    Checkpoint ck = open_checkpoint(dir);
    CudaBackend be(DType::F32, 0);
    SingleCommunicator comm;
    ShardPlan plan = ShardPlan::make(ck.config, 1, 0);
    const int n = int(prompt.size());
    Model model(ck.config, plan, load_weights(ck.config, plan, *ck.weights, be), be, comm, n + 40, 7);
    const auto logits = model.forward(prompt.data(), n, 0, true);
    for (int t = 0; t < n; ++t)
      EXPECT_LT(test::rel_error(&logits[size_t(t) * vocab], &want[size_t(t) * vocab], vocab), 1e-4) << "position " << t;
    std::vector<int32_t> got;
    int32_t next = kernels::argmax_cpu(&logits[size_t(n - 1) * vocab], int(vocab));
    for (size_t i = 0; i < greedy.size(); ++i) {
      got.push_back(next);
      if (i + 1 < greedy.size()) next = model.forward_argmax(&next, 1, n + int(i)).id;
    }
    EXPECT_EQ(got, greedy);
    EXPECT_EQ(model.graphs_in_use(), be.supports_graphs());
  }
  if (found == 0) GTEST_SKIP() << "no reference models under " << test::shared_dir() << "/models";
}

}  // namespace
}  // namespace llama_tp
#endif  // LLAMA_TP_CUDA

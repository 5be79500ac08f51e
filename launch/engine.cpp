#include "launch/engine.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <vector>

#include "parallel/make_communicator.h"
#include "runtime/dummy_weights.h"
#include "runtime/error.h"
#include "runtime/llama2c.h"
#ifdef LLAMA_TP_CUDA
#include "runtime/backend_cuda.h"
#endif

namespace fs = std::filesystem;

namespace llama_tp {

Checkpoint open_model(const Options& o) {
  if (auto shape = named_model_shape(o.model)) return dummy_checkpoint(*shape, o.model + " (random weights)");
  LLAMA_TP_CHECK(fs::exists(o.model), "model '", o.model, "' not found: give a model folder, a llama2.c .bin file or a shape (",
                 [] {
                   std::string s;
                   for (const auto& n : named_model_shapes()) s += (s.empty() ? "" : ", ") + n;
                   return s;
                 }(), ")");
  if (o.load_format == "dummy") {
    fs::path dir = fs::is_directory(o.model) ? fs::path(o.model) : fs::path(o.model).parent_path();
    return dummy_checkpoint(ModelConfig::from_hf_dir(dir.string()), o.model + " (random weights)");
  }
  return open_checkpoint(o.model);
}

std::string find_tokenizer(const std::string& model_path) {
  if (named_model_shape(model_path) || !fs::exists(model_path)) return "";
  // A GGUF file carries its own tokenizer.
  if (!fs::is_directory(model_path) && fs::path(model_path).extension() == ".gguf") return model_path;
  fs::path dir = fs::is_directory(model_path) ? fs::path(model_path) : fs::path(model_path).parent_path();
  if (dir.empty()) dir = ".";
  for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer.bin"})
    if (fs::exists(dir / name)) return (dir / name).string();
  // llama2.c ships tokenizers as tok<N>.bin beside the checkpoint.
  if (!fs::is_directory(model_path))
    for (const auto& entry : fs::directory_iterator(dir)) {
      const std::string f = entry.path().filename().string();
      if (f.rfind("tok", 0) == 0 && entry.path().extension() == ".bin" && entry.path() != fs::path(model_path))
        return entry.path().string();
    }
  return "";
}

void log_line(const Engine& e, const std::string& line, bool all_ranks, bool verbose) {
  if (e.ranks.rank == 0 || (all_ranks && verbose)) {
    std::string prefix = e.ranks.world > 1 && all_ranks ? "[rank " + std::to_string(e.ranks.rank) + "] " : "";
    // One write per line: ranks share stderr, and separate writes of prefix and text interleave.
    const std::string whole = prefix + line + "\n";
    std::fwrite(whole.data(), 1, whole.size(), stderr);
    std::fflush(stderr);
  }
}

namespace {

#ifdef LLAMA_TP_CUDA
DType compute_dtype(const Options& o, const ModelConfig& c) {
  if (o.dtype != "auto") return parse_dtype(o.dtype);
  return c.dtype;
}
#endif

std::unique_ptr<Backend> make_backend(const Options& o, const ModelConfig& c, const RankInfo& ranks, int& gpu) {
  std::string kind = o.backend;
  if (kind == "auto") kind = cuda_available() ? "cuda" : "cpu";
  if (kind == "cpu") return make_cpu_backend();
#ifdef LLAMA_TP_CUDA
  LLAMA_TP_CHECK(cuda_available(), "--backend cuda: no CUDA GPU is visible to rank ", ranks.rank);
  gpu = choose_gpu(ranks.local_rank, o.gpu);
  std::optional<DType> kv;
  if (o.kv_dtype != "auto") kv = parse_dtype(o.kv_dtype);
  return make_cuda_backend(compute_dtype(o, c), gpu, kv, o.precise_activations);
#else
  LLAMA_TP_FAIL("--backend cuda: this llama_tp was built without CUDA (configure with -DLLAMA_TP_CUDA=ON)");
#endif
}

}  // namespace

double measure_copy_bandwidth_gbs(Backend& backend) {
  const int64_t n = backend.device() == Device::CPU ? (int64_t(1) << 26) : (int64_t(1) << 30);
  Tensor a = backend.alloc({n}, DType::I8), b = backend.alloc({n}, DType::I8);
  b.copy_from(a);  // warm-up
  const int reps = 10;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) b.copy_from(a);
  backend.synchronize();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return 2.0 * double(n) * reps / s / 1e9;
}

QuantSpec choose_quant(const Options& o, const Checkpoint& ck) {
  const auto* l2c = dynamic_cast<const Llama2cSource*>(ck.weights.get());
  const int file_group = l2c && l2c->version() == 2 ? l2c->group_size() : 0;
  if (o.quant == "none" || (o.quant == "auto" && file_group == 0)) return QuantSpec::none();
  // A version 2 file's own group size requantizes its int8 values unchanged.
  return QuantSpec::int8_groups(o.quant_group >= 0 ? o.quant_group : file_group ? file_group : QuantSpec::kDefaultGroup);
}

// Prompt tokens per forward pass. An explicit --batch-size is kept (a plan that does not fit
// then fails with the numbers); the default (2048) halves, down to 512, until this rank's plan
// fits with some headroom, and all ranks take the smallest: they run the same passes in lockstep.
int agreed_batch_size(const Options& o, const ModelConfig& c, Backend& backend, Communicator& comm,
                      const RankInfo& ranks, int ctx, const QuantSpec& quant) {
  int batch = o.batch_size;
  if (!o.batch_size_set) {
    Options t = o;
    // 3% of headroom: the CUDA context, cuBLAS and graphs also take device memory the plan
    // does not count.
    auto roomy = [&](const MemoryPlan& p) { return p.available == 0 || p.peak() <= p.available / 100 * 97; };
    while (t.batch_size > 512 && !roomy(plan_rank_memory(t, c, backend, ranks, ctx, quant))) t.batch_size /= 2;
    batch = t.batch_size;
  }
  std::vector<int32_t> all(comm.rank() == 0 ? comm.size() : 0);
  const int32_t mine = batch;
  comm.gather(&mine, sizeof mine, all.data(), std::vector<size_t>(comm.size(), sizeof mine), 0);
  int32_t agreed = mine;
  if (comm.rank() == 0)
    for (int32_t b : all) agreed = std::min(agreed, b);
  comm.broadcast(&agreed, sizeof agreed, 0);
  return agreed;
}

Engine start_engine(const Options& o, const RankInfo& ranks, bool want_tokenizer) {
  const auto t0 = std::chrono::steady_clock::now();
  Engine e;
  e.ranks = ranks;
  e.checkpoint = open_model(o);
  const ModelConfig& c = e.checkpoint.config;
  // The plan is checked before anything is allocated, so a bad tensor-parallel size fails fast.
  ShardPlan plan = ShardPlan::make(c, ranks.world, ranks.rank);
  e.backend = make_backend(o, c, ranks, e.gpu);
  e.comm = make_communicator(o.comm, e.backend->device(), e.backend->native_stream());
  LLAMA_TP_CHECK(e.comm->size() == ranks.world, "communicator size ", e.comm->size(), " differs from the MPI world ", ranks.world);

  int ctx = o.ctx_size > 0 ? o.ctx_size : int(std::min<int64_t>(c.max_seq_len > 0 ? c.max_seq_len : 4096, 4096));
  if (o.ctx_size > 0 && c.max_seq_len > 0 && o.ctx_size > c.max_seq_len)
    log_line(e, "llama_tp: warning: --ctx-size " + std::to_string(o.ctx_size) + " exceeds the model's trained context " +
                    std::to_string(c.max_seq_len));

  if (o.verbose) {
    std::string where = e.backend->name() + (e.gpu >= 0 ? " gpu " + std::to_string(e.gpu) : "");
    log_line(e, ranks.describe() + ", backend " + where + ", communicator " + e.comm->name() + ", " + plan.describe(), true, true);
    log_line(e, "model: " + e.checkpoint.path + ": " + c.summary());
  }
  // The memory plan, before anything is loaded: a model that cannot fit fails here, with numbers.
  e.quant = choose_quant(o, e.checkpoint);
  // bench reports decode traffic against the copy bandwidth. It is measured now, while the
  // device is empty: after loading, its 2 GiB of buffers would be memory the plan never
  // counted (a 70B shard at --gpu-memory-limit 24GiB leaves a few hundred MiB).
  if (o.command == Command::Bench && o.bandwidth_gbs <= 0 && ranks.rank == 0)
    e.copy_bandwidth_gbs = measure_copy_bandwidth_gbs(*e.backend);
  e.comm->barrier();  // every rank reads the free memory before any rank allocates
  const int batch = agreed_batch_size(o, c, *e.backend, *e.comm, ranks, ctx, e.quant);
  Options planned = o;
  planned.batch_size = batch;
  e.memory_plan = plan_rank_memory(planned, c, *e.backend, ranks, ctx, e.quant);
  if (o.verbose) log_line(e, "memory plan: " + e.memory_plan.describe(), true, true);
  require_fits(e.memory_plan);
  ModelWeights weights = load_weights(c, plan, *e.checkpoint.weights, *e.backend, e.quant);
  const size_t weight_bytes = weights.nbytes();
  e.model = std::make_unique<Model>(c, plan, std::move(weights), *e.backend, *e.comm, ctx, batch);
  if (o.rope_freqs == "f32") e.model->set_rope_frequencies(Model::RopeFrequencies::Float32);
  if (!o.cuda_graphs) e.model->set_graphs_enabled(false);
  if (o.verbose)
    log_line(e, "memory: weights " + std::to_string(weight_bytes >> 20) + " MiB, KV cache " +
                    std::to_string(e.model->kv_cache().nbytes() >> 20) + " MiB (" + std::to_string(ctx) + " positions)" +
                    ", decode steps " + (e.model->graphs_in_use() ? "as CUDA graphs" : "without graphs"),
             true, true);

  if (want_tokenizer && ranks.rank == 0) {
    const std::string tok = find_tokenizer(o.model);
    if (!tok.empty()) e.tokenizer = Tokenizer::load(tok);
  }
  e.memory_plans = gather_memory_plans(*e.comm, e.memory_plan);
  e.comm->barrier();
  e.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return e;
}

}  // namespace llama_tp

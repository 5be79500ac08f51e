#include "launch/memory_plan.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <regex>
#include <vector>

#ifdef LLAMA_TP_CUDA
#include <cuda_runtime.h>
#endif

#include "parallel/shard_plan.h"
#include "runtime/error.h"
#include "runtime/kv_cache.h"

namespace llama_tp {
namespace {

// Scratch the CUDA backend holds beside its own workspace: cuBLAS' workspace (32 MiB per
// handle on Hopper) and the split-K attention partials, bounded by the largest grid the
// attention kernel splits to (8 blocks per SM of up to 160 SMs, 32 query rows each).
constexpr size_t kCublasWorkspace = size_t(32) << 20;
size_t attention_workspace_bound(int64_t head_dim) { return sizeof(float) * 8 * 160 * 32 * size_t(head_dim + 2); }
// runtime/backend_cuda_int8.cu dequantizes at most this many bytes of weight rows at a time.
constexpr size_t kDequantTileBytes = size_t(64) << 20;

struct LinearShape {
  int64_t out, in;
};

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

}  // namespace

size_t MemoryPlan::peak() const { return weights + std::max(load_staging, kv_cache + activations + workspace); }

MemoryPlan plan_memory(const MemoryPlanInputs& in) {
  const ModelConfig& c = in.config;
  const ShardPlan p = ShardPlan::make(c, in.world, in.rank);
  const int64_t hd = c.head_dim, dim = c.dim, L = c.n_layers;
  const int64_t q_width = p.n_heads_local * hd, qkv_width = (p.n_heads_local + 2 * p.n_kv_heads_local) * hd;
  const int64_t ffn = p.ffn.count, vocab = p.vocab.count;
  const size_t wsize = dtype_size(in.weight_dtype), ck = dtype_size(in.checkpoint_dtype);
  const bool cuda = in.device == Device::CUDA;

  MemoryPlan plan;
  plan.inputs = in;
  // As runtime/model.cpp load_weights: the embedding in the backend's float dtype, norms in f32
  // (upload_norm: the CPU backend's dtype, the CUDA backend's choice).
  plan.weights = size_t(c.vocab_size) * dim * wsize + size_t(2 * L + 1) * dim * sizeof(float);
  const std::vector<LinearShape> per_layer = {{qkv_width, dim}, {dim, q_width}, {2 * ffn, dim}, {dim, ffn}};
  for (const LinearShape& s : per_layer) plan.weights += size_t(L) * linear_weight_bytes(s.out, s.in, in.weight_dtype, in.quant);
  const LinearShape head{vocab, dim};
  plan.weights += linear_weight_bytes(head.out, head.in, in.weight_dtype, in.quant);

  plan.kv_cache = KvCache::bytes_for(int(L), int(p.n_kv_heads_local), in.ctx, int(hd), in.kv_dtype);

  // As Model::ensure_buffers for the largest chunk of prompt tokens: two residual streams, h and
  // proj (dim each), qkv, attention output, gate/up and ffn; logits for one row.
  const size_t n = size_t(std::max(1, std::min(in.batch_tokens, in.ctx)));
  plan.activations = n * sizeof(int32_t) +
                     n * sizeof(float) * size_t(4 * dim + qkv_width + q_width + 3 * ffn) + sizeof(float) * size_t(vocab);

  std::vector<LinearShape> all = per_layer;
  all.push_back(head);
  if (cuda) {
    // One workspace, grown to the largest need: a prompt's activations converted to the weight
    // dtype for cuBLAS, plus for int8 a tile of dequantized weight rows; or attention partials.
    size_t ws = attention_workspace_bound(hd);
    for (const LinearShape& s : all) {
      if (in.quant.int8) {
        const size_t x = in.weight_dtype == DType::F32 ? 0 : round_up(n * s.in * wsize, 256);
        const size_t tile_rows = std::clamp<size_t>(kDequantTileBytes / (size_t(s.in) * wsize), 1, size_t(s.out));
        ws = std::max(ws, x + tile_rows * size_t(s.in) * wsize);
      } else if (in.weight_dtype != DType::F32) {
        ws = std::max(ws, n * size_t(s.in) * wsize);
      }
    }
    plan.workspace = ws + kCublasWorkspace;
  } else if (in.quant.int8) {
    plan.workspace = size_t(std::max(dim, std::max(q_width, ffn))) * sizeof(float);  // matmul_int8_cpu's row
  }

  // The largest shard that passes through memory before its conversion.
  size_t staging = 0;
  if (cuda) {
    // Copied to the GPU in the checkpoint's dtype when it must be converted or quantized there.
    if (in.checkpoint_dtype != in.weight_dtype) staging = size_t(c.vocab_size) * dim * ck;
    if (in.quant.int8 || in.checkpoint_dtype != in.weight_dtype)
      for (const LinearShape& s : all) staging = std::max(staging, size_t(s.out) * s.in * ck);
  } else {
    // Host: the blocks read, their concatenation, and (for int8) the f32 copy being quantized.
    staging = in.checkpoint_dtype != DType::F32 ? size_t(c.vocab_size) * dim * ck : 0;
    for (const LinearShape& s : all)
      staging = std::max(staging, 2 * size_t(s.out) * s.in * ck + (in.quant.int8 ? size_t(s.out) * s.in * 4 : 0));
  }
  plan.load_staging = staging;
  return plan;
}

int largest_fitting_context(const MemoryPlanInputs& in, size_t available) {
  auto fits = [&](int ctx) {
    MemoryPlanInputs t = in;
    t.ctx = ctx;
    return plan_memory(t).peak() <= available;
  };
  if (in.ctx < 1 || !fits(1)) return 0;
  int lo = 1, hi = in.ctx;  // fits(lo) holds
  while (lo < hi) {
    const int mid = lo + (hi - lo + 1) / 2;
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

namespace {

// "weights 18.62 GiB (...), KV cache ..., activations ..., workspace ...[, load staging ...]"
std::string breakdown(const MemoryPlan& plan) {
  const MemoryPlanInputs& in = plan.inputs;
  std::string weight_kind = dtype_name(in.weight_dtype);
  if (in.quant.int8) weight_kind += " embedding and norms, linear layers " + in.quant.describe();
  std::string s = "weights " + format_bytes(plan.weights) + " (" + weight_kind + "), KV cache " +
                  format_bytes(plan.kv_cache) + " (" + std::to_string(in.ctx) + " positions, " +
                  dtype_name(in.kv_dtype) + "), activations " + format_bytes(plan.activations) + " (" +
                  std::to_string(std::max(1, std::min(in.batch_tokens, in.ctx))) + " tokens), workspace " +
                  format_bytes(plan.workspace);
  if (plan.load_staging) s += ", load staging " + format_bytes(plan.load_staging);
  return s;
}

}  // namespace

std::string MemoryPlan::describe() const {
  std::string s = "peak " + format_bytes(peak());
  if (available) s += " of " + format_bytes(available) + " available (" + available_from + ")";
  else if (!available_from.empty()) s += " (" + available_from + ")";
  return s + ": " + breakdown(*this);
}

nlohmann::json MemoryPlan::to_json() const {
  return {{"rank", inputs.rank},
          {"world", inputs.world},
          {"device", device_name(inputs.device)},
          {"weight_dtype", dtype_name(inputs.weight_dtype)},
          {"quant", inputs.quant.describe()},
          {"ctx", inputs.ctx},
          {"batch_tokens", inputs.batch_tokens},
          {"weights_bytes", weights},
          {"kv_cache_bytes", kv_cache},
          {"activations_bytes", activations},
          {"workspace_bytes", workspace},
          {"load_staging_bytes", load_staging},
          {"peak_bytes", peak()},
          {"available_bytes", available},
          {"available_from", available_from},
          {"fits", fits()}};
}

void require_fits(const MemoryPlan& plan) {
  if (plan.fits()) return;
  const MemoryPlanInputs& in = plan.inputs;
  const size_t avail = plan.available;
  auto peak_with = [](const MemoryPlanInputs& t) { return plan_memory(t).peak(); };

  std::vector<std::string> options;
  MemoryPlanInputs int8 = in;
  int8.quant = QuantSpec::int8_groups(in.quant.int8 ? in.quant.group : QuantSpec::kDefaultGroup);
  if (!in.quant.int8 && peak_with(int8) <= avail) options.push_back("--quant int8 (" + format_bytes(peak_with(int8)) + ")");
  // More ranks: rank 0 holds the largest shard (uneven splits give the first ranks one more row).
  bool ranks_found = false;
  for (const MemoryPlanInputs* base : std::initializer_list<const MemoryPlanInputs*>{&in, &int8}) {
    if (ranks_found || (base == &int8 && in.quant.int8)) continue;
    for (int w : workable_world_sizes(in.config.n_heads, in.config.n_kv_heads)) {
      if (w <= in.world) continue;
      MemoryPlanInputs t = *base;
      t.world = w;
      t.rank = 0;
      size_t need = 0;
      try {
        need = peak_with(t);
      } catch (const Error&) {
        continue;  // this size cannot shard the model
      }
      if (need <= avail) {
        options.push_back(std::to_string(w) + " ranks" + (base == &int8 ? " with --quant int8" : "") + " (" +
                          format_bytes(need) + " per rank)");
        ranks_found = true;
        break;
      }
    }
  }
  const int ctx = largest_fitting_context(in, avail);
  if (ctx > 0) options.push_back("--ctx-size " + std::to_string(ctx) + " (the largest context that fits)");
  // Fewer prompt tokens per forward pass shrink the activations (the logits above all).
  for (int batch = std::min(in.batch_tokens, in.ctx) / 2; batch >= 1; batch /= 2) {
    MemoryPlanInputs t = in;
    t.batch_tokens = batch;
    if (peak_with(t) <= avail) {
      options.push_back("--batch-size " + std::to_string(batch) + " (" + format_bytes(peak_with(t)) + ")");
      break;
    }
  }

  std::string advice;
  for (size_t i = 0; i < options.size(); ++i)
    advice += (i == 0 ? "" : i + 1 == options.size() ? " or " : ", ") + options[i];
  if (advice.empty())
    advice = "nothing tried fits (int8, more ranks, a smaller context or batch); the weights alone take " +
             format_bytes(plan.weights) + " on this rank";
  else
    advice = "would fit: " + advice;
  // main() prefixes "rank N: " when several ranks run.
  const std::string who = in.world > 1 ? "its share of the model (tp " + std::to_string(in.world) + ")" : "the model";
  LLAMA_TP_FAIL(who, " needs ", format_bytes(plan.peak()), " of ",
                in.device == Device::CUDA ? "GPU" : "host", " memory but ", format_bytes(avail), " is available (",
                plan.available_from, "): ", breakdown(plan), "; ", advice, ".");
}

namespace {

// How many ranks of this node run on this rank's GPU (launch/engine.cpp picks local_rank % GPUs,
// or --gpu for all).
int ranks_sharing_gpu(const Options& o, const RankInfo& ranks) {
  int gpus = 0;
#ifdef LLAMA_TP_CUDA
  if (cudaGetDeviceCount(&gpus) != cudaSuccess) {
    cudaGetLastError();
    gpus = 0;
  }
#endif
  if (gpus <= 0 || ranks.local_world <= 1) return 1;
  if (o.gpu >= 0) return ranks.local_world;
  const int mine = ranks.local_rank % gpus;
  return ranks.local_world / gpus + (mine < ranks.local_world % gpus ? 1 : 0);
}

}  // namespace

MemoryPlan plan_rank_memory(const Options& o, const ModelConfig& c, Backend& backend, const RankInfo& ranks, int ctx,
                            const QuantSpec& quant) {
  MemoryPlanInputs in;
  in.config = c;
  in.world = ranks.world;
  in.rank = ranks.rank;
  in.device = backend.device();
  in.checkpoint_dtype = c.dtype;
  // The CPU backend keeps float weights in f32; CUDA keeps weights and the KV cache in its
  // compute dtype.
  in.weight_dtype = in.device == Device::CPU ? DType::F32 : backend.kv_dtype();
  in.kv_dtype = backend.kv_dtype();
  in.quant = quant;
  in.ctx = ctx;
  in.batch_tokens = o.batch_size;
  MemoryPlan plan = plan_memory(in);
  if (in.device == Device::CUDA) {
    const auto [gpu_free, total_b] = backend.memory_info();
    const int sharing = ranks_sharing_gpu(o, ranks);
    const size_t free_b = gpu_free / size_t(sharing);
    const size_t limit = o.gpu_memory_limit ? o.gpu_memory_limit : o.memory_limit;
    std::string free_text = format_bytes(gpu_free) + " free of " + format_bytes(total_b) + " on the GPU";
    if (sharing > 1) free_text += ", shared by " + std::to_string(sharing) + " ranks: " + format_bytes(free_b) + " each";
    const std::string option = o.gpu_memory_limit ? "--gpu-memory-limit " : "--memory-limit ";
    if (limit && (free_b == 0 || limit <= free_b)) {
      plan.available = limit;
      plan.available_from = option + format_bytes(limit);
    } else {
      plan.available = free_b;
      plan.available_from = free_text + (limit ? ", less than " + option + format_bytes(limit) : "");
    }
  } else if (o.memory_limit) {
    plan.available = o.memory_limit;
    plan.available_from = "--memory-limit " + format_bytes(o.memory_limit);
  } else {
    plan.available_from = "host memory, no --memory-limit";
  }
  return plan;
}

nlohmann::json gather_memory_plans(Communicator& comm, const MemoryPlan& mine) {
  struct Numbers {
    uint64_t weights, kv_cache, activations, workspace, load_staging, available;
  };
  const Numbers n{mine.weights, mine.kv_cache, mine.activations, mine.workspace, mine.load_staging, mine.available};
  std::vector<Numbers> all(comm.rank() == 0 ? size_t(comm.size()) : 0);
  comm.gather(&n, sizeof n, all.data(), std::vector<size_t>(size_t(comm.size()), sizeof(Numbers)), 0);
  nlohmann::json out = nlohmann::json::array();
  for (size_t r = 0; r < all.size(); ++r) {
    MemoryPlan p = mine;  // same inputs but for the rank
    p.inputs.rank = int(r);
    p.weights = all[r].weights, p.kv_cache = all[r].kv_cache, p.activations = all[r].activations;
    p.workspace = all[r].workspace, p.load_staging = all[r].load_staging, p.available = all[r].available;
    nlohmann::json j = p.to_json();
    if (int(r) != comm.rank()) j.erase("available_from");
    out.push_back(std::move(j));
  }
  return out;
}

std::string format_bytes(size_t bytes) {
  char buf[64];
  const double b = double(bytes);
  if (bytes < 1024) std::snprintf(buf, sizeof buf, "%zu B", bytes);
  else if (bytes < (size_t(1) << 20)) std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024);
  else if (bytes < (size_t(1) << 30)) std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1 << 20));
  else std::snprintf(buf, sizeof buf, "%.2f GiB", b / double(size_t(1) << 30));
  return buf;
}

size_t parse_byte_size(const std::string& text, const std::string& option) {
  static const std::regex re(R"(^\s*([0-9]+(?:\.[0-9]*)?)\s*([A-Za-z]*)\s*$)");
  std::smatch m;
  LLAMA_TP_CHECK(std::regex_match(text, m, re), option, ": '", text,
                 "' is not a size (examples: 24GiB, 1.5GB, 800MiB, 4096)");
  std::string unit = m[2];
  for (char& ch : unit) ch = char(std::toupper(static_cast<unsigned char>(ch)));
  double scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  const char* prefixes = "KMGT";
  for (int i = 0; i < 4; ++i) {
    const std::string p(1, prefixes[i]);
    if (unit == p || unit == p + "I" || unit == p + "IB") scale = std::pow(1024.0, i + 1);
    if (unit == p + "B") scale = std::pow(1000.0, i + 1);
  }
  LLAMA_TP_CHECK(scale > 0, option, ": unknown unit '", std::string(m[2]), "' in '", text,
                 "' (use B, KiB, MiB, GiB, TiB or KB, MB, GB, TB)");
  const double bytes = std::stod(m[1]) * scale;
  LLAMA_TP_CHECK(bytes >= 1 && bytes < 1.8e19, option, ": '", text, "' must be a positive size");
  return size_t(bytes);
}

}  // namespace llama_tp

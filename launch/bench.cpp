#include "launch/bench.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "launch/distributed_model.h"
#include "runtime/error.h"

namespace llama_tp {
namespace {

using Clock = std::chrono::steady_clock;

struct Stats {
  double mean = 0, stddev = 0;
};

Stats stats_of(const std::vector<double>& v) {
  Stats s;
  for (double x : v) s.mean += x;
  s.mean /= double(v.size());
  for (double x : v) s.stddev += (x - s.mean) * (x - s.mean);
  s.stddev = v.size() > 1 ? std::sqrt(s.stddev / double(v.size() - 1)) : 0;
  return s;
}

std::vector<int32_t> random_tokens(int n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> pick(0, int32_t(std::min<int64_t>(vocab, 32000) - 1));
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = pick(rng);
  return t;
}

struct Row {
  std::string test;
  int n_prompt = 0, n_gen = 0, depth = 0;
  Stats tps;
  double gbs = 0, pct = 0;
};

}  // namespace

double decode_bytes_per_token(const Model& model, int depth) {
  const ModelWeights& w = model.weights();
  double bytes = double(w.nbytes() - w.embedding.nbytes());
  const ModelConfig& c = model.config();
  const double kv_row = double(model.plan().n_kv_heads_local) * c.head_dim * dtype_size(model.kv_cache_dtype());
  bytes += 2.0 * kv_row * c.n_layers * depth;
  return bytes;
}

namespace {

// Rank 0's part; the other ranks serve its steps (DistributedModel::coordinate).
void bench_on_rank0(Engine& e, DistributedModel& dm, const Options& o) {

  const ModelConfig& c = e.checkpoint.config;
  const int ctx = e.model->max_seq();
  const double bandwidth = o.bandwidth_gbs > 0 ? o.bandwidth_gbs : e.copy_bandwidth_gbs;
  std::vector<Row> rows;
  std::string timelines;

  for (int p : o.bench_prompt) {
    if (p == 0) continue;
    LLAMA_TP_CHECK(p <= ctx, "bench -p ", p, " exceeds the context size ", ctx, " (raise --ctx-size)");
    std::vector<int32_t> tokens = random_tokens(p, c.vocab_size, 1);
    dm.step_argmax(tokens, 0);  // warm-up
    std::vector<double> tps;
    for (int r = 0; r < o.bench_reps; ++r) {
      auto t0 = Clock::now();
      dm.step_argmax(tokens, 0);
      tps.push_back(p / std::chrono::duration<double>(Clock::now() - t0).count());
    }
    rows.push_back({"pp" + std::to_string(p), p, 0, 0, stats_of(tps), 0, 0});
  }
  for (int n : o.bench_gen) {
    for (int d : o.bench_depth) {
      if (n == 0) continue;
      LLAMA_TP_CHECK(d + n + 1 <= ctx, "bench -n ", n, " at depth ", d, " needs ", d + n + 1,
                     " positions but the context size is ", ctx, " (raise --ctx-size)");
      std::vector<int32_t> fill = random_tokens(std::max(d, 1), c.vocab_size, 2);
      std::vector<double> tps;
      int32_t next = 0;
      int pos = 0;
      for (int r = 0; r <= o.bench_reps; ++r) {  // the first run warms up
        next = dm.step_argmax(fill, 0);
        pos = int(fill.size());
        auto t0 = Clock::now();
        for (int i = 0; i < n; ++i) next = dm.step_argmax({next}, pos++);
        double s = std::chrono::duration<double>(Clock::now() - t0).count();
        if (r > 0) tps.push_back(n / s);
      }
      // LLAMA_TP_TIMELINE=1: one more step, its kernels on a timeline (CUDA; development aid).
      if (pos + 1 < ctx) {
        const std::string tl = e.backend->kernel_timeline([&] { next = dm.step_argmax({next}, pos++); });
        if (!tl.empty()) timelines += "tg" + std::to_string(n) + " at position " + std::to_string(pos - 1) + ", " + tl;
      }
      Row row{"tg" + std::to_string(n) + (d ? "@d" + std::to_string(d) : ""), 0, n, d, stats_of(tps), 0, 0};
      // Average depth over the run: the cache grows from d to d + n.
      const double bytes = decode_bytes_per_token(*e.model, d + n / 2);
      row.gbs = bytes * row.tps.mean / 1e9;
      row.pct = 100.0 * row.gbs / bandwidth;
      rows.push_back(row);
    }
  }

  const std::string dtype = e.model->weights().layers.at(0).wqkv.format();  // "bf16", "i8/g128"
  const std::string model_name = e.checkpoint.path;
  if (o.bench_output == "json") {
    nlohmann::json j;
    j["model"] = model_name;
    j["config"] = c.summary();
    j["backend"] = e.backend->name();
    j["tp"] = e.ranks.world;
    j["dtype"] = dtype;
    j["bandwidth_gbs"] = bandwidth;
    j["weight_bytes_per_rank"] = e.model->weights().nbytes();
    j["quant"] = e.quant.describe();
    j["memory_plan"] = e.memory_plans;  // one entry per rank
    for (const Row& r : rows)
      j["results"].push_back({{"test", r.test}, {"n_prompt", r.n_prompt}, {"n_gen", r.n_gen}, {"depth", r.depth},
                              {"tokens_per_s", r.tps.mean}, {"stddev", r.tps.stddev}, {"gbs", r.gbs},
                              {"percent_of_bandwidth", r.pct}});
    std::cout << j.dump(2) << std::endl;
    return;
  }
  std::printf("| model | backend | tp | dtype | test | t/s | GB/s | %% of %.0f GB/s |\n", bandwidth);
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : rows) {
    char bw[64] = "", pct[32] = "";
    if (r.n_gen) {
      std::snprintf(bw, sizeof bw, "%.0f", r.gbs);
      std::snprintf(pct, sizeof pct, "%.1f%%", r.pct);
    }
    std::printf("| %s | %s | %d | %s | %s | %.2f ± %.2f | %s | %s |\n", model_name.c_str(), e.backend->name().c_str(),
                e.ranks.world, dtype.c_str(), r.test.c_str(), r.tps.mean, r.tps.stddev, bw, pct);
  }
  if (!timelines.empty()) std::printf("\n%s", timelines.c_str());
  std::fflush(stdout);
}

}  // namespace

void run_bench(Engine& e, const Options& o) {
  DistributedModel dm(*e.model, *e.comm);
  dm.coordinate([&] { bench_on_rank0(e, dm, o); });
}

}  // namespace llama_tp

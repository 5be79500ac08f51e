#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/common_cuda.h"
#include "kernels/timeline_cuda.h"
#include "runtime/cuda_check.h"

namespace llama_tp::kernels {
namespace {

constexpr unsigned kCapacity = 1u << 18;  // stamps kept (a Llama-3-8B step takes ~50k blocks)
constexpr unsigned kMaxNodes = 1u << 16;  // node ids wrap: only a step's own nodes matter

struct State {
  TimelineStamp* stamps = nullptr;
  unsigned* count = nullptr;
  unsigned next_node = 0;
  std::vector<TimelineNode> nodes = std::vector<TimelineNode>(kMaxNodes);
};
State& state() {
  static State s;
  return s;
}

}  // namespace

bool timeline_on() {
  static const bool on = [] {
    const char* v = std::getenv("LLAMA_TP_TIMELINE");
    return v && v[0] == '1';
  }();
  return on;
}

void timeline_init() {
  if (!timeline_on()) return;  // off: not even the node table
  State& s = state();
  if (s.stamps) return;
  CUDA_CHECK(cudaMalloc(&s.stamps, sizeof(TimelineStamp) * kCapacity));
  CUDA_CHECK(cudaMalloc(&s.count, sizeof(unsigned)));
  CUDA_CHECK(cudaMemset(s.count, 0, sizeof(unsigned)));
}

Timeline timeline_node(const std::string& name, double bytes) {
  State& s = state();
  if (!s.stamps) return {};
  const unsigned node = s.next_node++ % kMaxNodes;
  s.nodes[node] = {name, bytes};
  return {s.stamps, s.count, kCapacity, node};
}

void timeline_reset() {
  State& s = state();
  if (!s.stamps) return;
  CUDA_CHECK(cudaDeviceSynchronize());
  CUDA_CHECK(cudaMemset(s.count, 0, sizeof(unsigned)));
  CUDA_CHECK(cudaDeviceSynchronize());
}

std::string timeline_report() {
  State& s = state();
  if (!s.stamps) return "";
  CUDA_CHECK(cudaDeviceSynchronize());
  unsigned n = 0;
  CUDA_CHECK(cudaMemcpy(&n, s.count, sizeof n, cudaMemcpyDeviceToHost));
  if (n > kCapacity) return "timeline: more blocks than stamps kept (" + std::to_string(n) + ")\n";
  std::vector<TimelineStamp> stamps(n);
  CUDA_CHECK(cudaMemcpy(stamps.data(), s.stamps, sizeof(TimelineStamp) * n, cudaMemcpyDeviceToHost));
  // LLAMA_TP_TIMELINE_DUMP=<file>: every block's stamps too, as CSV (ns from the first entry), for
  // questions the summary cannot answer (which blocks ended last, on which SM, beside what).
  if (const char* path = std::getenv("LLAMA_TP_TIMELINE_DUMP")) {
    if (FILE* f = std::fopen(path, "w")) {
      unsigned long long t0 = ~0ull;
      for (const TimelineStamp& t : stamps) t0 = std::min(t0, t.t[0]);
      std::fprintf(f, "node,name,block,sm,entry,waited,ready,end\n");
      for (const TimelineStamp& t : stamps)
        std::fprintf(f, "%u,%s,%u,%u,%lld,%lld,%lld,%lld\n", t.node, s.nodes[t.node].name.c_str(), t.block, t.sm,
                     (long long)(t.t[0] - t0), (long long)(t.t[1] - t0), (long long)(t.t[2] - t0), (long long)(t.t[3] - t0));
      std::fclose(f);
    } else {
      std::fprintf(stderr, "timeline: cannot write %s\n", path);
    }
  }
  return format_timeline(summarize_timeline(stamps, s.nodes));
}

}  // namespace llama_tp::kernels

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
  return format_timeline(summarize_timeline(stamps, s.nodes));
}

}  // namespace llama_tp::kernels

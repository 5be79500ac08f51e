#pragma once
// The decode-step kernel timeline (kernels/timeline_cuda.h records it on the GPU): the stamps and
// their summary, in plain C++ so that the arithmetic is tested without a GPU.
#include <string>
#include <vector>

namespace llama_tp::kernels {

struct TimelineStamp {
  unsigned long long t[4];  // ns: entry, waited (for the kernel before), input ready, end
  unsigned node, block;
  unsigned sm = 0;  // the SM the block ran on
};

// What a node is: its kind (nodes of one kind are summed) and the bytes it must read at least.
struct TimelineNode {
  std::string name;
  double bytes = 0;
};

// One kind of node, averaged over its nodes (count). Each node's share of the step is the time
// from the last block end of the node before (in end order) to its own last block end; the
// phases are counted from that same point in us (negative: before the node before had
// finished). `last_*` are the phases of the block that ended last.
struct TimelineKind {
  std::string name;
  int count = 0;
  double blocks = 0, bytes = 0, share_us = 0, sum_us = 0;
  double entry = 0, waited = 0, waited_last = 0, ready = 0, ready_last = 0, end_first = 0, end_median = 0;
  double last_entry = 0, last_waited = 0, last_ready = 0;
};

struct TimelineSummary {
  int nodes = 0;
  double span_us = 0;  // the first block entry to the last block end
  std::vector<TimelineKind> kinds;  // in the order their first node ends
};

// `nodes[s.node]` describes stamp s's node.
TimelineSummary summarize_timeline(const std::vector<TimelineStamp>& stamps, const std::vector<TimelineNode>& nodes);
std::string format_timeline(const TimelineSummary& summary);

}  // namespace llama_tp::kernels

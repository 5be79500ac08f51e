#include "kernels/timeline.h"

#include <algorithm>
#include <cstdio>
#include <map>

namespace llama_tp::kernels {
namespace {

// One node's blocks (ns).
struct NodeTimes {
  unsigned node = 0, blocks = 0;
  double entry = 0, waited = 0, waited_last = 0, ready = 0, ready_last = 0, end_first = 0, end_median = 0,
         end_last = 0;
  double last_entry = 0, last_waited = 0, last_ready = 0;  // the block that ended last
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

NodeTimes node_times(unsigned node, const std::vector<const TimelineStamp*>& blocks) {
  std::vector<double> e, w, r, end;
  for (const TimelineStamp* t : blocks)
    e.push_back(double(t->t[0])), w.push_back(double(t->t[1])), r.push_back(double(t->t[2])),
        end.push_back(double(t->t[3]));
  NodeTimes nt;
  nt.node = node;
  nt.blocks = unsigned(blocks.size());
  nt.entry = *std::min_element(e.begin(), e.end());
  nt.waited = median(w);
  nt.waited_last = *std::max_element(w.begin(), w.end());
  nt.ready = median(r);
  nt.ready_last = *std::max_element(r.begin(), r.end());
  nt.end_first = *std::min_element(end.begin(), end.end());
  nt.end_median = median(end);
  const size_t last = size_t(std::max_element(end.begin(), end.end()) - end.begin());
  nt.end_last = end[last];
  nt.last_entry = e[last], nt.last_waited = w[last], nt.last_ready = r[last];
  return nt;
}

}  // namespace

TimelineSummary summarize_timeline(const std::vector<TimelineStamp>& stamps, const std::vector<TimelineNode>& nodes) {
  TimelineSummary sum;
  std::map<unsigned, std::vector<const TimelineStamp*>> by_node;
  for (const TimelineStamp& t : stamps) by_node[t.node].push_back(&t);
  std::vector<NodeTimes> times;
  for (const auto& [node, blocks] : by_node) times.push_back(node_times(node, blocks));
  if (times.empty()) return sum;
  std::sort(times.begin(), times.end(), [](const NodeTimes& a, const NodeTimes& b) { return a.end_last < b.end_last; });
  sum.nodes = int(times.size());
  double first_entry = times.front().entry;
  for (const NodeTimes& nt : times) first_entry = std::min(first_entry, nt.entry);
  sum.span_us = (times.back().end_last - first_entry) / 1e3;

  double prev_end = times.front().entry;
  for (const NodeTimes& nt : times) {
    const TimelineNode info = nt.node < nodes.size() ? nodes[nt.node] : TimelineNode{"node " + std::to_string(nt.node)};
    auto it = std::find_if(sum.kinds.begin(), sum.kinds.end(), [&](const TimelineKind& k) { return k.name == info.name; });
    if (it == sum.kinds.end()) it = sum.kinds.insert(sum.kinds.end(), TimelineKind{info.name});
    TimelineKind& k = *it;
    auto us = [&](double t) { return (t - prev_end) / 1e3; };
    ++k.count;
    k.blocks += nt.blocks;
    k.bytes += info.bytes;
    k.sum_us += us(nt.end_last);
    k.entry += us(nt.entry), k.waited += us(nt.waited), k.waited_last += us(nt.waited_last);
    k.ready += us(nt.ready), k.ready_last += us(nt.ready_last);
    k.end_first += us(nt.end_first), k.end_median += us(nt.end_median);
    k.last_entry += us(nt.last_entry), k.last_waited += us(nt.last_waited), k.last_ready += us(nt.last_ready);
    prev_end = nt.end_last;
  }
  for (TimelineKind& k : sum.kinds) {  // sums to means
    const double c = k.count;
    k.blocks /= c;
    k.share_us = k.sum_us / c;
    for (double* v : {&k.entry, &k.waited, &k.waited_last, &k.ready, &k.ready_last, &k.end_first, &k.end_median,
                      &k.last_entry, &k.last_waited, &k.last_ready})
      *v /= c;
  }
  return sum;
}

std::string format_timeline(const TimelineSummary& s) {
  char line[512];
  std::snprintf(line, sizeof line,
                "timeline: %d kernels, %.1f us from the first block entry to the last block end; per kind, the mean "
                "node in us from the last block end of the node before\n",
                s.nodes, s.span_us);
  std::string out = line;
  out += "| kernel | nodes | blocks | share | sum | GB/s | entry | waited | waited last | ready | ready last | "
         "end first | end median | last block: entry, waited, ready |\n";
  out += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const TimelineKind& k : s.kinds) {
    const std::string gbs = k.bytes > 0 && k.sum_us > 0 ? std::to_string(int(k.bytes / k.sum_us / 1e3)) : "";
    std::snprintf(line, sizeof line,
                  "| %s | %d | %.0f | %.2f | %.1f | %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f, %.2f, "
                  "%.2f |\n",
                  k.name.c_str(), k.count, k.blocks, k.share_us, k.sum_us, gbs.c_str(), k.entry, k.waited,
                  k.waited_last, k.ready, k.ready_last, k.end_first, k.end_median, k.last_entry, k.last_waited,
                  k.last_ready);
    out += line;
  }
  return out;
}

}  // namespace llama_tp::kernels

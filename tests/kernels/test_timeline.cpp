// The decode-step timeline's summary (kernels/timeline.h) on hand-made stamps: shares from the
// last block end of the node before, phases relative to it, kinds averaged, GB/s from bytes.
#include <gtest/gtest.h>

#include "kernels/timeline.h"

namespace llama_tp::kernels {
namespace {

TimelineStamp stamp(unsigned node, unsigned block, double entry_us, double waited_us, double ready_us, double end_us) {
  auto ns = [](double us) { return (unsigned long long)(us * 1000 + 0.5); };
  return {{ns(entry_us), ns(waited_us), ns(ready_us), ns(end_us)}, node, block};
}

TEST(Timeline, SharesPhasesAndKinds) {
  // Two "gemv" nodes around one "attention" node; stamps out of order, as blocks finish.
  const std::vector<TimelineNode> nodes = {{"gemv", 4e6}, {"attention", 0}, {"gemv", 4e6}};
  const std::vector<TimelineStamp> stamps = {
      stamp(1, 0, 8, 10.5, 11, 14),  // attention: ends 14, 4 after gemv 0's last end
      stamp(0, 1, 0.5, 1, 2, 10),    // gemv 0: its last block ends at 10
      stamp(0, 0, 0, 1, 1.5, 9),
      stamp(2, 0, 12, 14.5, 15, 16),  // gemv 2: ends 16, 2 after the attention
      stamp(0, 2, 0.2, 3, 4, 9.5),
  };
  const TimelineSummary s = summarize_timeline(stamps, nodes);
  EXPECT_EQ(s.nodes, 3);
  EXPECT_NEAR(s.span_us, 16, 1e-9);
  ASSERT_EQ(s.kinds.size(), 2u);
  const TimelineKind& g = s.kinds[0];
  const TimelineKind& a = s.kinds[1];
  EXPECT_EQ(g.name, "gemv");
  EXPECT_EQ(a.name, "attention");
  EXPECT_EQ(g.count, 2);
  EXPECT_EQ(a.count, 1);
  // gemv 0 counts from its own first entry (0): share 10; gemv 2 from the attention's end (14): 2.
  EXPECT_NEAR(g.sum_us, 12, 1e-9);
  EXPECT_NEAR(g.share_us, 6, 1e-9);
  EXPECT_NEAR(g.blocks, 2, 1e-9);                   // (3 + 1) / 2
  EXPECT_NEAR(g.bytes / g.sum_us / 1e3, 666.6, 0.1);  // 8 MB in 12 us
  EXPECT_NEAR(a.share_us, 4, 1e-9);
  EXPECT_NEAR(a.entry, -2, 1e-9);   // entered before gemv 0 had finished
  EXPECT_NEAR(a.waited, 0.5, 1e-9);
  EXPECT_NEAR(a.ready, 1, 1e-9);
  // gemv 0's medians and maxima: waited {1, 1, 3}, ready {1.5, 2, 4}, ends {9, 9.5, 10}; gemv 2 is
  // relative to 14. Means of the two.
  EXPECT_NEAR(g.waited, (1 + 0.5) / 2, 1e-9);
  EXPECT_NEAR(g.waited_last, (3 + 0.5) / 2, 1e-9);
  EXPECT_NEAR(g.ready_last, (4 + 1) / 2.0, 1e-9);
  EXPECT_NEAR(g.end_first, (9 + 2) / 2.0, 1e-9);
  EXPECT_NEAR(g.end_median, (9.5 + 2) / 2, 1e-9);
  // The last-ending block of gemv 0 is block 1 (entry 0.5, waited 1, ready 2).
  EXPECT_NEAR(g.last_entry, (0.5 + -2) / 2, 1e-9);
  EXPECT_NEAR(g.last_ready, (2 + 1) / 2.0, 1e-9);
  const std::string table = format_timeline(s);
  EXPECT_NE(table.find("| gemv | 2 | 2 | 6.00 | 12.0 | 666 |"), std::string::npos) << table;
  EXPECT_NE(table.find("| attention | 1 | 1 | 4.00 | 4.0 |  |"), std::string::npos) << table;
}

TEST(Timeline, EmptyAndUnknownNodes) {
  EXPECT_EQ(summarize_timeline({}, {}).nodes, 0);
  const TimelineSummary s = summarize_timeline({stamp(7, 0, 0, 1, 2, 3)}, {});
  ASSERT_EQ(s.kinds.size(), 1u);
  EXPECT_EQ(s.kinds[0].name, "node 7");
  EXPECT_NEAR(s.kinds[0].share_us, 3, 1e-9);
}

}  // namespace
}  // namespace llama_tp::kernels

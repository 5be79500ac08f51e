#pragma once
// The BPE merge loop shared by the tokenizers: repeatedly merge the adjacent pair with the
// lowest priority value (leftmost on ties), as HF tokenizers' Word::merge_all (priority = merge
// rank) and llama2.c's encode (priority = -score) do. A heap over a linked list makes it
// O(n log n), so one long "word" (SentencePiece-style text has no pre-tokenizer) stays fast.
#include <cstdint>
#include <optional>
#include <queue>
#include <vector>

namespace llama_tp {

struct PairMerge {
  double priority;   // lower merges first
  int32_t merged_id;
};

// lookup(left_id, right_id) -> std::optional<PairMerge>.
template <class Lookup>
void merge_pairs(std::vector<int32_t>& ids, const Lookup& lookup) {
  if (ids.size() < 2) return;
  struct Symbol {
    int32_t id;
    int prev, next;  // -1 at the ends
    bool alive;
  };
  struct Candidate {
    double priority;
    int pos;  // index of the left symbol; positions keep the text order
    int32_t left_id, right_id, merged_id;
    bool operator<(const Candidate& o) const {  // std::priority_queue pops the largest
      if (priority != o.priority) return priority > o.priority;
      return pos > o.pos;
    }
  };

  const int n = static_cast<int>(ids.size());
  std::vector<Symbol> symbols(n);
  for (int i = 0; i < n; ++i) symbols[i] = {ids[i], i - 1, i + 1 < n ? i + 1 : -1, true};

  std::priority_queue<Candidate> queue;
  auto push_pair = [&](int left) {
    int right = symbols[left].next;
    if (right < 0) return;
    if (auto m = lookup(symbols[left].id, symbols[right].id))
      queue.push({m->priority, left, symbols[left].id, symbols[right].id, m->merged_id});
  };
  for (int i = 0; i + 1 < n; ++i) push_pair(i);

  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    // Skip entries made stale by an earlier merge of either symbol.
    if (!left.alive || left.next < 0 || left.id != top.left_id) continue;
    Symbol& right = symbols[left.next];
    if (right.id != top.right_id) continue;

    left.id = top.merged_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(top.pos);
  }

  ids.clear();
  for (int i = 0; i >= 0; i = symbols[i].next) ids.push_back(symbols[i].id);
}

}  // namespace llama_tp

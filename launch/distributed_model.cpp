#include "launch/distributed_model.h"

#include <cstring>

#include "runtime/error.h"

namespace llama_tp {

std::vector<float> DistributedModel::run(const StepHeader& h, std::vector<int32_t>& tokens) {
  comm_.broadcast(tokens.data(), tokens.size() * sizeof(int32_t), 0);
  if (h.wanted != LogitsWanted::LastArgmax) {
    const bool all = h.wanted == LogitsWanted::All;
    std::vector<float> local = model_.forward(tokens.data(), h.n_tokens, h.pos0, all);
    return model_.gather_logits(local, all ? h.n_tokens : 1);
  }

  // Greedy: each rank takes the argmax of its vocab slice on the device and sends its best
  // (logit, global id) instead of the slice.
  const Model::TokenChoice mine = model_.forward_argmax(tokens.data(), h.n_tokens, h.pos0);
  std::vector<Model::TokenChoice> all_best(comm_.rank() == 0 ? comm_.size() : 0);
  comm_.gather(&mine, sizeof mine, all_best.data(), std::vector<size_t>(comm_.size(), sizeof mine), 0);
  if (comm_.rank() != 0) return {};
  Model::TokenChoice best = all_best[0];
  for (const Model::TokenChoice& b : all_best)  // ranks hold ascending vocab slices: first max wins ties
    if (b.logit > best.logit) best = b;
  return {float(best.id)};
}

std::vector<float> DistributedModel::step(const std::vector<int32_t>& tokens, int pos0, LogitsWanted wanted) {
  LLAMA_TP_CHECK(comm_.rank() == 0, "only rank 0 drives the model");
  LLAMA_TP_CHECK(!tokens.empty(), "a step needs at least one token");
  StepHeader h{int32_t(tokens.size()), pos0, wanted};
  comm_.broadcast(&h, sizeof h, 0);
  std::vector<int32_t> copy = tokens;
  return run(h, copy);
}

int32_t DistributedModel::step_argmax(const std::vector<int32_t>& tokens, int pos0) {
  return int32_t(step(tokens, pos0, LogitsWanted::LastArgmax).at(0));
}

void DistributedModel::finish() {
  if (finished_ || comm_.rank() != 0) return;
  finished_ = true;
  StepHeader h{0, 0, LogitsWanted::Last};
  comm_.broadcast(&h, sizeof h, 0);
}

void DistributedModel::coordinate(const std::function<void()>& drive) {
  if (comm_.rank() != 0) return serve();
  drive();
  finish();
}

void DistributedModel::serve() {
  for (;;) {
    StepHeader h;
    comm_.broadcast(&h, sizeof h, 0);
    if (h.n_tokens == 0) return;
    std::vector<int32_t> tokens(static_cast<size_t>(h.n_tokens));
    run(h, tokens);
  }
}

}  // namespace llama_tp

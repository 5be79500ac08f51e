#pragma once
// The rank-0 coordinator's handle on the model spread over all ranks. Rank 0 decides every
// step (which tokens, at which position) and broadcasts it; the other ranks sit in serve()
// and run the same step on their shards; logits come back to rank 0 by a gather.
#include <cstdint>
#include <functional>
#include <vector>

#include "parallel/communicator.h"
#include "runtime/model.h"

namespace llama_tp {

enum class LogitsWanted : int32_t { All = 0, Last = 1, LastArgmax = 2 };

class DistributedModel {
 public:
  DistributedModel(Model& model, Communicator& comm) : model_(model), comm_(comm) {}

  // Rank 0 only. Runs tokens at positions pos0.. on every rank. Returns full-vocabulary logits
  // ([n, vocab] for All, [1, vocab] for Last), or for LastArgmax the single best token id.
  std::vector<float> step(const std::vector<int32_t>& tokens, int pos0, LogitsWanted wanted);
  int32_t step_argmax(const std::vector<int32_t>& tokens, int pos0);
  // Rank 0 only: releases the other ranks from serve().
  void finish();
  // Ranks > 0: follows rank 0's steps until finish().
  void serve();
  // The whole protocol: rank 0 runs `drive` (which calls step()) and then releases the others;
  // ranks > 0 serve. An exception in `drive` skips finish(): main's error path aborts the job.
  void coordinate(const std::function<void()>& drive);

  Model& model() { return model_; }
  Communicator& comm() { return comm_; }

 private:
  struct StepHeader {
    int32_t n_tokens = 0;  // 0 ends serve()
    int32_t pos0 = 0;
    LogitsWanted wanted = LogitsWanted::Last;
  };
  std::vector<float> run(const StepHeader& h, std::vector<int32_t>& tokens);

  Model& model_;
  Communicator& comm_;
  bool finished_ = false;
};

}  // namespace llama_tp

#pragma once
// Start-up shared by `llama_tp run` and `llama_tp bench`: open the checkpoint (or build a
// dummy one), pick the backend and GPU, make the communicator and the shard plan, load this
// rank's weights, and on rank 0 the tokenizer.
#include <memory>
#include <string>

#include "launch/memory_plan.h"
#include "launch/options.h"
#include "parallel/communicator.h"
#include "parallel/runtime_env.h"
#include "parallel/shard_plan.h"
#include "runtime/backend.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"

namespace llama_tp {

struct Engine {
  RankInfo ranks;
  Checkpoint checkpoint;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Communicator> comm;
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;  // rank 0, when the model has one
  int gpu = -1;
  double load_seconds = 0;
  QuantSpec quant;                   // how the linear layers are stored (--quant)
  MemoryPlan memory_plan;            // this rank's, checked before loading
  nlohmann::json memory_plans;       // rank 0: every rank's plan (bench JSON)
  double copy_bandwidth_gbs = 0;     // bench, rank 0: measured before the weights were loaded
};

// --quant / --quant-group for this checkpoint (auto: int8 for llama2.c version 2 files).
QuantSpec choose_quant(const Options& o, const Checkpoint& checkpoint);

// Device copy bandwidth (bytes read + written per second) through `backend`, with buffers of
// 1 GiB on a GPU (far past its L2). Call it before the model takes the device's memory.
double measure_copy_bandwidth_gbs(Backend& backend);

// Opens a model folder / .bin file, or builds dummy weights for a named shape or a config.
Checkpoint open_model(const Options& o);
// Where the tokenizer of a model lives ("" when it has none).
std::string find_tokenizer(const std::string& model_path);

Engine start_engine(const Options& o, const RankInfo& ranks, bool want_tokenizer);

// Prints to stderr on rank 0 only (or every rank with --verbose when `all_ranks`).
void log_line(const Engine& e, const std::string& line, bool all_ranks = false, bool verbose = false);

}  // namespace llama_tp

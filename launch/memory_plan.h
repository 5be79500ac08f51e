#pragma once
// The memory plan of one rank, computed from the config and the options before anything is
// loaded: the bytes its weights (by dtype and quantization), its KV cache, its activation
// buffers and its scratch will take on its device, against what the device has (free memory,
// or --gpu-memory-limit / --memory-limit). When the plan does not fit, start-up fails with one
// message that names the numbers and what would fit: int8, more ranks, a smaller context.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "launch/options.h"
#include "parallel/communicator.h"
#include "parallel/runtime_env.h"
#include "runtime/backend.h"
#include "runtime/config.h"
#include "runtime/linear_weight.h"
#include "runtime/tensor.h"

namespace llama_tp {

struct MemoryPlanInputs {
  ModelConfig config;
  int world = 1, rank = 0;
  Device device = Device::CPU;
  DType checkpoint_dtype = DType::F32;  // what is read from the file (staged before conversion)
  DType weight_dtype = DType::F32;      // how the backend stores float weights (CPU: f32)
  DType kv_dtype = DType::F32;
  QuantSpec quant;
  int ctx = 0;               // KV cache positions
  int batch_tokens = 2048;   // prompt tokens per forward pass (sizes the activation buffers)
};

struct MemoryPlan {
  MemoryPlanInputs inputs;
  size_t weights = 0;       // resident: embedding and norms, linear layers (maybe int8 + scales)
  size_t kv_cache = 0;      // K and V of every layer for ctx positions
  size_t activations = 0;   // the model's buffers for batch_tokens tokens (logits included)
  size_t workspace = 0;     // backend scratch: operand conversion, int8 dequant tile, attention, cuBLAS
  size_t load_staging = 0;  // transient while loading: a shard in the checkpoint's dtype before conversion
  size_t available = 0;     // what the device offers this rank; 0: no limit known
  std::string available_from;  // "--gpu-memory-limit", "free on the GPU", ...

  // Loading needs weights + staging; running needs weights + KV cache + activations + workspace.
  size_t peak() const;
  bool fits() const { return available == 0 || peak() <= available; }
  // "weights 18.6 GiB (bf16, linear int8 (groups of 128)), KV cache 320 MiB (4096 positions, bf16), ..."
  std::string describe() const;
  nlohmann::json to_json() const;
};

// The plan for `in` (available left at 0).
MemoryPlan plan_memory(const MemoryPlanInputs& in);
// The largest context (positions, at most in.ctx) whose plan fits in `available`; 0 if none.
int largest_fitting_context(const MemoryPlanInputs& in, size_t available);
// Throws one llama_tp::Error naming the numbers and what would fit, unless plan.fits().
void require_fits(const MemoryPlan& plan);

// This rank's plan at start-up, with what its device offers: on CUDA the GPU's free memory
// (split evenly between the ranks of this node that share the GPU), capped by
// --gpu-memory-limit (or --memory-limit); on the CPU, --memory-limit or no limit. Call it on
// every rank before any rank allocates (the free memory is read here).
MemoryPlan plan_rank_memory(const Options& o, const ModelConfig& config, Backend& backend, const RankInfo& ranks,
                            int ctx, const QuantSpec& quant);
// Every rank's plan summary, on rank 0 (an empty array elsewhere); every rank must call it.
nlohmann::json gather_memory_plans(Communicator& comm, const MemoryPlan& mine);

// "24.0 GiB", "800 MiB", "512 B"
std::string format_bytes(size_t bytes);
// "24GiB", "24 GiB", "1.5GB", "800MiB", "800M", "4096" (bytes); K/M/G/T are binary (as
// llama.cpp's and nvidia-smi's MiB), KB/MB/GB/TB decimal. Throws naming `option` on anything else.
size_t parse_byte_size(const std::string& text, const std::string& option);

}  // namespace llama_tp

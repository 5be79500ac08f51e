#pragma once
// One rank's share of a Llama model: its weight shards on the backend's device, its KV cache,
// and the forward pass (Megatron-style: column-parallel qkv and gate/up, row-parallel o and
// down, one all-reduce after each row-parallel product, vocab-parallel lm_head).
#include <array>
#include <memory>
#include <vector>

#include "parallel/communicator.h"
#include "parallel/shard_plan.h"
#include "runtime/backend.h"
#include "runtime/config.h"
#include "runtime/kv_cache.h"
#include "runtime/weight_source.h"

namespace llama_tp {

// Linear-layer weights are LinearWeights: in the backend's float dtype, or int8 (--quant int8).
struct LayerWeights {
  Tensor attn_norm;   // [dim]
  LinearWeight wqkv;  // [(q + k + v local heads) * head_dim, dim]: column shard of q, k, v fused
  LinearWeight wo;    // [dim, q local heads * head_dim]: row shard
  Tensor ffn_norm;    // [dim]
  LinearWeight w13;   // [2 * ffn_local, dim]: gate rows then up rows, column shard
  LinearWeight w2;    // [dim, ffn_local]: row shard
};

struct ModelWeights {
  Tensor embedding;      // [vocab, dim], replicated
  std::vector<LayerWeights> layers;
  Tensor final_norm;     // [dim]
  LinearWeight lm_head;  // [vocab_local, dim]: this rank's vocab rows
  size_t nbytes() const;
};

// Reads this rank's slices from `source` and uploads them through `backend`; the linear layers
// (not the embedding and the norms) stored as `quant` asks, quantized shard by shard.
ModelWeights load_weights(const ModelConfig& config, const ShardPlan& plan, const WeightSource& source,
                          Backend& backend, const QuantSpec& quant = QuantSpec::none());

class Model {
 public:
  // max_seq: KV cache capacity (the context size). max_batch_tokens: prompt tokens run per
  // forward call (longer prompts are processed in chunks of this size).
  Model(ModelConfig config, ShardPlan plan, ModelWeights weights, Backend& backend, Communicator& comm,
        int max_seq, int max_batch_tokens = 512);

  // Runs n_tokens tokens at positions pos0 .. pos0+n_tokens-1 (appending to the KV cache) and
  // returns this rank's logits slice on the host: rows [n_tokens, vocab_local] when
  // all_logits, else only the last token's [1, vocab_local]. Every rank must call it with the
  // same arguments. Token ids must already be checked against the vocabulary.
  std::vector<float> forward(const int32_t* tokens, int n_tokens, int pos0, bool all_logits);

  // Greedy choice: runs the tokens like forward() and returns the largest logit of the last
  // token within this rank's vocab slice, with its global token id (the first on ties). The
  // argmax runs on the device: only these 8 bytes come back to the host.
  struct TokenChoice {
    float logit = 0;
    int32_t id = 0;
  };
  TokenChoice forward_argmax(const int32_t* tokens, int n_tokens, int pos0);

  // One-token steps are replayed as a graph (CUDA graphs) when the backend records graphs, the
  // all-reduces run on its stream (nccl, or one rank) and graphs are enabled: by default, unless
  // the environment has LLAMA_TP_NO_GRAPHS=1.
  void set_graphs_enabled(bool on);
  // RoPE inverse frequencies: rounded to a 16-bit checkpoint's dtype (the default, as the
  // reference logits were made) or kept in float32 (--rope-freqs f32).
  enum class RopeFrequencies { Checkpoint, Float32 };
  void set_rope_frequencies(RopeFrequencies mode);
  bool graphs_enabled() const { return graphs_enabled_; }
  bool graphs_in_use() const;

  // Joins the ranks' vocab slices (rows of `local`) into full rows on rank 0 (other ranks get {}).
  std::vector<float> gather_logits(const std::vector<float>& local, int rows);

  const ModelConfig& config() const { return config_; }
  const ShardPlan& plan() const { return plan_; }
  const ModelWeights& weights() const { return weights_; }
  const KvCache& kv_cache() const { return kv_; }
  DType kv_cache_dtype() const { return backend_.kv_dtype(); }
  int max_seq() const { return max_seq_; }
  Backend& backend() { return backend_; }

 private:
  enum class StepOutput { Logits = 0, Argmax = 1 };  // what a one-token step leaves on the device

  void ensure_buffers(int n_tokens);
  // logits_ with at least `rows` rows (it has one until all-position logits are asked for).
  void ensure_logits(int rows);
  // Embedding and every layer for n tokens (ids on the device) at pos0 (or kStepPos); leaves the
  // final-normed rows in h_.
  void run_layers(const Tensor& ids, int n, int pos0);
  // Prompt chunks through run_layers; returns the size of the last chunk (its rows are in h_).
  int run_chunks(const int32_t* tokens, int n_tokens, int pos0, std::vector<float>* all_logits);
  // logits_ row(s) from h_ rows [first, first + rows), and for Argmax the device argmax of row 0.
  void run_head(int first, int rows, StepOutput out);
  // One token through the step slot: replays the recorded graph when it can, else queues the ops.
  void decode_step(int32_t token, int pos, StepOutput out);
  void queue_step(StepOutput out);
  bool capture_step(StepOutput out);
  // Waits for the step's work, the NCCL collectives included (a failed peer throws, never hangs).
  void finish_step();
  void check_positions(int n_tokens, int pos0) const;
  void all_reduce(Tensor& t);

  ModelConfig config_;
  ShardPlan plan_;
  ModelWeights weights_;
  Backend& backend_;
  Communicator& comm_;
  int max_seq_;
  int max_batch_tokens_;
  AttentionShape attn_;
  KvCache kv_;
  Tensor inv_freq_;

  // Activation buffers for up to buffer_tokens_ tokens.
  int buffer_tokens_ = 0;
  // The residual stream alternates between stream_[0] and stream_[1] (a fused kernel reads one
  // while writing the other); after run_layers it is stream_[current_] + proj_.
  Tensor ids_, stream_[2], h_, qkv_, att_, proj_, gate_up_, ffn_, logits_;
  int current_ = 0;
  Tensor best_;  // i32 [2]: argmax id, then the f32 bits of its logit (one 8-byte download)

  // Decode-step graphs, one per StepOutput; a step runs once without recording first (so that
  // workspaces and NCCL connections exist before a capture, which may not allocate).
  bool graphs_enabled_ = true;
  std::array<std::unique_ptr<Backend::Graph>, 2> graphs_;
  std::array<bool, 2> warm_{};
};

}  // namespace llama_tp

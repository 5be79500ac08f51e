#pragma once
// Token sampling on the coordinator (rank 0 only, so every rank sees the same token).
// Order, as in llama.cpp: penalties -> greedy if temperature <= 0 -> top-k -> top-p -> min-p
// -> temperature -> draw. Seeded: the same seed and logits give the same tokens.
#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

namespace llama_tp {

struct SamplerParams {
  float temperature = 0.8f;  // <= 0: greedy
  int top_k = 40;            // <= 0: off
  float top_p = 0.95f;       // >= 1: off
  float min_p = 0.05f;       // <= 0: off
  float repeat_penalty = 1.0f;     // 1: off (llama.cpp's --repeat-penalty)
  int repeat_last_n = 64;          // window for all penalties; -1: whole history
  float frequency_penalty = 0.0f;  // OpenAI-style
  float presence_penalty = 0.0f;
  uint64_t seed = 0xC0FFEE;
};

class Sampler {
 public:
  explicit Sampler(SamplerParams params);
  // Picks the next token from one row of logits (modified in place by penalties).
  int32_t sample(float* logits, int vocab);
  // Records a token (prompt or generated) in the penalty history.
  void accept(int32_t token);
  const SamplerParams& params() const { return params_; }

 private:
  void apply_penalties(float* logits, int vocab) const;

  SamplerParams params_;
  std::mt19937_64 rng_;
  std::vector<int32_t> history_;
  std::vector<std::pair<float, int32_t>> candidates_;
};

}  // namespace llama_tp

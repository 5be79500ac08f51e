#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>

#include "kernels/argmax.h"
#include "runtime/error.h"

namespace llama_tp {

Sampler::Sampler(SamplerParams params) : params_(params), rng_(params.seed) {
  LLAMA_TP_CHECK(params_.top_p > 0, "--top-p must be > 0, got ", params_.top_p);
  LLAMA_TP_CHECK(params_.min_p < 1, "--min-p must be < 1, got ", params_.min_p);
  LLAMA_TP_CHECK(params_.repeat_penalty > 0, "--repeat-penalty must be > 0, got ", params_.repeat_penalty);
}

void Sampler::accept(int32_t token) { history_.push_back(token); }

void Sampler::apply_penalties(float* logits, int vocab) const {
  const bool any = params_.repeat_penalty != 1.0f || params_.frequency_penalty != 0.0f || params_.presence_penalty != 0.0f;
  if (!any || history_.empty() || params_.repeat_last_n == 0) return;
  size_t window = params_.repeat_last_n < 0 ? history_.size() : std::min<size_t>(history_.size(), params_.repeat_last_n);
  std::unordered_map<int32_t, int> counts;
  for (size_t i = history_.size() - window; i < history_.size(); ++i) ++counts[history_[i]];
  for (auto [token, count] : counts) {
    if (token < 0 || token >= vocab) continue;
    float& l = logits[token];
    // CTRL-style repetition penalty: shrink positive logits, grow negative ones.
    l = l > 0 ? l / params_.repeat_penalty : l * params_.repeat_penalty;
    l -= float(count) * params_.frequency_penalty + params_.presence_penalty;
  }
}

int32_t Sampler::sample(float* logits, int vocab) {
  apply_penalties(logits, vocab);
  if (params_.temperature <= 0.0f) return kernels::argmax_cpu(logits, vocab);

  candidates_.resize(vocab);
  for (int i = 0; i < vocab; ++i) candidates_[i] = {logits[i], i};
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  size_t n = candidates_.size();
  if (params_.top_k > 0 && size_t(params_.top_k) < n) {
    std::partial_sort(candidates_.begin(), candidates_.begin() + params_.top_k, candidates_.end(), by_logit);
    n = params_.top_k;
  } else {
    std::sort(candidates_.begin(), candidates_.end(), by_logit);
  }
  // Softmax over the survivors (sorted, so [0] is the max).
  std::vector<double> probs(n);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += probs[i] = std::exp(double(candidates_[i].first - candidates_[0].first));
  for (double& p : probs) p /= sum;
  if (params_.top_p < 1.0f) {
    double cum = 0;
    size_t keep = n;
    for (size_t i = 0; i < n; ++i) {
      cum += probs[i];
      if (cum >= params_.top_p) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
  }
  if (params_.min_p > 0.0f) {
    size_t keep = 1;
    while (keep < n && probs[keep] >= params_.min_p * probs[0]) ++keep;
    n = keep;
  }
  // Temperature last, on the kept candidates.
  std::vector<double> weights(n);
  for (size_t i = 0; i < n; ++i)
    weights[i] = std::exp(double(candidates_[i].first - candidates_[0].first) / params_.temperature);
  std::discrete_distribution<size_t> pick(weights.begin(), weights.end());
  return candidates_[pick(rng_)].second;
}

}  // namespace llama_tp

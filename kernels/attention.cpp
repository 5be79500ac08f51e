#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <vector>

namespace llama_tp::kernels {

void kv_write_cpu(float* cache, const float* src, int n_tokens, int n_kv_heads, int head_dim,
                  int src_stride, int pos0, int max_seq) {
  for (int t = 0; t < n_tokens; ++t)
    for (int h = 0; h < n_kv_heads; ++h)
      std::memcpy(cache + (size_t(h) * max_seq + pos0 + t) * head_dim,
                  src + size_t(t) * src_stride + size_t(h) * head_dim, size_t(head_dim) * sizeof(float));
}

void attention_cpu(float* out, const float* q, int q_stride, const float* k_cache,
                   const float* v_cache, int n_tokens, int n_heads, int n_kv_heads, int head_dim,
                   int pos0, int max_seq) {
  const int group = n_heads / n_kv_heads;
  const float scale = 1.0f / std::sqrt(float(head_dim));
  std::vector<float> scores(size_t(pos0) + n_tokens);
  for (int t = 0; t < n_tokens; ++t) {
    const int n_keys = pos0 + t + 1;
    for (int h = 0; h < n_heads; ++h) {
      const float* qh = q + size_t(t) * q_stride + size_t(h) * head_dim;
      const float* kh = k_cache + size_t(h / group) * max_seq * head_dim;
      const float* vh = v_cache + size_t(h / group) * max_seq * head_dim;
      float max_score = -INFINITY;
      for (int p = 0; p < n_keys; ++p) {
        float s = 0;
        for (int d = 0; d < head_dim; ++d) s += qh[d] * kh[size_t(p) * head_dim + d];
        scores[p] = s * scale;
        max_score = std::max(max_score, scores[p]);
      }
      double sum = 0;
      for (int p = 0; p < n_keys; ++p) {
        scores[p] = std::exp(scores[p] - max_score);
        sum += scores[p];
      }
      float* o = out + size_t(t) * n_heads * head_dim + size_t(h) * head_dim;
      std::fill(o, o + head_dim, 0.0f);
      const float inv = float(1.0 / sum);
      for (int p = 0; p < n_keys; ++p) {
        const float w = scores[p] * inv;
        const float* vp = vh + size_t(p) * head_dim;
        for (int d = 0; d < head_dim; ++d) o[d] += w * vp[d];
      }
    }
  }
}

}  // namespace llama_tp::kernels

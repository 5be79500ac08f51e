#include "kernels/common_cuda.h"
#include "kernels/rope_cuda.h"
#include "runtime/cuda_check.h"

namespace llama_tp::kernels {
namespace {

// One block per token; each thread rotates (head, i) pairs. sincosf is the accurate one (no
// fast math): positions reach thousands of radians.
__global__ void rope_kernel(float* qkv, int n_rot_heads, int head_dim, int row_stride, int pos0,
                            const int32_t* pos_dev, const float* inv_freq) {
  const int t = blockIdx.x, half = head_dim / 2;
  const int pos = (pos_dev ? *pos_dev : pos0) + t;
  float* row = qkv + size_t(t) * row_stride;
  for (int idx = threadIdx.x; idx < n_rot_heads * half; idx += blockDim.x) {
    const int h = idx / half, i = idx % half;
    float s, c;
    sincosf(float(pos) * inv_freq[i], &s, &c);
    float* head = row + size_t(h) * head_dim;
    const float a = head[i], b = head[i + half];
    head[i] = a * c - b * s;
    head[i + half] = b * c + a * s;
  }
}

// rope_kernel, and the rotated k heads and the v heads written to the caches in the same pass
// (the same arithmetic as rope_kernel followed by kv_append).
template <typename T>
__global__ void rope_kv_append_kernel(float* qkv, T* k_cache, T* v_cache, int n_heads, int n_kv_heads,
                                      int head_dim, int row_stride, int pos0, const int32_t* pos_dev,
                                      const float* inv_freq, int max_seq) {
  const int t = blockIdx.x, half = head_dim / 2;
  const int pos = (pos_dev ? *pos_dev : pos0) + t;
  float* row = qkv + size_t(t) * row_stride;
  for (int idx = threadIdx.x; idx < (n_heads + n_kv_heads) * half; idx += blockDim.x) {
    const int h = idx / half, i = idx % half;
    float s, c;
    sincosf(float(pos) * inv_freq[i], &s, &c);
    float* head = row + size_t(h) * head_dim;
    const float a = head[i], b = head[i + half];
    const float ra = a * c - b * s, rb = b * c + a * s;
    head[i] = ra;
    head[i + half] = rb;
    if (h >= n_heads) {
      T* dst = k_cache + (size_t(h - n_heads) * max_seq + pos) * head_dim;
      dst[i] = from_f32<T>(ra);
      dst[i + half] = from_f32<T>(rb);
    }
  }
  const float* v = row + size_t(n_heads + n_kv_heads) * head_dim;
  for (int idx = threadIdx.x; idx < n_kv_heads * head_dim; idx += blockDim.x) {
    const int h = idx / head_dim, d = idx % head_dim;
    v_cache[(size_t(h) * max_seq + pos) * head_dim + d] = from_f32<T>(v[idx]);
  }
}

}  // namespace

void rope_qk_cuda(float* qkv, int n_tokens, int n_heads, int n_kv_heads, int head_dim, int row_stride, int pos0,
                  const int32_t* pos_dev, const float* inv_freq, cudaStream_t stream) {
  if (n_tokens == 0) return;
  // q heads and k heads are adjacent in the row, so they rotate as one run of heads.
  rope_kernel<<<n_tokens, 256, 0, stream>>>(qkv, n_heads + n_kv_heads, head_dim, row_stride, pos0, pos_dev,
                                            inv_freq);
  CUDA_CHECK_LAUNCH();
}

void rope_kv_append_cuda(float* qkv, void* k_cache, void* v_cache, DType cache_dtype, int n_tokens, int n_heads,
                         int n_kv_heads, int head_dim, int row_stride, int pos0, const int32_t* pos_dev,
                         const float* inv_freq, int max_seq, cudaStream_t stream) {
  if (n_tokens == 0) return;
  dispatch_float(cache_dtype, [&](auto tag) {
    using T = decltype(tag);
    rope_kv_append_kernel<T><<<n_tokens, 256, 0, stream>>>(qkv, static_cast<T*>(k_cache), static_cast<T*>(v_cache),
                                                           n_heads, n_kv_heads, head_dim, row_stride, pos0, pos_dev,
                                                           inv_freq, max_seq);
  });
  CUDA_CHECK_LAUNCH();
}

}  // namespace llama_tp::kernels

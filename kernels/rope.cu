#include "kernels/common_cuda.h"
#include "kernels/rope_cuda.h"
#include "runtime/cuda_check.h"

namespace llama_tp::kernels {
namespace {

// One block per token; each thread rotates (head, i) pairs. sincosf is the accurate one (no
// fast math): positions reach thousands of radians.
__global__ void rope_kernel(float* qkv, int n_rot_heads, int head_dim, int row_stride, int pos0,
                            const float* inv_freq) {
  const int t = blockIdx.x, half = head_dim / 2;
  float* row = qkv + size_t(t) * row_stride;
  for (int idx = threadIdx.x; idx < n_rot_heads * half; idx += blockDim.x) {
    const int h = idx / half, i = idx % half;
    float s, c;
    sincosf(float(pos0 + t) * inv_freq[i], &s, &c);
    float* head = row + size_t(h) * head_dim;
    const float a = head[i], b = head[i + half];
    head[i] = a * c - b * s;
    head[i + half] = b * c + a * s;
  }
}

}  // namespace

void rope_qk_cuda(float* qkv, int n_tokens, int n_heads, int n_kv_heads, int head_dim,
                  int row_stride, int pos0, const float* inv_freq, cudaStream_t stream) {
  if (n_tokens == 0) return;
  // q heads and k heads are adjacent in the row, so they rotate as one run of heads.
  rope_kernel<<<n_tokens, 256, 0, stream>>>(qkv, n_heads + n_kv_heads, head_dim, row_stride, pos0, inv_freq);
  CUDA_CHECK_LAUNCH();
}

}  // namespace llama_tp::kernels

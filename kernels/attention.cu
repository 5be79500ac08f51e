#include <cmath>

#include "kernels/attention_cuda.h"
#include "kernels/common_cuda.h"
#include "runtime/cuda_check.h"

namespace llama_tp::kernels {
namespace {

constexpr int kTile = 32;          // keys per shared-memory tile (one per lane in the softmax)
constexpr int kThreads = 256;
constexpr int kTargetRows = 32;    // query rows (token, head) per block in prefill
constexpr int kMinSplitKeys = 64;  // a key split shorter than this is not worth a block
constexpr int kBlocksPerSm = 4;    // split keys until the grid has this many blocks per SM

// ---- KV append ---------------------------------------------------------------------------

template <typename T>
__global__ void kv_append_kernel(T* k_cache, T* v_cache, const float* qkv, int row_stride, int n_heads,
                                 int n_kv_heads, int head_dim, int pos0, int max_seq) {
  const int t = blockIdx.x;
  const float* k = qkv + size_t(t) * row_stride + size_t(n_heads) * head_dim;
  const float* v = k + size_t(n_kv_heads) * head_dim;
  for (int idx = threadIdx.x; idx < n_kv_heads * head_dim; idx += blockDim.x) {
    const int h = idx / head_dim, d = idx % head_dim;
    const size_t dst = (size_t(h) * max_seq + pos0 + t) * head_dim + d;
    k_cache[dst] = from_f32<T>(k[idx]);
    v_cache[dst] = from_f32<T>(v[idx]);
  }
}

// ---- attention ---------------------------------------------------------------------------

struct Plan {
  int group, q_per_block, rows, n_qblocks, n_splits, chunk;
  size_t smem, workspace;
};

size_t smem_bytes(int rows, int hd) {
  return sizeof(float) * (size_t(2) * rows * hd + size_t(2) * kTile * (hd + 1) + size_t(rows) * kTile + 3 * rows);
}

Plan make_plan(const AttentionArgs& a) {
  int dev = 0, sms = 0, max_smem = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  Plan p{};
  p.group = a.n_heads / a.n_kv_heads;
  p.q_per_block = std::max(1, std::min(kTargetRows / p.group, a.n_tokens));
  while (p.q_per_block > 1 && smem_bytes(p.q_per_block * p.group, a.head_dim) > size_t(max_smem)) --p.q_per_block;
  p.rows = p.q_per_block * p.group;
  p.smem = smem_bytes(p.rows, a.head_dim);
  LLAMA_TP_CHECK(p.smem <= size_t(max_smem), "attention: head_dim ", a.head_dim, " with ", p.group,
                 " query heads per kv head needs ", p.smem, " bytes of shared memory; the GPU has ", max_smem);
  p.n_qblocks = cdiv(a.n_tokens, p.q_per_block);
  const int blocks = p.n_qblocks * a.n_kv_heads;
  const int max_keys = a.pos0 + a.n_tokens;
  p.n_splits = 1;
  if (blocks < kBlocksPerSm * sms)
    p.n_splits = std::max(1, std::min(cdiv(kBlocksPerSm * sms, blocks), cdiv(max_keys, kMinSplitKeys)));
  p.chunk = cdiv(cdiv(max_keys, p.n_splits), kTile) * kTile;
  p.n_splits = cdiv(max_keys, p.chunk);
  p.workspace = p.n_splits > 1 ? sizeof(float) * size_t(p.n_splits) * a.n_tokens * a.n_heads * (a.head_dim + 2) : 0;
  return p;
}

struct KernelArgs {
  AttentionArgs a;
  int group, q_per_block, rows, chunk;
  float scale;
  float* part_o;   // [split][token][head][head_dim] unnormalised outputs
  float* part_ml;  // [split][token][head][2] running max and sum
};

// Rows [0, n) of a K or V tile into shared memory as float, row stride head_dim + 1 (so the
// score loop, where lanes take consecutive keys, is free of bank conflicts).
template <typename T>
__device__ void load_tile(float* dst, const T* src, int n, int hd, bool vec) {
  const int ld = hd + 1;
  if (vec) {
    constexpr int V = kVec<T>;
    const int per_row = hd / V;
    for (int idx = threadIdx.x; idx < n * per_row; idx += blockDim.x) {
      const int j = idx / per_row, c = (idx % per_row) * V;
      float f[V];
      unpack(*reinterpret_cast<const uint4*>(src + size_t(j) * hd + c), f, T{});
#pragma unroll
      for (int e = 0; e < V; ++e) dst[j * ld + c + e] = f[e];
    }
  } else {
    for (int idx = threadIdx.x; idx < n * hd; idx += blockDim.x) dst[(idx / hd) * ld + idx % hd] = to_f32(src[idx]);
  }
}

// Block (q block x, kv head y, key split z). Row r of the block is token t0 + r / group, query
// head kvh * group + r % group. Online softmax over tiles of kTile keys.
template <typename T>
__global__ void __launch_bounds__(kThreads) attention_kernel(KernelArgs ka, bool vec) {
  extern __shared__ float smem[];
  const AttentionArgs& a = ka.a;
  const int hd = a.head_dim, ld = hd + 1, rows = ka.rows, group = ka.group;
  const int kvh = blockIdx.y, split = blockIdx.z, t0 = blockIdx.x * ka.q_per_block;
  const int t_end = min(t0 + ka.q_per_block, a.n_tokens);
  const int key_begin = split * ka.chunk, key_end = min(a.pos0 + t_end, key_begin + ka.chunk);

  float* s_q = smem;                 // [rows][hd], pre-scaled by 1/sqrt(hd)
  float* s_o = s_q + rows * hd;      // [rows][hd], unnormalised output
  float* s_k = s_o + rows * hd;      // [kTile][ld]
  float* s_v = s_k + kTile * ld;     // [kTile][ld]
  float* s_p = s_v + kTile * ld;     // [rows][kTile] scores, then probabilities
  float* s_m = s_p + rows * kTile;   // [rows] running max
  float* s_l = s_m + rows;           // [rows] running sum
  float* s_scale = s_l + rows;       // [rows] rescale of the accumulator for this tile

  for (int idx = threadIdx.x; idx < rows * hd; idx += blockDim.x) {
    const int r = idx / hd, t = t0 + r / group, h = kvh * group + r % group;
    s_q[idx] = t < t_end ? a.q[size_t(t) * a.q_stride + size_t(h) * hd + idx % hd] * ka.scale : 0.f;
    s_o[idx] = 0.f;
  }
  for (int r = threadIdx.x; r < rows; r += blockDim.x) s_m[r] = -INFINITY, s_l[r] = 0.f;

  const T* kh = static_cast<const T*>(a.k_cache) + size_t(kvh) * a.max_seq * hd;
  const T* vh = static_cast<const T*>(a.v_cache) + size_t(kvh) * a.max_seq * hd;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;

  for (int kt = key_begin; kt < key_end; kt += kTile) {
    const int n = min(kTile, key_end - kt);
    __syncthreads();  // the previous tile is no longer read
    load_tile(s_k, kh + size_t(kt) * hd, n, hd, vec);
    load_tile(s_v, vh + size_t(kt) * hd, n, hd, vec);
    __syncthreads();

    for (int idx = threadIdx.x; idx < rows * kTile; idx += blockDim.x) {
      const int r = idx / kTile, j = idx % kTile, t = t0 + r / group;
      float s = -INFINITY;
      if (j < n && t < t_end && kt + j <= a.pos0 + t) {
        const float* q = s_q + r * hd;
        const float* k = s_k + j * ld;
        float s4[4] = {0.f, 0.f, 0.f, 0.f};  // independent chains: the dot is latency-bound
        int d = 0;
        for (; d + 4 <= hd; d += 4)
#pragma unroll
          for (int e = 0; e < 4; ++e) s4[e] += q[d + e] * k[d + e];
        for (; d < hd; ++d) s4[0] += q[d] * k[d];
        s = (s4[0] + s4[1]) + (s4[2] + s4[3]);
      }
      s_p[idx] = s;
    }
    __syncthreads();

    for (int r = warp; r < rows; r += n_warps) {
      const float m_old = s_m[r], s = s_p[r * kTile + lane];
      const float m_new = fmaxf(m_old, warp_max(s));
      // A row with no visible key yet keeps m = -inf and contributes nothing.
      const float p = m_new == -INFINITY ? 0.f : expf(s - m_new);
      const float scale = m_new == -INFINITY ? 1.f : expf(m_old - m_new);
      s_p[r * kTile + lane] = p;
      const float sum = warp_sum(p);
      __syncwarp();  // every lane has read s_m[r] before lane 0 replaces it
      if (lane == 0) s_l[r] = s_l[r] * scale + sum, s_m[r] = m_new, s_scale[r] = scale;
    }
    __syncthreads();

    for (int idx = threadIdx.x; idx < rows * hd; idx += blockDim.x) {
      const int r = idx / hd, d = idx % hd;
      const float* p = s_p + r * kTile;
      float acc = s_o[idx] * s_scale[r];
      for (int j = 0; j < n; ++j) acc += p[j] * s_v[j * ld + d];
      s_o[idx] = acc;
    }
  }
  __syncthreads();

  const bool split_k = gridDim.z > 1;
  for (int idx = threadIdx.x; idx < rows * hd; idx += blockDim.x) {
    const int r = idx / hd, t = t0 + r / group, h = kvh * group + r % group, d = idx % hd;
    if (t >= t_end) continue;
    const size_t th = size_t(t) * a.n_heads + h;
    if (split_k)
      ka.part_o[(size_t(split) * a.n_tokens * a.n_heads + th) * hd + d] = s_o[idx];
    else
      a.out[th * hd + d] = s_o[idx] / s_l[r];
  }
  if (split_k) {
    for (int r = threadIdx.x; r < rows; r += blockDim.x) {
      const int t = t0 + r / group, h = kvh * group + r % group;
      if (t >= t_end) continue;
      float* ml = ka.part_ml + (size_t(split) * a.n_tokens * a.n_heads + size_t(t) * a.n_heads + h) * 2;
      ml[0] = s_m[r], ml[1] = s_l[r];
    }
  }
}

// One block per (token, head): out = sum_s e^(m_s - M) o_s / sum_s e^(m_s - M) l_s. Split 0
// always holds key 0, so M is finite; empty splits have m = -inf and weigh 0.
__global__ void combine_kernel(float* out, const float* part_o, const float* part_ml, int n_splits,
                               size_t n_rows, int hd) {
  extern __shared__ float s_w[];  // [n_splits] weights
  __shared__ float s_inv_l;
  const size_t th = blockIdx.x;
  if (threadIdx.x < 32) {
    float m = -INFINITY;
    for (int s = threadIdx.x; s < n_splits; s += 32) m = fmaxf(m, part_ml[(s * n_rows + th) * 2]);
    m = warp_max(m);
    float l = 0.f;
    for (int s = threadIdx.x; s < n_splits; s += 32) {
      const float* ml = part_ml + (s * n_rows + th) * 2;
      s_w[s] = expf(ml[0] - m);
      l += s_w[s] * ml[1];
    }
    l = warp_sum(l);
    if (threadIdx.x == 0) s_inv_l = 1.f / l;
  }
  __syncthreads();
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float acc = 0.f;
    for (int s = 0; s < n_splits; ++s) acc += s_w[s] * part_o[(s * n_rows + th) * hd + d];
    out[th * hd + d] = acc * s_inv_l;
  }
}

}  // namespace

void kv_append_cuda(void* k_cache, void* v_cache, DType cache_dtype, const float* qkv, int row_stride,
                    int n_tokens, int n_heads, int n_kv_heads, int head_dim, int pos0, int max_seq,
                    cudaStream_t stream) {
  if (n_tokens == 0) return;
  dispatch_float(cache_dtype, [&](auto tag) {
    using T = decltype(tag);
    kv_append_kernel<T><<<n_tokens, 256, 0, stream>>>(static_cast<T*>(k_cache), static_cast<T*>(v_cache), qkv,
                                                      row_stride, n_heads, n_kv_heads, head_dim, pos0, max_seq);
  });
  CUDA_CHECK_LAUNCH();
}

size_t attention_workspace_bytes(const AttentionArgs& args) {
  return args.n_tokens == 0 ? 0 : make_plan(args).workspace;
}

void attention_cuda(const AttentionArgs& args, void* workspace, cudaStream_t stream) {
  if (args.n_tokens == 0) return;
  LLAMA_TP_CHECK(args.n_kv_heads > 0 && args.n_heads % args.n_kv_heads == 0, "attention: ", args.n_heads,
                 " query heads do not divide into ", args.n_kv_heads, " kv heads");
  const Plan p = make_plan(args);
  KernelArgs ka{args, p.group, p.q_per_block, p.rows, p.chunk, 1.0f / std::sqrt(float(args.head_dim)), nullptr, nullptr};
  if (p.n_splits > 1) {
    LLAMA_TP_CHECK(workspace, "attention: needs a workspace of ", p.workspace, " bytes");
    ka.part_o = static_cast<float*>(workspace);
    ka.part_ml = ka.part_o + size_t(p.n_splits) * args.n_tokens * args.n_heads * args.head_dim;
  }
  const dim3 grid(p.n_qblocks, args.n_kv_heads, p.n_splits);
  dispatch_float(args.cache_dtype, [&](auto tag) {
    using T = decltype(tag);
    const bool vec = args.head_dim % kVec<T> == 0 && aligned16(args.k_cache) && aligned16(args.v_cache);
    if (p.smem > 48 * 1024)
      CUDA_CHECK(cudaFuncSetAttribute(attention_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(p.smem)));
    attention_kernel<T><<<grid, kThreads, p.smem, stream>>>(ka, vec);
  });
  CUDA_CHECK_LAUNCH();
  if (p.n_splits > 1) {
    const size_t n_rows = size_t(args.n_tokens) * args.n_heads;
    // The weights' array is rounded up to whole 16-byte vectors: ptxas merges the tail of the
    // loop over splits into one wider shared-memory load (compute-sanitizer flagged it).
    const size_t w_bytes = sizeof(float) * 4 * cdiv(p.n_splits, 4);
    combine_kernel<<<unsigned(n_rows), 128, w_bytes, stream>>>(
        args.out, ka.part_o, ka.part_ml, p.n_splits, n_rows, args.head_dim);
    CUDA_CHECK_LAUNCH();
  }
}

}  // namespace llama_tp::kernels

#include <algorithm>
#include <cmath>
#include <cuda/atomic>
#include <map>
#include <mutex>
#include <numbers>
#include <string>
#include <tuple>

#include "kernels/attention_cuda.h"
#include "kernels/common_cuda.h"
#include "kernels/timeline_cuda.h"
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
                                 int n_kv_heads, int head_dim, int pos0, const int32_t* pos_dev, int max_seq) {
  const int t = blockIdx.x;
  if (pos_dev) pos0 = *pos_dev;
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
  const int sms = sm_count(), max_smem = smem_optin();
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
  // With the position on the device the launch covers the whole cache; splits past the position
  // find no keys and write an empty partial (max -inf, sum 0) that the combine weighs 0.
  const int max_keys = a.pos_dev ? a.max_seq : a.pos0 + a.n_tokens;
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
  const int pos0 = a.pos_dev ? *a.pos_dev : a.pos0;
  const int key_begin = split * ka.chunk, key_end = min(pos0 + t_end, key_begin + ka.chunk);

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
      if (j < n && t < t_end && kt + j <= pos0 + t) {
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

// ---- decode: one query token ----------------------------------------------------------------
// Block (split, kv head) streams K and V of its kv head once for all `group` query heads that
// share it. Block `split` takes a run of keys (decode_split), the grid (S = gridDim.x splits)
// does not depend on the position; it goes through them in chunks of up to 128. Per chunk:
// scores (a row group of `lanes` threads per key, each lane a 16-byte slice of the row, partial
// dots added with shuffles), softmax step on the chunk (block-wide running max and sum), then
// p·V (each row group for its keys, each lane for its slice of the dims). The last block of a kv
// head to finish combines the splits' partial softmaxes (counted in `counters`), so no second
// kernel; on sm_90, while the splits with keys fit one thread block cluster, its first block
// (decode_cluster).

// Threads of a block: 256 up to 4 query heads per kv head (for head_dim 128 in 16-bit: 16 row
// groups of 16 lanes, 2 blocks per SM), 128 for 8 (their q and acc alone take 128 registers a
// thread; 256 threads would spill or leave fewer threads resident). On an H200, 256 against 128
// threads for up to 4 heads: Llama-3-8B decode +1.0% (tg128), +1.4% at depth 1024, +0.7% at
// 8192; Llama-3.2-1B +1.6%; TinyLlama (8 heads a kv head) lost 4.4% with 256.
__host__ __device__ constexpr int decode_threads(int kg) { return kg <= 4 ? 256 : 128; }
constexpr int kDecRowsInFlight = 4;  // K or V rows a thread loads per round
constexpr int kDecChunk = 128;       // most keys per softmax step
constexpr int kDecMaxSplits = 256;
// For 8 query heads per kv head, the K/V rows of a round go through shared memory and the score
// and p·V loops stay rolled (shorter code, fewer registers): TinyLlama decode on an H200 +1.6%.
__host__ __device__ constexpr bool decode_staged(int kg) { return kg == 8; }

// Slots of the row groups' partial outputs in shared memory: those of 128 threads; the row
// groups beyond them fold in (attention_decode_block), so that the shared memory does not grow
// with the thread count.
__host__ __device__ constexpr int decode_out_slots(int lanes) { return 128 / lanes; }
// Whether the last block combines the splits 4 dims per thread (float4 partial sums and output);
// otherwise it weighs the splits first, in shared memory (decode_plan reserves kg x splits floats).
__host__ __device__ inline bool decode_combines_in_quads(int head_dim, const void* out) {
  return head_dim % 4 == 0 && aligned16(out);
}
// Floats of shared memory before the running max and sum: the staged K/V rows and the scores
// during the keys, the row groups' outputs after them (the same space).
__host__ __device__ constexpr int decode_work_floats(int kg, int lanes, int head_dim) {
  const int keys = (decode_staged(kg) ? kDecRowsInFlight * decode_threads(kg) * 4 : 0) + kg * kDecChunk;
  const int outs = decode_out_slots(lanes) * kg * head_dim;
  return keys > outs ? keys : outs;
}

// ---- Split combine within a thread block cluster (sm_90) ----
// Where the splits that found keys all lie in the first cluster of their kv head (n_used <=
// cluster), each writes its output, max and sum into a slot in the shared memory of the
// cluster's first block (distributed shared memory) and arrives at the cluster barrier; that block
// waits there and combines. This takes the place of a release fence, a count-in atomic and the
// combine's reads of the partials from L2, three trips to L2 at the end of the kernel; clusters
// that hold no keys leave at once.
constexpr int kDecCluster = 4;  // blocks a cluster (portable sizes go to 8): 256 keys of Llama-3-8B
// Floats of one split's slot: kg heads' outputs, then each head's max (base 2) and sum.
__host__ __device__ constexpr int decode_slot_floats(int kg, int head_dim) { return kg * head_dim + 2 * kg; }

__device__ __forceinline__ void cluster_arrive_relaxed() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");
#endif
}
__device__ __forceinline__ void cluster_arrive_release() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.arrive.release.aligned;" ::: "memory");
#endif
}
__device__ __forceinline__ void cluster_wait_acquire() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.wait.acquire.aligned;" ::: "memory");
#endif
}
// The address of *p's counterpart in the shared memory of block `rank` of the cluster.
__device__ __forceinline__ float* cluster_block_smem(float* p, unsigned rank) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  uint64_t r;
  asm volatile("mapa.u64 %0, %1, %2;" : "=l"(r) : "l"(p), "r"(rank));
  return reinterpret_cast<float*>(r);
#else
  return p;
#endif
}

struct DecodeParams {
  float* out;            // [n_heads][head_dim]
  const float* q;        // [n_heads][head_dim]
  const void* k_cache;
  const void* v_cache;
  const int32_t* pos_dev;
  int pos0;
  int n_heads, group, head_dim, max_seq;  // the lanes per row are the kernel's kL
  float scale_log2;      // 1 / sqrt(head_dim) * log2(e): scores in base-2 units, for exp2f
  float* part_o;         // [split][n_heads][head_dim] unnormalised outputs
  float* part_ml;        // [split][n_heads][2] max and sum
  unsigned* counters;    // [n_kv_heads] finished blocks, zero between launches (or null: the
                         // host position only, combine_kernel runs after)
  Timeline timeline;     // LLAMA_TP_TIMELINE (kernels/timeline_cuda.h)
  int cluster;           // blocks of a thread block cluster along the splits (decode_cluster), or 1
};

// How the keys of a decode call are cut: split s < n_used takes keys [s * per_split, (s + 1) *
// per_split), per_split a multiple of kDecKeyStep sized so that the keys spread over every
// split (a block's steps are latency-bound, so more blocks beat longer runs); a block goes
// through its keys kDecChunk at a time. With one split the block writes the output itself
// (no combine).
constexpr int kDecKeyStep = 16;
// A split has at least one round of K loads of a block (16 row groups x 4 rows for head_dim 128):
// below that, more splits only lengthen the combine. On an H200, Llama-3-8B decode of 128 tokens
// from an empty cache went from 227.7 to 232.0 t/s against 16 keys a split (1B: 1029 -> 1052);
// 128 or 256 keys were slower at depth 1024 (217 and 208 against 227 t/s).
constexpr int kDecMinSplitKeys = 64;
struct DecodeSplit {
  int per_split, n_used;
};
// Keys of one round of a block's K loads (R row groups x kDecRowsInFlight rows): 64 for head_dim
// 128 in 16-bit (16 lanes a row), 128 for head_dim 64.
__host__ __device__ constexpr int decode_round_keys(int kg, int lanes) {
  return decode_threads(kg) / lanes * kDecRowsInFlight;
}
// Keys that fit one round (round_keys) stay in one split, without a combine: for head_dim 64 that
// is up to 128 keys, where kDecMinSplitKeys alone splits at 64. On an H200 within one call (2
// rounds): Llama-3.2-1B tg128 +1.6%; Llama-3-8B (a round of 64 keys, unchanged) within 0.2%.
__host__ __device__ inline DecodeSplit decode_split(int n_keys, int n_splits, int round_keys) {
  DecodeSplit d;
  if (n_keys <= round_keys) {
    d.per_split = n_keys, d.n_used = 1;
    return d;
  }
  d.per_split = max(kDecMinSplitKeys, cdiv(cdiv(n_keys, n_splits), kDecKeyStep) * kDecKeyStep);
  d.n_used = cdiv(n_keys, d.per_split);
  return d;
}

// Sums each of s[0 .. N) over the lanes of a row group (xor offsets O, O / 2, .., 1), handing
// half of its values to the partner lane at each level while it holds more than one: 16 lanes sum
// 4 heads' scores in 5 shuffles instead of 16 (fewer instructions, and the code is fetched cold
// at every launch). Afterwards a lane holds kLeft = max(1, N / (2 O)) sums, of heads kLeft * t ..
// kLeft * (t + 1), t = the lane's top log2(N / kLeft) bits within the row group.
template <int N, int O>
__device__ __forceinline__ void fold_lanes(float* s, int lane) {
  if constexpr (O >= 1) {
    if constexpr (N > 1) {
      const bool upper = lane & O;
#pragma unroll
      for (int i = 0; i < N / 2; ++i) {
        const float send = upper ? s[i] : s[i + N / 2];
        s[i] = (upper ? s[i + N / 2] : s[i]) + __shfl_xor_sync(0xffffffffu, send, O);
      }
      fold_lanes<N / 2, O / 2>(s, lane);
    } else {
      s[0] += __shfl_xor_sync(0xffffffffu, s[0], O);
      fold_lanes<1, O / 2>(s, lane);
    }
  }
}

// 512 threads per SM (128 registers a thread) up to 4 query heads per kv head, 384 for 8 (more
// would spill): the grid is sized to what is resident (decode_plan); before, 164 registers
// left 3 of 4 blocks per SM resident, a 4-per-SM grid needed 1.3 waves, 30 us at 8192 keys on
// an H200.
template <typename T, int kG, int kL>
__device__ __forceinline__ void attention_decode_block(const DecodeParams& p, unsigned& stamp_slot) {
  constexpr int V = kVec<T>, C = kDecChunk, U = kDecRowsInFlight, NT = decode_threads(kG);
  constexpr bool kStaged = decode_staged(kG);
  extern __shared__ float smem[];
  __shared__ bool s_last;
  // kL lanes share a row (a compile-time count, so that the lane reductions unroll and the rows'
  // shuffles interleave), R = NT / kL row groups.
  constexpr int L = kL, R = NT / kL, RS = decode_out_slots(kL);
  // After fold_lanes, each lane holds kLeft heads' scores, the same in kSpan neighbouring lanes.
  constexpr int kLeft = kG > L ? kG / L : 1, kSpan = L * kLeft / kG;
  const int hd = p.head_dim, g = p.group;
  const int kvh = blockIdx.y, split = blockIdx.x, S = gridDim.x;
  const int tid = threadIdx.x, lane = tid % L, rg = tid / L, warp = tid / 32, wlane = tid % 32;
  const int c0 = lane * V;
  const bool active = c0 < hd;  // lanes past head_dim (when hd / V is not a power of two) idle
  const bool prefetcher = active && (c0 * sizeof(T)) % 128 == 0;
  const size_t head_off = size_t(kvh) * p.max_seq * hd + c0;
  const T* kh = static_cast<const T*>(p.k_cache) + head_off;
  const T* vh = static_cast<const T*>(p.v_cache) + head_off;

  // Before the wait for the kernel before (the q/k/v projection): the position, written by a copy
  // ahead of the step, and the block's first chunk of cache rows, of which only the newest (at the
  // position) comes from that kernel, into L2. A kernel starts only once the one before the one
  // it waits for has finished, so they are complete; L2 keeps the prefetched lines coherent with
  // the projection's writes. That takes two trips to memory out of the kernel's critical path.
  const int n_keys = (p.pos_dev ? *p.pos_dev : p.pos0) + 1;
  const DecodeSplit ds = decode_split(n_keys, S, R * U);
  const int n_used = ds.n_used;
  const int key_begin = split * ds.per_split, key_end = min(n_keys, (split + 1) * ds.per_split);
  // (Uniform over the grid.) A cluster past the first holds no keys then: nothing to do.
  const bool clustered = p.cluster > 1 && n_used > 1 && n_used <= p.cluster;
  if (clustered && split >= p.cluster) {
    timeline_stamp(p.timeline, stamp_slot, 1);
    timeline_stamp(p.timeline, stamp_slot, 2);
    return;
  }
  if (clustered) cluster_arrive_relaxed();  // phase 1: this block runs (peers may write into the first one)
  if (prefetcher)
    for (int j = key_begin + rg; j < min(key_end, key_begin + kDecChunk); j += R)
      prefetch_l2(kh + size_t(j) * hd), prefetch_l2(vh + size_t(j) * hd);
  wait_for_previous_kernel();  // launched with programmatic dependent launch
  release_next_kernel();
  timeline_stamp(p.timeline, stamp_slot, 1);

  // Shared memory (decode_work_floats): during the keys [staged rows][scores], after them the
  // row groups' outputs from the start; then the running max and sum.
  uint4* stage = reinterpret_cast<uint4*>(smem) + tid;  // [U][NT] this thread's rows (kStaged)
  float* s_p = smem + (kStaged ? U * NT * 4 : 0);  // [kG][C] scores, then probabilities
  float* s_o = smem;                                // [RS][kG][hd] row groups' outputs (after the loop)
  float* s_m = smem + decode_work_floats(kG, kL, hd);  // [kG] running max
  float* s_l = s_m + kG;                           // [kG] running sum
  float* s_a = s_l + kG;                           // [kG] rescale of the accumulators (then 1 / sum)
  float* s_w = s_a + kG;                           // [kG][S] split weights (combine, not in quads)
  float* s_slots = s_w + (decode_combines_in_quads(hd, p.out) ? 0 : kG * S);  // [cluster][slot] (clustered)

  // q in 16-byte loads (decode_plan: p.q is 16-byte aligned, V a multiple of 4), and only where
  // the split has keys: a launch covers the whole cache, so most splits of a short context have
  // none, and their loads of q (each block all of its kv head's) had slowed those that do. On an
  // H200 within one call, Llama-3-8B tg128 237-238 -> 241-242 t/s, TinyLlama 945 -> 964.
  // (Letting those blocks leave at once lost 4%: the next GEMV's blocks then take their place and
  // stream their first weights beside the attention.) Unscaled: the scale goes on the score (a
  // multiply on q here held the K loads back until q had arrived; SASS, session 13).
  const bool has_keys = split < n_used;
  float q[kG][V], acc[kG][V];
#pragma unroll
  for (int h = 0; h < kG; ++h) {
    const bool load = h < g && active && has_keys;
    const float4* src = reinterpret_cast<const float4*>(p.q + size_t(kvh * g + h) * hd + c0);
#pragma unroll
    for (int e = 0; e < V; e += 4) {
      const float4 v = load ? src[e / 4] : make_float4(0.f, 0.f, 0.f, 0.f);
      q[h][e] = v.x, q[h][e + 1] = v.y, q[h][e + 2] = v.z, q[h][e + 3] = v.w;
    }
#pragma unroll
    for (int e = 0; e < V; ++e) acc[h][e] = 0.f;
  }
  if (tid < kG) s_m[tid] = -INFINITY, s_l[tid] = 0.f;

  for (int j0 = key_begin; j0 < key_end; j0 += C) {
    const int nj = min(C, key_end - j0);
    // Scores. Every thread runs the same rounds (the shuffles need the whole warp).
    // A chunk of one round (every split of up to R * U keys, 64 for Llama-3-8B: up to about 2000
    // keys of context) loads its V rows with its K rows; they wait in registers through the
    // softmax, one trip to memory fewer. (Larger chunks prefetch V into L2 instead.) With the
    // one-thread count-in below, on an H200 in three calls: Llama-3-8B tg128 +0.3 to +0.6%, at
    // depth 1024 +0.1 to +0.8%, int8 +0.1 to +1.1%, Llama-3.2-1B +0.1 to +1.9%; at depth 8192
    // 0 to -1.3% (its chunks are longer; the registers held for V cost it).
    const bool keep_v = !kStaged && nj <= R * U;
    uint4 vkeep[U];
    for (int base = 0; base < nj; base += R * U) {
      uint4 kv[U];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int j = base + u * R + rg;
        const bool ok = active && j < nj;
        kv[u] = ok ? __ldcs(reinterpret_cast<const uint4*>(kh + size_t(j0 + j) * hd)) : make_uint4(0, 0, 0, 0);
        if (keep_v) vkeep[u] = ok ? __ldcs(reinterpret_cast<const uint4*>(vh + size_t(j0 + j) * hd)) : make_uint4(0, 0, 0, 0);
        else if (ok && prefetcher) prefetch_l2(vh + size_t(j0 + j) * hd);  // V of the key, read after the softmax
      }
      if constexpr (kStaged) {
#pragma unroll
        for (int u = 0; u < U; ++u) stage[u * NT] = kv[u];
      }
#pragma unroll(kStaged ? 1 : U)
      for (int u = 0; u < U; ++u) {
        float k[V], s[kG];
        if constexpr (kStaged) unpack(stage[u * NT], k, T{});
        else unpack(kv[u], k, T{});
#pragma unroll
        for (int h = 0; h < kG; ++h) {
          s[h] = 0.f;
#pragma unroll
          for (int e = 0; e < V; ++e) s[h] += q[h][e] * k[e];
        }
        fold_lanes<kG, L / 2>(s, lane);  // s[0 .. kLeft): heads h0 .. h0 + kLeft
        const int j = base + u * R + rg, h0 = kLeft * (lane / kSpan);
        if (lane % kSpan == 0 && j < nj)
#pragma unroll
          for (int i = 0; i < kLeft; ++i)
            if (h0 + i < g) s_p[(h0 + i) * C + j] = s[i] * p.scale_log2;
      }
    }
    __syncthreads();

    // Softmax step: one warp per head, in base 2 (the running max too). The loops stay rolled:
    // this code runs once or a few times per block and is fetched cold at every launch.
    for (int h = warp; h < g; h += NT / 32) {
      float mx = -INFINITY;
#pragma unroll 1
      for (int j = wlane; j < nj; j += 32) mx = fmaxf(mx, s_p[h * C + j]);
      const float m_old = s_m[h], m_new = fmaxf(m_old, warp_max(mx));
      float sum = 0.f;
#pragma unroll 1
      for (int j = wlane; j < nj; j += 32) {
        const float e = exp2f(s_p[h * C + j] - m_new);
        s_p[h * C + j] = e;
        sum += e;
      }
      sum = warp_sum(sum);
      __syncwarp();  // every lane has read s_m[h] before lane 0 replaces it
      if (wlane == 0) {
        const float a = exp2f(m_old - m_new);  // 0 on the first chunk (m_old = -inf)
        s_a[h] = a, s_l[h] = s_l[h] * a + sum, s_m[h] = m_new;
      }
    }
    __syncthreads();

    // p·V
#pragma unroll
    for (int h = 0; h < kG; ++h) {
      const float a = h < g ? s_a[h] : 0.f;
#pragma unroll
      for (int e = 0; e < V; ++e) acc[h][e] *= a;
    }
    for (int base = 0; base < nj; base += R * U) {
      uint4 vv[U];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int j = base + u * R + rg;
        if (keep_v) {
          vv[u] = vkeep[u];
          continue;
        }
        vv[u] = active && j < nj ? __ldcs(reinterpret_cast<const uint4*>(vh + size_t(j0 + j) * hd))
                                 : make_uint4(0, 0, 0, 0);
      }
      if constexpr (kStaged) {
#pragma unroll
        for (int u = 0; u < U; ++u) stage[u * NT] = vv[u];
      }
#pragma unroll(kStaged ? 1 : U)
      for (int u = 0; u < U; ++u) {
        const int j = base + u * R + rg;
        if (j >= nj) continue;
        float v[V];
        if constexpr (kStaged) unpack(stage[u * NT], v, T{});
        else unpack(vv[u], v, T{});
#pragma unroll
        for (int h = 0; h < kG; ++h) {
          const float pr = h < g ? s_p[h * C + j] : 0.f;
#pragma unroll
          for (int e = 0; e < V; ++e) acc[h][e] += pr * v[e];
        }
      }
    }
    __syncthreads();  // s_p (and the staged rows) are rewritten by the next chunk, or by s_o
  }

  timeline_stamp(p.timeline, stamp_slot, 2);  // the keys are done
  // The row groups' outputs into RS slots: row group rg adds into slot rg % RS in round rg / RS.
#pragma unroll 1
  for (int round = 0; round < R / RS; ++round) {
    if (active && rg / RS == round)
#pragma unroll
      for (int h = 0; h < kG; ++h)
        if (h < g)
#pragma unroll
          for (int e = 0; e < V; ++e) {
            float& o = s_o[((rg % RS) * kG + h) * hd + c0 + e];
            o = round == 0 ? acc[h][e] : o + acc[h][e];
          }
    __syncthreads();
  }
  const bool split_k = n_used > 1;
  float* slot = nullptr;  // clustered: this split's slot in the first block of the cluster
  if (clustered) {
    cluster_wait_acquire();  // phase 1: every block of the cluster runs, so its shared memory exists
    slot = cluster_block_smem(s_slots, 0) + split * decode_slot_floats(kG, hd);
  }
  for (int idx = tid; idx < g * hd; idx += NT) {
    const int h = idx / hd, d = idx % hd;
    const size_t row = size_t(kvh) * g + h;
    float o = 0.f;
    for (int r = 0; r < RS; ++r) o += s_o[(r * kG + h) * hd + d];
    if (!has_keys) break;
    if (!split_k) p.out[row * hd + d] = o / s_l[h];
    else if (clustered) slot[h * hd + d] = o;
    else p.part_o[(size_t(split) * p.n_heads + row) * hd + d] = o;
  }
  if (!split_k) return;
  if (clustered) {
    if (has_keys && tid < g) slot[kG * hd + 2 * tid] = s_m[tid], slot[kG * hd + 2 * tid + 1] = s_l[tid];
    cluster_arrive_release();  // phase 2: this split's slot is written
    if (split != 0) return;
    cluster_wait_acquire();  // every split's slot is in (its release, this acquire)
    const int sf = decode_slot_floats(kG, hd);
    for (int idx = tid; idx < g * hd; idx += NT) {
      const int h = idx / hd, d = idx % hd;
      float m = -INFINITY;
      for (int s = 0; s < n_used; ++s) m = fmaxf(m, s_slots[s * sf + kG * hd + 2 * h]);
      float l = 0.f, o = 0.f;
      for (int s = 0; s < n_used; ++s) {
        const float* sl = s_slots + s * sf;
        const float w = exp2f(sl[kG * hd + 2 * h] - m);
        l += w * sl[kG * hd + 2 * h + 1];
        o += w * sl[h * hd + d];
      }
      p.out[(size_t(kvh) * g + h) * hd + d] = o / l;
    }
    return;
  }
  if (has_keys && tid < g) {
    float* ml = p.part_ml + (size_t(split) * p.n_heads + size_t(kvh) * g + tid) * 2;
    // The max in natural units, as combine_kernel takes it.
    ml[0] = s_m[tid] * std::numbers::ln2_v<float>, ml[1] = s_l[tid];
  }
  if (!p.counters) return;  // combine_kernel follows

  // The last block of this kv head to finish combines the splits that found keys (0 .. n_used).
  // One thread counts the block in, after the barrier (as cooperative groups' grid sync does):
  // a release fence first where the block wrote partials, an acquire fence after where it is the
  // last; not a sequentially consistent fence in every thread (__threadfence).
  __syncthreads();
  if (tid == 0) {
    if (has_keys) cuda::atomic_thread_fence(cuda::memory_order_release, cuda::thread_scope_device);
    s_last = atomicAdd(&p.counters[kvh], 1u) == unsigned(S) - 1;
    if (s_last) cuda::atomic_thread_fence(cuda::memory_order_acquire, cuda::thread_scope_device);
  }
  __syncthreads();
  if (!s_last) return;
  const size_t ml_stride = size_t(p.n_heads) * 2;
  const size_t split_stride = size_t(p.n_heads) * hd;
  if (decode_combines_in_quads(hd, p.out)) {
    // Each thread takes 4 dims of one head and reads, per split, their partial sums and the
    // split's max and sum together (kCombineBatch splits at a time, an online softmax across
    // batches): one round trip to L2 where the splits are few, not one for the maxima and sums
    // and then one for the partial sums. On an H200 against that: Llama-3-8B int8 tg128 +0.8%,
    // Llama-3.2-1B +0.7%, bf16 8B at depths 0, 1024 and 8192 within 0.2%.
    constexpr int kCombineBatch = 8;
    const int quads = hd / 4;
    for (int idx = tid; idx < g * quads; idx += NT) {
      const int h = idx / quads, d = (idx % quads) * 4;
      const size_t row = size_t(kvh) * g + h;
      const float* src = p.part_o + row * hd + d;
      const float* ml = p.part_ml + row * 2;
      float m_run = -INFINITY, l_run = 0.f;
      float4 o = make_float4(0.f, 0.f, 0.f, 0.f);
      for (int s0 = 0; s0 < n_used; s0 += kCombineBatch) {
        float2 part_ml[kCombineBatch];
        float4 part_o[kCombineBatch];
#pragma unroll
        for (int c = 0; c < kCombineBatch; ++c) {
          const bool ok = s0 + c < n_used;
          part_ml[c] = ok ? __ldcg(reinterpret_cast<const float2*>(ml + (s0 + c) * ml_stride)) : make_float2(-INFINITY, 0.f);
          part_o[c] = ok ? __ldcg(reinterpret_cast<const float4*>(src + (s0 + c) * split_stride))
                         : make_float4(0.f, 0.f, 0.f, 0.f);
        }
        float m = m_run;
#pragma unroll
        for (int c = 0; c < kCombineBatch; ++c) m = fmaxf(m, part_ml[c].x);
        // Split 0 always has keys, so m is finite from the first batch on (m_run = -inf gives 0).
        const float a = __expf(m_run - m);
        l_run *= a, o.x *= a, o.y *= a, o.z *= a, o.w *= a;
#pragma unroll
        for (int c = 0; c < kCombineBatch; ++c) {
          const float w = __expf(part_ml[c].x - m);  // 0 past n_used (-inf)
          l_run += w * part_ml[c].y;
          o.x += w * part_o[c].x, o.y += w * part_o[c].y, o.z += w * part_o[c].z, o.w += w * part_o[c].w;
        }
        m_run = m;
      }
      const float inv = 1.f / l_run;
      *reinterpret_cast<float4*>(p.out + row * hd + d) = make_float4(o.x * inv, o.y * inv, o.z * inv, o.w * inv);
    }
    if (tid == 0) p.counters[kvh] = 0;  // ready for the next launch
    return;
  }
  // Head dims that are not a multiple of 4 (or an unaligned output): the splits' weights first.
  for (int h = warp; h < g; h += NT / 32) {
    const float* ml = p.part_ml + (size_t(kvh) * g + h) * 2;
    float m = -INFINITY;
    for (int s = wlane; s < n_used; s += 32) m = fmaxf(m, __ldcg(ml + s * ml_stride));
    m = warp_max(m);
    float l = 0.f;
    for (int s = wlane; s < n_used; s += 32) {
      const float w = __expf(__ldcg(ml + s * ml_stride) - m);
      s_w[h * S + s] = w;
      l += w * __ldcg(ml + s * ml_stride + 1);
    }
    l = warp_sum(l);
    if (wlane == 0) s_a[h] = 1.f / l;
  }
  __syncthreads();
  for (int idx = tid; idx < g * hd; idx += NT) {
    const int h = idx / hd, d = idx % hd;
    const size_t row = size_t(kvh) * g + h;
    float o = 0.f;
#pragma unroll 8
    for (int s = 0; s < n_used; ++s) o += s_w[h * S + s] * __ldcg(p.part_o + s * split_stride + row * hd + d);
    p.out[row * hd + d] = o * s_a[h];
  }
  if (tid == 0) p.counters[kvh] = 0;  // ready for the next launch
}

// Resident threads per SM: 512 up to 4 query heads per kv head (128 registers a thread), 384 for
// 8 (more would spill).
template <typename T, int kG, int kL>
__global__ void __launch_bounds__(decode_threads(kG), (kG <= 4 ? 512 : 384) / decode_threads(kG))
    attention_decode_kernel(DecodeParams p) {
  unsigned stamp_slot = 0;
  timeline_stamp(p.timeline, stamp_slot, 0);
  attention_decode_block<T, kG, kL>(p, stamp_slot);
  timeline_stamp(p.timeline, stamp_slot, 3);
}

struct DecodePlan {
  bool ok = false;
  int kg = 0, lanes = 0, splits = 0;
  int cluster = 1;  // DecodeParams::cluster
  int resident_clusters = 0;  // where asked (decode_cluster)
  size_t smem = 0, workspace = 0;
};

int pow2_at_least(int v) {
  int p = 1;
  while (p < v) p *= 2;
  return p;
}

using DecodeKernel = void (*)(DecodeParams);

template <typename T, int kL>
DecodeKernel decode_kernel_for(int kg) {
  return kg == 1 ? attention_decode_kernel<T, 1, kL>
         : kg == 2 ? attention_decode_kernel<T, 2, kL>
         : kg == 4 ? attention_decode_kernel<T, 4, kL>
                   : attention_decode_kernel<T, 8, kL>;
}

// lanes: a power of two up to 32 (decode_plan).
DecodeKernel decode_kernel(DType cache_dtype, int kg, int lanes) {
  DecodeKernel k = nullptr;
  dispatch_float(cache_dtype, [&](auto tag) {
    using T = decltype(tag);
    k = lanes == 1    ? decode_kernel_for<T, 1>(kg)
        : lanes == 2  ? decode_kernel_for<T, 2>(kg)
        : lanes == 4  ? decode_kernel_for<T, 4>(kg)
        : lanes == 8  ? decode_kernel_for<T, 8>(kg)
        : lanes == 16 ? decode_kernel_for<T, 16>(kg)
                      : decode_kernel_for<T, 32>(kg);
  });
  return k;
}

// Clusters of kDecCluster blocks of `kernel` (threads, smem) resident at once on this device,
// asked once per device, kernel and size (0 where the query fails).
int resident_clusters(DecodeKernel kernel, int threads, size_t smem) {
  static std::mutex mutex;
  static std::map<std::tuple<int, const void*, int, size_t>, int> known;
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return (void)cudaGetLastError(), 0;
  const std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_tuple(dev, reinterpret_cast<const void*>(kernel), threads, smem);
  if (const auto it = known.find(key); it != known.end()) return it->second;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(kDecCluster);
  cfg.blockDim = dim3(threads);
  cfg.dynamicSmemBytes = smem;
  cudaLaunchAttribute attr;
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim = {unsigned(kDecCluster), 1, 1};
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  int clusters = 0;
  if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &cfg) != cudaSuccess) clusters = 0, (void)cudaGetLastError();
  return known[key] = clusters;
}

// Whether the splits combine within a cluster (kDecCluster; DecodeParams::cluster): on GPUs
// with clusters (compute capability 9.0 and later), with the slots within the 48 KiB of shared
// memory, and the splits a multiple of the cluster, as many as keep every cluster of the grid
// resident at once (cudaOccupancyMaxActiveClusters; a cluster's blocks share a GPC), as the grid
// of blocks is (decode_plan), while that keeps at least 3/4 of the splits: fewer would slow long
// contexts more than the combine gains (Llama-3-8B on an H200: 28 of 33, depth 8192 -0.2%; 32
// kv heads, as Llama-2-7B, would keep 4 of 8). LLAMA_TP_ATTENTION_CLUSTER=0: never, for comparisons.
void decode_cluster(const AttentionArgs& a, DecodeKernel kernel, int threads, DecodePlan& p) {
  static const bool allowed = env_allows("LLAMA_TP_ATTENTION_CLUSTER");
  if (!allowed || device_attribute<cudaDevAttrComputeCapabilityMajor>(0) < 9 || p.splits < kDecCluster) return;
  // (p.smem is for the largest count: the split weights, where they are needed, grow with it.)
  const size_t smem = p.smem + sizeof(float) * kDecCluster * size_t(decode_slot_floats(p.kg, a.head_dim));
  if (smem > 48 * 1024) return;
  p.resident_clusters = resident_clusters(kernel, threads, smem);
  const int splits = std::min(p.splits / kDecCluster, p.resident_clusters / a.n_kv_heads) * kDecCluster;
  if (splits < kDecCluster || 4 * splits < 3 * p.splits) return;
  p.cluster = kDecCluster, p.splits = splits, p.smem = smem;
}

// The decode kernel takes one token, 16-byte rows (head_dim a multiple of the vector width, at
// most 32 vectors) and up to 8 query heads per kv head; with the position on the device it needs
// the split counters. Other cases go to the general kernel.
DecodePlan decode_plan(const AttentionArgs& a) {
  DecodePlan p;
  const int vec = 16 / int(dtype_size(a.cache_dtype)), group = a.n_heads / a.n_kv_heads;
  p.kg = pow2_at_least(group);
  p.lanes = pow2_at_least(a.head_dim / vec);
  p.ok = a.n_tokens == 1 && (a.split_counters || !a.pos_dev) && a.head_dim % vec == 0 && p.lanes <= 32 && p.kg <= 8 &&
         aligned16(a.k_cache) && aligned16(a.v_cache) && aligned16(a.q);
  if (!p.ok) return p;
  // Enough blocks to fill the GPU at any position the launch may see (with the position on the
  // device that is the whole cache), but no more than are resident at once: a second wave
  // would double the time.
  const size_t base_smem = sizeof(float) * (size_t(decode_work_floats(p.kg, p.lanes, a.head_dim)) + 3 * p.kg);
  const void* kernel = reinterpret_cast<const void*>(decode_kernel(a.cache_dtype, p.kg, p.lanes));
  const int threads = decode_threads(p.kg);
  const int fit = std::min(kBlocksPerSm * 128 / threads,
                           resident_blocks(kernel, threads, base_smem + sizeof(float) * p.kg * kDecMaxSplits));
  const int max_keys = a.pos_dev ? a.max_seq : a.pos0 + 1;
  const int max_splits = std::min(cdiv(max_keys, kDecKeyStep), kDecMaxSplits);
  p.splits = std::clamp(fit * sm_count() / a.n_kv_heads, 1, max_splits);
  // (The split count does not depend on the output pointer, so that the workspace sized without
  // one fits every launch; only the combine's weights, where it needs them, take shared memory.)
  p.smem = base_smem + (decode_combines_in_quads(a.head_dim, a.out) ? 0 : sizeof(float) * p.kg * p.splits);
  p.workspace = p.splits > 1 ? sizeof(float) * size_t(p.splits) * a.n_heads * (a.head_dim + 2) : 0;
  decode_cluster(a, decode_kernel(a.cache_dtype, p.kg, p.lanes), threads, p);
  return p;
}

void attention_decode(const AttentionArgs& a, const DecodePlan& plan, void* workspace, cudaStream_t stream) {
  DecodeParams p{a.out, a.q, a.k_cache, a.v_cache, a.pos_dev, a.pos0, a.n_heads, a.n_heads / a.n_kv_heads,
                 a.head_dim, a.max_seq, softmax_scale_log2(a.head_dim), nullptr, nullptr,
                 a.split_counters};
  if (timeline_on())
    p.timeline = timeline_node("attention decode " + std::to_string(a.n_heads) + "/" + std::to_string(a.n_kv_heads) +
                                   "x" + std::to_string(a.head_dim),
                               0);
  if (plan.splits > 1) {
    LLAMA_TP_CHECK(workspace, "attention: needs a workspace of ", plan.workspace, " bytes");
    p.part_o = static_cast<float*>(workspace);
    p.part_ml = p.part_o + size_t(plan.splits) * a.n_heads * a.head_dim;
  }
  LLAMA_TP_CHECK(plan.smem <= 48 * 1024, "attention: decode plan needs ", plan.smem, " bytes of shared memory");
  p.cluster = plan.cluster;
  CUDA_CHECK(launch_clustered(decode_kernel(a.cache_dtype, plan.kg, plan.lanes), dim3(plan.splits, a.n_kv_heads),
                              dim3(decode_threads(plan.kg)), plan.smem, stream, true, unsigned(plan.cluster), p));
  CUDA_CHECK_LAUNCH();
  const int n_used = decode_split(a.pos0 + 1, plan.splits, decode_round_keys(plan.kg, plan.lanes)).n_used;
  // (The host knows which splits found keys; a cluster combines its own.)
  if (plan.splits > 1 && !a.split_counters && n_used > 1 && n_used > plan.cluster) {
    combine_kernel<<<unsigned(a.n_heads), 128, sizeof(float) * 4 * cdiv(n_used, 4), stream>>>(
        a.out, p.part_o, p.part_ml, n_used, size_t(a.n_heads), a.head_dim);
    CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

void kv_append_cuda(void* k_cache, void* v_cache, DType cache_dtype, const float* qkv, int row_stride,
                    int n_tokens, int n_heads, int n_kv_heads, int head_dim, int pos0, const int32_t* pos_dev,
                    int max_seq, cudaStream_t stream) {
  if (n_tokens == 0) return;
  dispatch_float(cache_dtype, [&](auto tag) {
    using T = decltype(tag);
    kv_append_kernel<T><<<n_tokens, 256, 0, stream>>>(static_cast<T*>(k_cache), static_cast<T*>(v_cache), qkv,
                                                      row_stride, n_heads, n_kv_heads, head_dim, pos0, pos_dev,
                                                      max_seq);
  });
  CUDA_CHECK_LAUNCH();
}

DecodeLaunch attention_decode_launch(const AttentionArgs& args) {
  const DecodePlan d = decode_plan(args);
  return d.ok ? DecodeLaunch{d.splits, d.cluster, d.resident_clusters} : DecodeLaunch{};
}

size_t attention_workspace_bytes(const AttentionArgs& args) {
  if (args.n_tokens == 0) return 0;
  const DecodePlan d = decode_plan(args);
  return d.ok ? d.workspace : make_plan(args).workspace;
}

void attention_cuda(const AttentionArgs& args, void* workspace, cudaStream_t stream) {
  if (args.n_tokens == 0) return;
  LLAMA_TP_CHECK(args.n_kv_heads > 0 && args.n_heads % args.n_kv_heads == 0, "attention: ", args.n_heads,
                 " query heads do not divide into ", args.n_kv_heads, " kv heads");
  if (const DecodePlan d = decode_plan(args); d.ok) return attention_decode(args, d, workspace, stream);
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

#include <algorithm>
#include <climits>
#include <cstdint>
#include <type_traits>

#include "kernels/common_cuda.h"
#include "kernels/gemv_cuda.h"
#include "runtime/cuda_check.h"

namespace llama_tp::kernels {
namespace {

constexpr int kWarps = 8;             // warps per block
constexpr int kUnroll = 4;            // 16-byte loads in flight per row and lane (two rows: 8)
constexpr int kMaxStagedK = 16384;    // longest x kept in shared memory (64 KiB)

// Elements of W in one 16-byte load.
template <typename W>
constexpr int kElems = 16 / int(sizeof(W));

template <typename W>
struct Params {
  float* out;
  GemvInput in;
  const W* w;
  const float* scales;  // i8
  int group, groups;    // i8
  int chunks_per_group, chunk_shift;  // i8, vector path: 16-byte chunks per scale group (its log2, or -1)
  int k;
  int rows;             // weight rows
  int n_pairs;          // row pairs: pair p is rows r0 = (p / half) * 2 * half + p % half and r0 + half
  int half;
  int warps_per_pair;
  GemvRope rope;
};

template <bool kShared>
__device__ __forceinline__ float4 load_x4(const float* x) {
  if constexpr (kShared)
    return *reinterpret_cast<const float4*>(x);
  else
    return __ldg(reinterpret_cast<const float4*>(x));
}

__device__ __forceinline__ float load_norm(const void* w, DType t, int i) {
  switch (t) {
    case DType::BF16: return to_f32(static_cast<const bf16*>(w)[i]);
    case DType::F16: return to_f32(static_cast<const f16*>(w)[i]);
    default: return static_cast<const float*>(w)[i];
  }
}

// Four int8 (one 32-bit word) to floats without I2F (a quarter-rate instruction): byte b, biased
// to b + 128, becomes the low mantissa bits of 2^23; subtracting 2^23 + 128 leaves b exactly.
__device__ __forceinline__ void int8x4_to_float(uint32_t word, float* f) {
  const uint32_t biased = word ^ 0x80808080u;
#pragma unroll
  for (int i = 0; i < 4; ++i) f[i] = __uint_as_float(__byte_perm(biased, 0x4B000000u, 0x7650u + i)) - 8388736.f;
}

// The dots of two 16-byte weight chunks (rows r0 and r1) with the same kElems<W> values of x.
template <typename W, bool kShared>
__device__ __forceinline__ void chunk_dot2(uint4 u0, uint4 u1, const float* x, float& d0, float& d1) {
  if constexpr (std::is_same_v<W, int8_t>) {
    const uint32_t w0[4] = {u0.x, u0.y, u0.z, u0.w}, w1[4] = {u1.x, u1.y, u1.z, u1.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float4 xv = load_x4<kShared>(x + 4 * j);
      float a[4], b[4];
      int8x4_to_float(w0[j], a);
      int8x4_to_float(w1[j], b);
      d0 += a[0] * xv.x + a[1] * xv.y + a[2] * xv.z + a[3] * xv.w;
      d1 += b[0] * xv.x + b[1] * xv.y + b[2] * xv.z + b[3] * xv.w;
    }
  } else {
    constexpr int V = kElems<W>;
    float a[V], b[V];
    unpack(u0, a, W{});
    unpack(u1, b, W{});
#pragma unroll
    for (int j = 0; j < V; j += 4) {
      const float4 xv = load_x4<kShared>(x + j);
      d0 += a[j] * xv.x + a[j + 1] * xv.y + a[j + 2] * xv.z + a[j + 3] * xv.w;
      d1 += b[j] * xv.x + b[j + 1] * xv.y + b[j + 2] * xv.z + b[j + 3] * xv.w;
    }
  }
}

template <typename W>
__device__ __forceinline__ float weight_at(const Params<W>& p, int r, int c) {
  if constexpr (std::is_same_v<W, int8_t>)
    return float(p.w[size_t(r) * p.k + c]) * p.scales[size_t(r) * p.groups + c / p.group];
  else
    return to_f32(p.w[size_t(r) * p.k + c]);
}

// One batch of a lane's loads: kUnroll 16-byte chunks of each row of a pair (chunks i, i + stride,
// ...), with their scales for int8. Issued together so that their latencies overlap, and one
// batch ahead of the arithmetic (gemv_kernel), so that a warp always has loads in flight.
template <typename W>
struct Batch {
  static constexpr int kScales = std::is_same_v<W, int8_t> ? kUnroll : 1;
  uint4 u0[kUnroll], u1[kUnroll];
  float s0[kScales], s1[kScales];
};

// Streaming loads (__ldcs): the weights are read once per token.
template <typename W>
__device__ __forceinline__ void load_batch(const Params<W>& p, int r0, int r1, int i, int stride, Batch<W>& b) {
  const int nv = p.k / kElems<W>;
  const uint4* w0 = reinterpret_cast<const uint4*>(p.w + size_t(r0) * p.k);
  const uint4* w1 = reinterpret_cast<const uint4*>(p.w + size_t(r1) * p.k);
#pragma unroll
  for (int j = 0; j < kUnroll; ++j) {
    const int c = i + j * stride;
    const bool ok = c < nv;
    b.u0[j] = ok ? __ldcs(w0 + c) : make_uint4(0, 0, 0, 0);
    b.u1[j] = ok ? __ldcs(w1 + c) : make_uint4(0, 0, 0, 0);
    if constexpr (std::is_same_v<W, int8_t>) {
      // A chunk lies in one scale group (group % 16 == 0).
      const int g = p.chunk_shift >= 0 ? c >> p.chunk_shift : c / p.chunks_per_group;
      b.s0[j] = ok ? __ldg(p.scales + size_t(r0) * p.groups + g) : 0.f;
      b.s1[j] = ok ? __ldg(p.scales + size_t(r1) * p.groups + g) : 0.f;
    }
  }
}

// The batch's share of the dots of its two rows with x (int8: each chunk summed unscaled, then
// scaled once).
template <typename W, bool kShared>
__device__ __forceinline__ void dot_batch(const Params<W>& p, const Batch<W>& b, const float* x, int i, int stride,
                                          float& a0, float& a1) {
  constexpr int V = kElems<W>;
  const int nv = p.k / V;
#pragma unroll
  for (int j = 0; j < kUnroll; ++j) {
    const int c = i + j * stride;
    if (c >= nv) break;
    float d0 = 0.f, d1 = 0.f;
    chunk_dot2<W, kShared>(b.u0[j], b.u1[j], x + size_t(c) * V, d0, d1);
    if constexpr (std::is_same_v<W, int8_t>) {
      a0 += d0 * b.s0[j];
      a1 += d1 * b.s1[j];
    } else {
      a0 += d0;
      a1 += d1;
    }
  }
}

// This lane's share (elements t, t + stride, ...) of the dots of rows r0 and r1 with x, one
// element at a time (rows that are not 16-byte aligned or not a whole number of chunks).
template <typename W>
__device__ __forceinline__ void row_pair_dot_scalar(const Params<W>& p, int r0, int r1, const float* x, int t,
                                                    int stride, float& a0, float& a1) {
  for (int c = t; c < p.k; c += stride) {
    const float xv = x[c];
    a0 += weight_at(p, r0, c) * xv;
    a1 += weight_at(p, r1, c) * xv;
  }
}

template <typename T>
__device__ __forceinline__ void store_as(void* base, size_t i, float v) {
  static_cast<T*>(base)[i] = from_f32<T>(v);
}
__device__ __forceinline__ void store_cache(void* base, DType t, size_t i, float v) {
  switch (t) {
    case DType::BF16: store_as<bf16>(base, i, v); break;
    case DType::F16: store_as<f16>(base, i, v); break;
    default: store_as<float>(base, i, v); break;
  }
}

// The pair's results into out (and the caches): the same arithmetic as swiglu_cuda and
// rope_kv_append_cuda.
template <GemvEpilogue E, typename W>
__device__ __forceinline__ void finish_pair(const Params<W>& p, int pair, int r0, int r1, float a0, float a1) {
  if constexpr (E == GemvEpilogue::Store) {
    p.out[r0] = a0;
    if (r1 < p.rows) p.out[r1] = a1;
  } else if constexpr (E == GemvEpilogue::Swiglu) {
    p.out[pair] = a0 / (1.0f + expf(-a0)) * a1;
  } else {
    const GemvRope& r = p.rope;
    const int half = r.head_dim / 2, head = pair / half, i = pair % half;
    const int pos = r.pos_dev ? *r.pos_dev : r.pos0;
    float y0 = a0, y1 = a1;
    if (head < r.n_heads + r.n_kv_heads) {  // q and k heads rotate, v heads do not
      float s, c;
      sincosf(float(pos) * r.inv_freq[i], &s, &c);
      y0 = a0 * c - a1 * s;
      y1 = a1 * c + a0 * s;
    }
    p.out[r0] = y0;
    p.out[r1] = y1;
    if (head >= r.n_heads) {
      const bool is_k = head < r.n_heads + r.n_kv_heads;
      const int kvh = head - r.n_heads - (is_k ? 0 : r.n_kv_heads);
      const size_t dst = (size_t(kvh) * r.max_seq + pos) * r.head_dim + i;
      store_cache(is_k ? r.k_cache : r.v_cache, r.cache_dtype, dst, y0);
      store_cache(is_k ? r.k_cache : r.v_cache, r.cache_dtype, dst + half, y1);
    }
  }
}

// x (or the normalized residual stream) into shared memory; block 0 also writes x_out. 16-byte
// loads where the pointers allow, so the block waits for one round of loads, not several.
template <typename W>
__device__ void stage_input(const Params<W>& p, float* s_x) {
  const GemvInput& in = p.in;
  float ss = 0.f;
  const bool vec = p.k % 4 == 0 && aligned16(in.x) && (!in.delta || aligned16(in.delta));
  if (vec) {
    const float4* x4 = reinterpret_cast<const float4*>(in.x);
    const float4* d4 = reinterpret_cast<const float4*>(in.delta);
    for (int i = threadIdx.x; i < p.k / 4; i += blockDim.x) {
      float4 v = x4[i];
      if (d4) {
        const float4 d = d4[i];
        v.x += d.x, v.y += d.y, v.z += d.z, v.w += d.w;
      }
      reinterpret_cast<float4*>(s_x)[i] = v;
      ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
  } else {
    for (int i = threadIdx.x; i < p.k; i += blockDim.x) {
      const float v = in.delta ? in.x[i] + in.delta[i] : in.x[i];
      s_x[i] = v;
      ss += v * v;
    }
  }
  if (in.norm) {
    ss = block_sum(ss);  // its barriers also make s_x visible to the whole block
    const float scale = 1.0f / sqrtf(ss / float(p.k) + in.eps);  // as rmsnorm_cuda
    const bool write_stream = in.x_out && blockIdx.x == 0;
    for (int i = threadIdx.x; i < p.k; i += blockDim.x) {
      const float v = s_x[i];
      if (write_stream) in.x_out[i] = v;
      s_x[i] = v * scale * load_norm(in.norm, in.norm_dtype, i);
    }
  }
  __syncthreads();
}

// Block b takes the row pairs [n_pairs * b / grid, n_pairs * (b + 1) / grid): the grid is what
// stays resident at once (x is staged once per block) and every block gets the same share
// within one pair. Its kWarps / warps_per_pair warp groups take the pairs in turn.
template <typename W, GemvEpilogue E, bool kStaged, bool kVec>
__global__ void __launch_bounds__(kWarps * 32) gemv_kernel(Params<W> p) {
  extern __shared__ float4 smem4[];
  float* s_x = reinterpret_cast<float*>(smem4);
  __shared__ float s_part[2][kWarps];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, wpp = p.warps_per_pair;
  const int groups = kWarps / wpp, group = warp / wpp;
  const int begin = int(int64_t(p.n_pairs) * blockIdx.x / gridDim.x);
  const int end = int(int64_t(p.n_pairs) * (blockIdx.x + 1) / gridDim.x);
  const int t = (warp % wpp) * 32 + lane, stride = wpp * 32;
  const int rounds = cdiv(end - begin, groups);
  // Rows of the pair this warp group takes in `round` (r1 = r0 where a Store pair has one row).
  auto rows_of = [&](int round, int& r0, int& r1) {
    const int pair = begin + round * groups + group;
    r0 = (pair / p.half) * 2 * p.half + pair % p.half;
    r1 = r0 + p.half < p.rows ? r0 + p.half : r0;
    return pair < end;
  };
  // The pair's sums, across the warps that share it, into out.
  auto finish = [&](int round, float a0, float a1) {
    a0 = warp_sum(a0);
    a1 = warp_sum(a1);
    if (wpp > 1) {
      __syncthreads();  // the previous round's partials have been read
      if (lane == 0) s_part[0][warp] = a0, s_part[1][warp] = a1;
      __syncthreads();
      a0 = a1 = 0.f;
      for (int w = group * wpp; w < (group + 1) * wpp; ++w) a0 += s_part[0][w], a1 += s_part[1][w];
    }
    int r0, r1;
    const int pair = begin + round * groups + group;
    if (rows_of(round, r0, r1) && lane == 0 && warp % wpp == 0) finish_pair<E>(p, pair, r0, r0 + p.half, a0, a1);
  };

  if constexpr (kVec) {
    // Batches of loads, one ahead of the arithmetic: the first is issued before this kernel
    // waits for the one before it (weights do not depend on it) and before x is staged.
    const int per_batch = kUnroll * stride;
    const int n_iter = cdiv(p.k / kElems<W>, per_batch);  // batches per pair
    const int total = rounds * n_iter;
    Batch<W> cur;
    int r0, r1;
    if (total > 0 && rows_of(0, r0, r1)) load_batch(p, r0, r1, t, stride, cur);
    wait_for_previous_kernel();
    release_next_kernel();
    const float* x = p.in.x;
    if constexpr (kStaged) {
      stage_input(p, s_x);
      x = s_x;
    }
    float a0 = 0.f, a1 = 0.f;
    int round = 0, it = 0;
    for (int b = 0; b < total; ++b) {
      const int next_round = it + 1 == n_iter ? round + 1 : round, next_it = it + 1 == n_iter ? 0 : it + 1;
      Batch<W> next;
      int n0, n1;
      if (next_round < rounds && rows_of(next_round, n0, n1)) load_batch(p, n0, n1, t + next_it * per_batch, stride, next);
      if (rows_of(round, r0, r1)) dot_batch<W, kStaged>(p, cur, x, t + it * per_batch, stride, a0, a1);
      if (it == n_iter - 1) {
        finish(round, a0, a1);
        a0 = a1 = 0.f;
      }
      cur = next;
      round = next_round, it = next_it;
    }
  } else {
    wait_for_previous_kernel();
    release_next_kernel();
    const float* x = p.in.x;
    if constexpr (kStaged) {
      stage_input(p, s_x);
      x = s_x;
    }
    for (int round = 0; round < rounds; ++round) {
      int r0, r1;
      float a0 = 0.f, a1 = 0.f;
      if (rows_of(round, r0, r1)) row_pair_dot_scalar(p, r0, r1, x, t, stride, a0, a1);
      finish(round, a0, a1);
    }
  }
}

// Blocks for n_pairs row pairs, `groups` pairs per block and round, `fit` blocks per SM. Every
// block takes the same number of rounds m (its pairs split evenly); the busiest SM holds
// ceil(blocks / SMs) blocks of m rounds. Of the m whose load is within 10% of the least, the
// smallest wins (the most blocks: more loads in flight). E.g. 2048 pairs of 4 per round with 3
// blocks per SM take 256 blocks of 2 rounds (16 pair-slots per SM) rather than 396 blocks of
// which some need a second, nearly empty round (24).
int gemv_grid(int n_pairs, int groups, int fit, int sms) {
  const int max_rounds = cdiv(n_pairs, groups);
  auto blocks_for = [&](int m) { return cdiv(n_pairs, int64_t(m) * groups); };
  auto load_for = [&](int m) { return int64_t(cdiv(blocks_for(m), sms)) * m; };
  int64_t best = INT64_MAX;
  for (int m = 1; m <= max_rounds; ++m) {
    if (blocks_for(m) > fit * sms) continue;
    best = std::min(best, load_for(m));
    if (blocks_for(m) <= sms) break;  // fewer rounds per block only leave SMs idle from here
  }
  for (int m = 1; m <= max_rounds; ++m)
    if (blocks_for(m) <= fit * sms && load_for(m) * 10 <= best * 11) return blocks_for(m);
  return std::min(blocks_for(max_rounds), fit * sms);
}

template <typename W, GemvEpilogue E, bool kStaged, bool kVec>
void launch_typed(const Params<W>& p, size_t smem, cudaStream_t stream) {
  auto kernel = gemv_kernel<W, E, kStaged, kVec>;
  // Blocks of this kernel that fit on one SM at this shared-memory size (asked once per size).
  static int cached_smem[64] = {}, cached_fit[64] = {};
  static int cached_n = 0;
  int fit = 0;
  for (int i = 0; i < cached_n; ++i)
    if (cached_smem[i] == int(smem)) fit = cached_fit[i];
  if (fit == 0) {
    if (smem > 48 * 1024) CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&fit, kernel, kWarps * 32, smem));
    fit = fit > 0 ? fit : 1;
    if (cached_n < 64) cached_smem[cached_n] = int(smem), cached_fit[cached_n++] = fit;
  }
  const int blocks = gemv_grid(p.n_pairs, kWarps / p.warps_per_pair, fit, sm_count());
  CUDA_CHECK(launch(kernel, dim3(blocks), dim3(kWarps * 32), smem, stream, true, p));
}

template <typename W, GemvEpilogue E>
void launch_epilogue(const Params<W>& p, bool staged, bool vec, cudaStream_t stream) {
  const size_t smem = staged ? sizeof(float) * size_t(p.k) : 0;
  if (staged)
    vec ? launch_typed<W, E, true, true>(p, smem, stream) : launch_typed<W, E, true, false>(p, smem, stream);
  else
    vec ? launch_typed<W, E, false, true>(p, smem, stream) : launch_typed<W, E, false, false>(p, smem, stream);
}

template <typename W>
void launch_gemv(float* out, const GemvInput& in, const GemvWeight& w, int n, int k, GemvEpilogue e,
                 const GemvRope* rope, cudaStream_t stream, int wpp) {
  Params<W> p{};
  p.out = out;
  p.in = in;
  p.w = static_cast<const W*>(w.data);
  p.k = k;
  constexpr bool kInt8 = std::is_same_v<W, int8_t>;
  if constexpr (kInt8) {
    LLAMA_TP_CHECK(w.scales && w.group > 0, "gemv: int8 weights need scales and a positive group");
    p.scales = w.scales;
    p.group = w.group;
    p.groups = cdiv(k, w.group);
    p.chunks_per_group = std::max(1, w.group / 16);
    p.chunk_shift = (p.chunks_per_group & (p.chunks_per_group - 1)) == 0 ? __builtin_ctz(unsigned(p.chunks_per_group)) : -1;
  }
  switch (e) {
    case GemvEpilogue::Store: p.rows = n, p.n_pairs = cdiv(n, 2), p.half = 1; break;
    case GemvEpilogue::Swiglu: p.rows = 2 * n, p.n_pairs = n, p.half = n; break;
    case GemvEpilogue::RopeKv:
      LLAMA_TP_CHECK(rope && rope->head_dim > 0 && rope->head_dim % 2 == 0 &&
                         n == (rope->n_heads + 2 * rope->n_kv_heads) * rope->head_dim && rope->inv_freq,
                     "gemv: the RoPE epilogue needs the attention shape of the ", n, " rows");
      p.rope = *rope;
      p.rows = n, p.n_pairs = n / 2, p.half = rope->head_dim / 2;
      break;
  }
  p.warps_per_pair = wpp > 0 ? wpp : gemv_warps_per_row(p.rows, k, w.dtype);
  LLAMA_TP_CHECK(p.warps_per_pair == 1 || p.warps_per_pair == 2 || p.warps_per_pair == 4 || p.warps_per_pair == 8,
                 "gemv: warps_per_row must be 1, 2, 4 or 8, not ", p.warps_per_pair);
  const bool staged = gemv_stages_input(k);
  LLAMA_TP_CHECK(staged || !in.norm, "gemv: rows of ", k, " are too long for the fused norm");
  const bool vec = k % kElems<W> == 0 && aligned16(w.data) && (staged || aligned16(in.x)) &&
                   (!kInt8 || w.group % 16 == 0);
  switch (e) {
    case GemvEpilogue::Store: launch_epilogue<W, GemvEpilogue::Store>(p, staged, vec, stream); break;
    case GemvEpilogue::Swiglu: launch_epilogue<W, GemvEpilogue::Swiglu>(p, staged, vec, stream); break;
    case GemvEpilogue::RopeKv: launch_epilogue<W, GemvEpilogue::RopeKv>(p, staged, vec, stream); break;
  }
}

}  // namespace

bool gemv_stages_input(int k) { return k <= kMaxStagedK && size_t(k) * sizeof(float) <= size_t(smem_optin()); }

int gemv_warps_per_row(int n, int k, DType w_dtype) {
  // More warps per row pair while the grid is short of 2 blocks per SM and each lane keeps at
  // least one full round of kUnroll loads.
  const int vecs = k / (16 / int(dtype_size(w_dtype)));
  const int pairs = cdiv(n, 2);
  int wpp = 1;
  while (wpp < kWarps && cdiv(pairs, kWarps / wpp) < 2 * sm_count() && vecs >= 2 * wpp * 32 * kUnroll) wpp *= 2;
  return wpp;
}

void gemv_cuda(float* out, const GemvInput& in, const GemvWeight& w, int n, int k, GemvEpilogue epilogue,
               const GemvRope* rope, cudaStream_t stream, int warps_per_row) {
  if (n == 0) return;
  LLAMA_TP_CHECK(k > 0, "gemv: empty rows");
  if (w.dtype == DType::I8)
    launch_gemv<int8_t>(out, in, w, n, k, epilogue, rope, stream, warps_per_row);
  else
    dispatch_float(w.dtype, [&](auto tag) {
      launch_gemv<decltype(tag)>(out, in, w, n, k, epilogue, rope, stream, warps_per_row);
    });
}

void gemv_cuda(float* out, const float* x, const void* w, DType w_dtype, int n, int k, cudaStream_t stream,
               int warps_per_row) {
  GemvInput in;
  in.x = x;
  gemv_cuda(out, in, GemvWeight{w, w_dtype}, n, k, GemvEpilogue::Store, nullptr, stream, warps_per_row);
}

void gemv_swiglu_cuda(float* out, const float* x, const void* w13, DType w_dtype, int ffn, int k,
                      cudaStream_t stream, int warps_per_row) {
  GemvInput in;
  in.x = x;
  gemv_cuda(out, in, GemvWeight{w13, w_dtype}, ffn, k, GemvEpilogue::Swiglu, nullptr, stream, warps_per_row);
}

void gemv_int8_cuda(float* out, const float* x, const int8_t* q, const float* scales, int n, int k, int group,
                    cudaStream_t stream) {
  GemvInput in;
  in.x = x;
  gemv_cuda(out, in, GemvWeight{q, DType::I8, scales, group}, n, k, GemvEpilogue::Store, nullptr, stream);
}

}  // namespace llama_tp::kernels

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

// Rows of pair `pair`: r0 and r1 = r0 + half, or r0 again where a Store pair's second row is
// past the end (Params::n_pairs).
template <typename W>
__device__ __forceinline__ void pair_rows(const Params<W>& p, int pair, int& r0, int& r1) {
  r0 = (pair / p.half) * 2 * p.half + pair % p.half;
  r1 = r0 + p.half < p.rows ? r0 + p.half : r0;
}

// The scale of row r for 16-byte chunk c (a chunk lies in one scale group: group % 16 == 0).
__device__ __forceinline__ float chunk_scale(const Params<int8_t>& p, int r, int c) {
  const int g = p.chunk_shift >= 0 ? c >> p.chunk_shift : c / p.chunks_per_group;
  return __ldg(p.scales + size_t(r) * p.groups + g);
}

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
      b.s0[j] = ok ? chunk_scale(p, r0, c) : 0.f;
      b.s1[j] = ok ? chunk_scale(p, r1, c) : 0.f;
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
    pair_rows(p, pair, r0, r1);
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

  // After the loads that need nothing from the kernel before: wait for it, let the next one
  // start, and stage x (the normalized residual stream) where the kernel keeps it.
  auto start_on_x = [&]() -> const float* {
    wait_for_previous_kernel();
    release_next_kernel();
    if constexpr (kStaged) {
      stage_input(p, s_x);
      return s_x;
    } else {
      return p.in.x;
    }
  };

  if constexpr (kVec) {
    // Batches of loads, one ahead of the arithmetic: the first is issued before this kernel
    // waits for the one before it (weights do not depend on it) and before x is staged.
    const int per_batch = kUnroll * stride;
    const int n_iter = cdiv(p.k / kElems<W>, per_batch);  // batches per pair
    const int total = rounds * n_iter;
    Batch<W> cur;
    // Rows of the batch being summed (r, valid) and of the one being loaded (n, n_valid), found
    // once per round (the pair's rows take divisions).
    int r0 = 0, r1 = 0;
    bool valid = total > 0 && rows_of(0, r0, r1);
    if (valid) load_batch(p, r0, r1, t, stride, cur);
    int n0 = r0, n1 = r1;
    bool n_valid = valid;
    const float* x = start_on_x();
    float a0 = 0.f, a1 = 0.f;
    int round = 0, it = 0;
    for (int b = 0; b < total; ++b) {
      const int next_round = it + 1 == n_iter ? round + 1 : round, next_it = it + 1 == n_iter ? 0 : it + 1;
      if (next_it == 0) n_valid = next_round < rounds && rows_of(next_round, n0, n1);
      Batch<W> next;
      if (n_valid) load_batch(p, n0, n1, t + next_it * per_batch, stride, next);
      if (valid) dot_batch<W, kStaged>(p, cur, x, t + it * per_batch, stride, a0, a1);
      if (it == n_iter - 1) {
        finish(round, a0, a1);
        a0 = a1 = 0.f;
      }
      cur = next;
      round = next_round, it = next_it;
      if (it == 0) r0 = n0, r1 = n1, valid = n_valid;
    }
  } else {
    const float* x = start_on_x();
    for (int round = 0; round < rounds; ++round) {
      int r0, r1;
      float a0 = 0.f, a1 = 0.f;
      if (rows_of(round, r0, r1)) row_pair_dot_scalar(p, r0, r1, x, t, stride, a0, a1);
      finish(round, a0, a1);
    }
  }
}

// ---- int8 weights on the tensor cores ----------------------------------------------------
// On the float path above, int8 weights leave the GEMV compute-bound: each weight takes two
// instructions to become a float and one FMA (measured 2.6 of 4.1 TB/s on an H200, gate/up of
// Llama-3-8B). Here a warp takes 8 row pairs (16 rows) at once as the A operand of
// mma.m16n8k16 (f16 in, f32 sums): int8 to f16 is exact and takes one PRMT and one HSUB2 per
// two weights. x is the B operand, every column the same, as two f16 parts (hi + lo: 22 bits)
// scaled by a power of two that puts max|x| near 2^14, so neither overflows nor underflows and
// the result matches the float path to ~1e-6. Lane (m = lane / 4, q = lane % 4) streams
// 16-byte chunks 4s + q of pair m's two rows: the four lanes of a pair cover the 64 columns of
// superchunk s, whose k order the mma may permute freely (B is permuted alike), and which lies
// in one scale group (group % 64 == 0). Sums come back in C: row m (r0) and m + 8 (r1).

constexpr int kPairsPerWarp = 8;
constexpr int kSuperchunk = 64;  // columns per mma round of a warp (4 lanes x 16 bytes)

__device__ __forceinline__ void mma_f16_16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                              uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#else
  __trap();  // launch_gemv takes this path on compute capability 8.0 and later only
#endif
}

// Two int8 of a word (bytes `lo` and lo + 1, biased by 128) as exact f16: 0x64XX is 1024 + XX,
// less 1152 = 1024 + 128.
template <int kLo>
__device__ __forceinline__ uint32_t int8x2_to_half2(uint32_t biased) {
  const uint32_t h = __byte_perm(biased, 0x64646464u, kLo == 0 ? 0x4140u : 0x4342u);
  const __half2 v = __hsub2(*reinterpret_cast<const __half2*>(&h), __half2half2(__ushort_as_half(0x6480)));
  return *reinterpret_cast<const uint32_t*>(&v);
}

// x into shared memory as f16 parts, per 4 columns [hi0 hi1 hi2 hi3 lo0 lo1 lo2 lo3] (one
// 16-byte load is one word's B operands); returns what the sums must be multiplied by.
__device__ float stage_input_f16(const Params<int8_t>& p, float* s_x) {
  stage_input(p, s_x);  // floats, normalized where asked
  float mx = 0.f;
  for (int i = threadIdx.x; i < p.k; i += blockDim.x) mx = fmaxf(mx, fabsf(s_x[i]));
  mx = block_max(mx);  // its barriers also end every read of s_x above
  const int e = mx > 0.f ? min(max(14 - ilogbf(mx), -100), 100) : 0;
  const float mult = ldexpf(1.f, e);
  for (int g = threadIdx.x; g < p.k / 4; g += blockDim.x) {
    const float4 v = reinterpret_cast<const float4*>(s_x)[g];
    const float f[4] = {v.x * mult, v.y * mult, v.z * mult, v.w * mult};
    __half hi[4], lo[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      hi[i] = __float2half_rn(f[i]);
      lo[i] = __float2half_rn(f[i] - __half2float(hi[i]));
    }
    uint4 out;
    const __half2 h01 = __halves2half2(hi[0], hi[1]), h23 = __halves2half2(hi[2], hi[3]);
    const __half2 l01 = __halves2half2(lo[0], lo[1]), l23 = __halves2half2(lo[2], lo[3]);
    out.x = *reinterpret_cast<const uint32_t*>(&h01);
    out.y = *reinterpret_cast<const uint32_t*>(&h23);
    out.z = *reinterpret_cast<const uint32_t*>(&l01);
    out.w = *reinterpret_cast<const uint32_t*>(&l23);
    reinterpret_cast<uint4*>(s_x)[g] = out;  // in place: this thread alone read group g
  }
  __syncthreads();
  return 1.f / mult;
}

// Blocks take octets of 8 pairs as gemv_kernel takes pairs; warps_per_pair warps share an
// octet, warp w taking superchunks w, w + wpp, ...
template <GemvEpilogue E>
__global__ void __launch_bounds__(kWarps * 32) gemv_int8_mma_kernel(Params<int8_t> p) {
  extern __shared__ float4 smem4[];
  float* s_x = reinterpret_cast<float*>(smem4);
  __shared__ float s_part[2][kWarps][kPairsPerWarp];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, wpp = p.warps_per_pair;
  const int groups = kWarps / wpp, group = warp / wpp, sub = warp % wpp, m = lane / 4, q = lane % 4;
  const int n_oct = cdiv(p.n_pairs, kPairsPerWarp);
  const int begin = int(int64_t(n_oct) * blockIdx.x / gridDim.x);
  const int end = int(int64_t(n_oct) * (blockIdx.x + 1) / gridDim.x);
  const int rounds = cdiv(end - begin, groups);
  const int n_sc = p.k / kSuperchunk;
  const int n_iter = cdiv(n_sc, kUnroll * wpp);  // batches per octet, the same for every warp
  auto pair_of = [&](int round) { return (begin + round * groups + group) * kPairsPerWarp + m; };
  auto rows_of = [&](int round, int& r0, int& r1) {
    const int pair = pair_of(round);
    pair_rows(p, pair, r0, r1);
    return begin + round * groups + group < end && pair < p.n_pairs;
  };
  // Batch `it` of an octet: superchunks sub + (it * kUnroll + u) * wpp, chunk 4 s + q of each row.
  auto load = [&](int r0, int r1, bool valid, int it, Batch<int8_t>& b) {
    const uint4* w0 = reinterpret_cast<const uint4*>(p.w + size_t(r0) * p.k);
    const uint4* w1 = reinterpret_cast<const uint4*>(p.w + size_t(r1) * p.k);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int sc = sub + (it * kUnroll + u) * wpp, c = 4 * sc + q;
      const bool ok = valid && sc < n_sc;
      b.u0[u] = ok ? __ldcs(w0 + c) : make_uint4(0, 0, 0, 0);
      b.u1[u] = ok ? __ldcs(w1 + c) : make_uint4(0, 0, 0, 0);
      b.s0[u] = ok ? chunk_scale(p, r0, c) : 0.f;
      b.s1[u] = ok ? chunk_scale(p, r1, c) : 0.f;
    }
  };

  Batch<int8_t> cur;
  // Rows of the octet being loaded, found once per round (as gemv_kernel).
  int n0 = 0, n1 = 0;
  bool n_valid = rounds > 0 && n_iter > 0 && rows_of(0, n0, n1);
  load(n0, n1, n_valid, 0, cur);
  wait_for_previous_kernel();
  release_next_kernel();
  const float x_scale = stage_input_f16(p, s_x);
  const uint4* s_xw = reinterpret_cast<const uint4*>(s_x);  // one entry per 4 columns

  float a0 = 0.f, a1 = 0.f;
  int round = 0, it = 0;
  for (int b = 0; b < rounds * n_iter; ++b) {
    const int next_round = it + 1 == n_iter ? round + 1 : round, next_it = it + 1 == n_iter ? 0 : it + 1;
    if (next_it == 0) n_valid = next_round < rounds && rows_of(next_round, n0, n1);
    Batch<int8_t> next;
    if (next_round < rounds) load(n0, n1, n_valid, next_it, next);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int sc = sub + (it * kUnroll + u) * wpp;
      if (sc >= n_sc) break;  // the same for the whole warp (the mma needs every lane)
      const uint32_t w0[4] = {cur.u0[u].x, cur.u0[u].y, cur.u0[u].z, cur.u0[u].w};
      const uint32_t w1[4] = {cur.u1[u].x, cur.u1[u].y, cur.u1[u].z, cur.u1[u].w};
      float hi[4] = {0.f, 0.f, 0.f, 0.f}, lo[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const uint32_t b0 = w0[j] ^ 0x80808080u, b1 = w1[j] ^ 0x80808080u;
        const uint32_t a0r = int8x2_to_half2<0>(b0), a2r = int8x2_to_half2<2>(b0);
        const uint32_t a1r = int8x2_to_half2<0>(b1), a3r = int8x2_to_half2<2>(b1);
        const uint4 xv = s_xw[(16 * (4 * sc + q) + 4 * j) / 4];
        mma_f16_16816(hi, a0r, a1r, a2r, a3r, xv.x, xv.y);
        mma_f16_16816(lo, a0r, a1r, a2r, a3r, xv.z, xv.w);
      }
      a0 += (hi[0] + lo[0]) * cur.s0[u];
      a1 += (hi[2] + lo[2]) * cur.s1[u];
    }
    if (it == n_iter - 1) {
      if (wpp > 1) {
        __syncthreads();  // the previous round's partials have been read
        if (q == 0) s_part[0][warp][m] = a0, s_part[1][warp][m] = a1;
        __syncthreads();
        a0 = a1 = 0.f;
        for (int w = group * wpp; w < (group + 1) * wpp; ++w) a0 += s_part[0][w][m], a1 += s_part[1][w][m];
      }
      int r0, r1;
      if (rows_of(round, r0, r1) && q == 0 && sub == 0)
        finish_pair<E>(p, pair_of(round), r0, r0 + p.half, a0 * x_scale, a1 * x_scale);
      a0 = a1 = 0.f;
    }
    cur = next;
    round = next_round, it = next_it;
  }
}

// Whether int8 products take gemv_int8_mma_kernel: Ampere or later, whole superchunks and scale
// groups, x staged (LLAMA_TP_INT8_MMA=0 keeps the float path, for comparisons).
bool int8_mma_applies(int k, int group, bool vec, bool staged) {
  static const bool allowed = env_allows("LLAMA_TP_INT8_MMA");
  return allowed && vec && staged && k % kSuperchunk == 0 && group % kSuperchunk == 0 &&
         device_attribute<cudaDevAttrComputeCapabilityMajor>(0) >= 8;
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

// Warps sharing each of `units` work units (row pairs, or octets of them) whose rows take
// `lane_loads` 16-byte loads per lane of one warp: more while the grid is short of 2 blocks per
// SM and each lane keeps at least two full batches of kUnroll loads.
int warps_per_unit(int units, int lane_loads) {
  int wpp = 1;
  while (wpp < kWarps && cdiv(units, kWarps / wpp) < 2 * sm_count() && lane_loads >= 2 * wpp * kUnroll) wpp *= 2;
  return wpp;
}

// `units` (row pairs, or octets of them) over blocks of kWarps / p.warps_per_pair groups.
template <typename W>
void launch_units(void (*kernel)(Params<W>), const Params<W>& p, int units, size_t smem, cudaStream_t stream) {
  const int fit = resident_blocks(reinterpret_cast<const void*>(kernel), kWarps * 32, smem);
  const int blocks = gemv_grid(units, kWarps / p.warps_per_pair, fit, sm_count());
  CUDA_CHECK(launch(kernel, dim3(blocks), dim3(kWarps * 32), smem, stream, true, p));
}

template <typename W, GemvEpilogue E>
void launch_epilogue(const Params<W>& p, bool staged, bool vec, cudaStream_t stream) {
  const size_t smem = staged ? sizeof(float) * size_t(p.k) : 0;
  if (staged)
    launch_units(vec ? gemv_kernel<W, E, true, true> : gemv_kernel<W, E, true, false>, p, p.n_pairs, smem, stream);
  else
    launch_units(vec ? gemv_kernel<W, E, false, true> : gemv_kernel<W, E, false, false>, p, p.n_pairs, smem, stream);
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
  const bool staged = gemv_stages_input(k);
  LLAMA_TP_CHECK(staged || !in.norm, "gemv: rows of ", k, " are too long for the fused norm");
  const bool vec = k % kElems<W> == 0 && aligned16(w.data) && (staged || aligned16(in.x)) &&
                   (!kInt8 || w.group % 16 == 0);
  LLAMA_TP_CHECK(wpp == 0 || wpp == 1 || wpp == 2 || wpp == 4 || wpp == 8,
                 "gemv: warps_per_row must be 1, 2, 4 or 8, not ", wpp);
  if constexpr (kInt8) {
    if (int8_mma_applies(k, w.group, vec, staged)) {
      // Octets of pairs; more warps share one while the octets alone leave SMs idle.
      const int octets = cdiv(p.n_pairs, kPairsPerWarp);
      p.warps_per_pair = wpp > 0 ? wpp : warps_per_unit(octets, k / kSuperchunk);
      const size_t smem = sizeof(float) * size_t(k);
      switch (e) {
        case GemvEpilogue::Store: launch_units(gemv_int8_mma_kernel<GemvEpilogue::Store>, p, octets, smem, stream); break;
        case GemvEpilogue::Swiglu: launch_units(gemv_int8_mma_kernel<GemvEpilogue::Swiglu>, p, octets, smem, stream); break;
        case GemvEpilogue::RopeKv: launch_units(gemv_int8_mma_kernel<GemvEpilogue::RopeKv>, p, octets, smem, stream); break;
      }
      return;
    }
  }
  p.warps_per_pair = wpp > 0 ? wpp : gemv_warps_per_row(p.rows, k, w.dtype);
  switch (e) {
    case GemvEpilogue::Store: launch_epilogue<W, GemvEpilogue::Store>(p, staged, vec, stream); break;
    case GemvEpilogue::Swiglu: launch_epilogue<W, GemvEpilogue::Swiglu>(p, staged, vec, stream); break;
    case GemvEpilogue::RopeKv: launch_epilogue<W, GemvEpilogue::RopeKv>(p, staged, vec, stream); break;
  }
}

}  // namespace

bool gemv_stages_input(int k) { return k <= kMaxStagedK && size_t(k) * sizeof(float) <= size_t(smem_optin()); }

int gemv_warps_per_row(int n, int k, DType w_dtype) {
  return warps_per_unit(cdiv(n, 2), k / (16 / int(dtype_size(w_dtype))) / 32);
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

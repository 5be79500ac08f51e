#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>
#include <type_traits>

#include "kernels/common_cuda.h"
#include "kernels/gemv_cuda.h"
#include "kernels/gemv_int8_dot_cuda.h"
#include "kernels/rope_sincos.h"
#include "kernels/timeline_cuda.h"
#include "runtime/cuda_check.h"

namespace llama_tp::kernels {

namespace {

// Warps per block: 16, one block per SM (every block stages all of x, so two blocks of 8 read
// twice the bytes of x from L2 before their dots can start). int8 took 16 in session 16 (H200,
// Llama-3-8B int8 tg128 366.3 -> 374.5 t/s in one call, 364.4/363.0 -> 375.5/374.9 in another),
// when float weights lost 0.5% with them; in session 24 float weights gained too (H200, same
// call, 2 rounds: 8B bf16 tg128 252.7 -> 256.0 t/s, at depth 128 251.1 -> 254.6, Llama-3.2-1B
// 1161.0 -> 1170.2). (Prefetching each block's share into L2 before the wait for the kernel
// before, the first 8 to 64 MB of a launch: 8B bf16 even to -10%, int8 -1% to -10%; not kept.)
constexpr int kBlockWarps = 16;
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
  const QuantScale* scales;  // i8
  int group, groups;    // i8
  unsigned group_magic, group_one;  // i8, vector path: chunk c's scale group is umulhi(c, magic) + c * one
  int scale_lane_shift;  // i8: shared_scale_shift (0: a scale a chunk, not kShareScales)
  int k;
  int rows;             // weight rows
  int n_pairs;          // row pairs: pair p is rows r0 = (p / half) * 2 * half + p % half and r0 + half
  int half;
  int warps_per_pair;
  int norm_ahead;       // float staging with a norm: 16-byte chunks of its weights copied to shared
                        // memory after x (k floats) before the wait (norm_ahead_applies), or 0
  GemvRope rope;
  Timeline timeline;    // LLAMA_TP_TIMELINE (kernels/timeline_cuda.h)
};

// Rows of pair `pair`: r0 and r1 = r0 + half, or r0 again where a Store pair's second row is
// past the end (Params::n_pairs).
template <typename W>
__device__ __forceinline__ void pair_rows(const Params<W>& p, int pair, int& r0, int& r1) {
  r0 = (pair / p.half) * 2 * p.half + pair % p.half;
  r1 = r0 + p.half < p.rows ? r0 + p.half : r0;
}

// The scale of row r for 16-byte chunk c (a chunk lies in one scale group: group % 16 == 0). The
// group, c / d for d chunks a group, is a multiply-high by ceil(2^32 / d) (d = 1: c itself), exact
// while c * d < 2^32 (launch_gemv checks k < 2^20); two instructions for any d, where a division
// beside a shift for powers of two took two branches in each of the kernel's inlined loads.
__device__ __forceinline__ unsigned chunk_group(const Params<int8_t>& p, int c) {
  return __umulhi(unsigned(c), p.group_magic) + unsigned(c) * p.group_one;
}
__device__ __forceinline__ float chunk_scale(const Params<int8_t>& p, int r, int c) {
  return device_quant_scale_value(__ldg(p.scales + size_t(r) * p.groups + chunk_group(p, c)));
}

// Shared scales (shared_scale_shift: 8, 16 or 32 chunks a group, or one group a row). A warp's
// batch is kUnroll runs of 32 consecutive chunks of each of its two rows, each run starting at a
// multiple of 32 chunks, so a run spans at most 4 groups and lane l's chunk of run j lies in group
// g_j + (l >> scale_lane_shift), g_j the group of the run's first chunk. Lane 4 j + q (row r0)
// and 16 + 4 j + q (row r1) load the scale of group g_j + q, one load a lane instead of one a
// chunk and row (2 kUnroll), and the dots take theirs with shuffles (dot_batch_int). With a load
// a chunk, Llama-3-8B int8 ran 4.5% slower than with no scales at all (a timing probe); shared
// loads of the f16 scales: 403.0 -> 418.1 t/s (H200, same call, session 23).
static_assert(kUnroll == 4, "shared_scale: 4 runs of 4 groups for each of 16 lanes a row");
__device__ __forceinline__ float shared_scale(const Params<int8_t>& p, int r0, int r1, int i, int stride) {
  const int lane = threadIdx.x % 32, run = (lane % 16) / 4;
  const int first = i - lane + run * stride;  // the run's first chunk (i: this lane's chunk of run 0)
  const unsigned g = min(chunk_group(p, first) + unsigned(lane % 4), unsigned(p.groups - 1));
  return device_quant_scale_value(__ldg(p.scales + size_t(lane < 16 ? r0 : r1) * p.groups + g));
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
    return float(p.w[size_t(r) * p.k + c]) * device_quant_scale_value(p.scales[size_t(r) * p.groups + c / p.group]);
  else
    return to_f32(p.w[size_t(r) * p.k + c]);
}

// One batch of a lane's loads: kUnroll 16-byte chunks of each row of a pair (chunks i, i + stride,
// ...), with their scales for int8 (shared scales: the lane's one, in s0[0]). Issued together so
// that their latencies overlap, and one batch ahead of the arithmetic (gemv_kernel), so that a warp
// always has loads in flight.
template <typename W>
struct Batch {
  static constexpr int kScales = std::is_same_v<W, int8_t> ? kUnroll : 1;
  uint4 u0[kUnroll], u1[kUnroll];
  float s0[kScales], s1[kScales];
};

// Streaming loads (__ldcs): the weights are read once per token.
template <typename W, bool kShareScales = false>
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
    if constexpr (std::is_same_v<W, int8_t> && !kShareScales) {
      b.s0[j] = ok ? chunk_scale(p, r0, c) : 0.f;
      b.s1[j] = ok ? chunk_scale(p, r1, c) : 0.f;
    }
  }
  if constexpr (kShareScales) b.s0[0] = shared_scale(p, r0, r1, i, stride);
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

// sincosf past rope_sincos's range, out of line (kernels/rope_sincos.h).
__device__ __noinline__ float2 rope_sincos_large(float a) {
  float2 sc;
  sincosf(a, &sc.x, &sc.y);
  return sc;
}

// The pair's results into out (and the caches): the same arithmetic as swiglu_cuda and
// rope_kv_append_cuda (RoPE's sin and cos within 2 ulp of its sincosf: rope_sincos).
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
      const float angle = float(pos) * r.inv_freq[i];
      if (rope_sincos_in_range(angle)) {
        rope_sincos(angle, s, c);
      } else {
        const float2 sc = rope_sincos_large(angle);
        s = sc.x, c = sc.y;
      }
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

constexpr int kStageLoads = 4;  // 16-byte loads per thread and operand in flight while staging x

// Whether x (+ delta, f32 norm weights, x_out) can be staged with 16-byte accesses: the staging
// the kernels keep inline. Anything else (a pointer off 16 bytes, k % 4 != 0, norm weights in 16
// bits) takes the general staging, out of line (stage_input_general, planes_rounds_general): each
// launch fetches its kernel's code cold, at a few bytes a cycle, so code the common case never
// runs must not lie in its path. (The CUDA backend keeps norm weights in f32: upload_norm.) On an
// H200 in two calls, with the multiply-high of chunk_scale, against the inline general staging
// and norms in the compute dtype: Llama-3-8B int8 tg128 +2.3% and +2.6% (387 -> 396-400 t/s),
// Llama-3.2-1B +0.5%, 8B bf16 -0.2 to -0.4% (not traced; the norm's weights, now 4 bytes, are
// twice the bytes the float kernels copy ahead). A probe that dropped the general path altogether
// had measured the same: int8 +1.9%, its q/k/v's x ready 3.66 -> 3.27 us after the wait.
__host__ __device__ inline bool stages_in_vectors(const GemvInput& in, int k) {
  return k % 4 == 0 && aligned16(in.x) && (!in.delta || aligned16(in.delta)) &&
         (!in.norm || (in.norm_dtype == DType::F32 && aligned16(in.norm) && (!in.x_out || aligned16(in.x_out))));
}

// x + delta into s_x, one element at a time, any alignment; then, with a norm (any dtype), the
// normalized values, and x_out from block 0. Ends with a barrier.
__device__ __noinline__ void stage_input_general(GemvInput in, int k, float* s_x) {
  float ss = 0.f;
  for (int i = threadIdx.x; i < k; i += blockDim.x) {
    const float v = in.delta ? in.x[i] + in.delta[i] : in.x[i];
    s_x[i] = v;
    ss += v * v;
  }
  if (in.norm) {
    ss = block_sum(ss);  // its barriers also make s_x visible to the whole block
    const float scale = 1.0f / sqrtf(ss / float(k) + in.eps);  // as rmsnorm_cuda
    const bool write_stream = in.x_out && blockIdx.x == 0;
    for (int i = threadIdx.x; i < k; i += blockDim.x) {
      const float v = s_x[i];
      if (write_stream) in.x_out[i] = v;
      s_x[i] = v * scale * load_norm(in.norm, in.norm_dtype, i);
    }
  }
  __syncthreads();
}

// x (or the normalized residual stream) into shared memory; block 0 also writes x_out. 16-byte
// loads, kStageLoads of each operand issued together, so that the block waits for a few rounds of
// loads (x of 14336 floats: 4 rounds, not 14); stage_input_general where they do not apply.
template <typename W>
__device__ void stage_input(const Params<W>& p, float* s_x) {
  const GemvInput& in = p.in;
  if (!stages_in_vectors(in, p.k)) return stage_input_general(in, p.k, s_x);
  float ss = 0.f;
  const int n4 = p.k / 4, step = kStageLoads * blockDim.x;
  float4* s_x4 = reinterpret_cast<float4*>(s_x);
  const float4* x4 = reinterpret_cast<const float4*>(in.x);
  const float4* d4 = reinterpret_cast<const float4*>(in.delta);
  for (int base = threadIdx.x; base < n4; base += step) {
    float4 v[kStageLoads], d[kStageLoads];
#pragma unroll
    for (int u = 0; u < kStageLoads; ++u) {
      const int i = base + u * blockDim.x;
      v[u] = i < n4 ? x4[i] : make_float4(0.f, 0.f, 0.f, 0.f);
      d[u] = d4 && i < n4 ? d4[i] : make_float4(0.f, 0.f, 0.f, 0.f);
    }
#pragma unroll
    for (int u = 0; u < kStageLoads; ++u) {
      const int i = base + u * blockDim.x;
      if (i >= n4) break;
      const float4 e = make_float4(v[u].x + d[u].x, v[u].y + d[u].y, v[u].z + d[u].z, v[u].w + d[u].w);
      s_x4[i] = e;
      ss += e.x * e.x + e.y * e.y + e.z * e.z + e.w * e.w;
    }
  }
  if (in.norm) {
    // The norm's weights (f32) from where they were copied before the wait (Params::norm_ahead).
    const float* norm = p.norm_ahead ? s_x + p.k : static_cast<const float*>(in.norm);
    const float4* norm4 = reinterpret_cast<const float4*>(norm);
    if (p.norm_ahead) groups_arrived();
    ss = block_sum(ss);  // its barriers also make s_x (and the norm's copies) visible to the whole block
    const float scale = 1.0f / sqrtf(ss / float(p.k) + in.eps);  // as rmsnorm_cuda
    const bool write_stream = in.x_out && blockIdx.x == 0;
    for (int base = threadIdx.x; base < n4; base += step) {
      float4 g[kStageLoads];
#pragma unroll
      for (int u = 0; u < kStageLoads; ++u) {
        const int i = base + u * blockDim.x;
        g[u] = i < n4 ? norm4[i] : make_float4(0.f, 0.f, 0.f, 0.f);
      }
#pragma unroll
      for (int u = 0; u < kStageLoads; ++u) {
        const int i = base + u * blockDim.x;
        if (i >= n4) break;
        const float4 v = s_x4[i];
        if (write_stream) reinterpret_cast<float4*>(in.x_out)[i] = v;
        s_x4[i] = make_float4(v.x * scale * g[u].x, v.y * scale * g[u].y, v.z * scale * g[u].z, v.w * scale * g[u].w);
      }
    }
  }
  __syncthreads();
}

// The rounds of stage_input_planes with 16-byte (kV, f32 norm weights) or scalar accesses (any
// alignment and norm dtype), chosen outside the loop so that each round's loads are all issued
// before the first is used. Returns this thread's share of the sum of squares.
template <bool kV>
__device__ __forceinline__ float planes_rounds(const GemvInput& in, int k, const XPlanes planes) {
  const int quarters = k / 4;
  const bool write_stream = in.x_out && blockIdx.x == 0;
  uint32_t* hi = reinterpret_cast<uint32_t*>(planes.hi);  // word i: quarter i of the hi plane
  uint32_t* lo = hi + quarters;
  float ss = 0.f;
  const int step = kStageLoads * blockDim.x;
  auto load4 = [&](const float* a, int i) {
    if constexpr (kV) return *reinterpret_cast<const float4*>(a + 4 * i);
    else return make_float4(a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]);
  };
  auto norm4 = [&](int i) {
    if constexpr (kV) return load4(static_cast<const float*>(in.norm), i);
    else return make_float4(load_norm(in.norm, in.norm_dtype, 4 * i), load_norm(in.norm, in.norm_dtype, 4 * i + 1),
                            load_norm(in.norm, in.norm_dtype, 4 * i + 2), load_norm(in.norm, in.norm_dtype, 4 * i + 3));
  };
  const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f), one = make_float4(1.f, 1.f, 1.f, 1.f);
  // Rounds uniform across the block (the shuffles need whole warps); lanes past the end
  // compute zeros and write nothing.
  for (int round = 0; round < quarters; round += step) {
    float4 v[kStageLoads], d[kStageLoads], g[kStageLoads];
#pragma unroll
    for (int u = 0; u < kStageLoads; ++u) {
      const int i = round + u * blockDim.x + threadIdx.x;
      v[u] = i < quarters ? load4(in.x, i) : zero;
      d[u] = in.delta && i < quarters ? load4(in.delta, i) : zero;
      g[u] = in.norm && i < quarters ? norm4(i) : one;
    }
#pragma unroll
    for (int u = 0; u < kStageLoads; ++u) {
      const int i = round + u * blockDim.x + threadIdx.x;
      if (round + u * blockDim.x >= quarters) break;  // uniform: no lane of the block has a quarter
      const float4 e = make_float4(v[u].x + d[u].x, v[u].y + d[u].y, v[u].z + d[u].z, v[u].w + d[u].w);
      ss += e.x * e.x + e.y * e.y + e.z * e.z + e.w * e.w;
      if (write_stream && i < quarters) {
        if constexpr (kV) reinterpret_cast<float4*>(in.x_out)[i] = e;
        else in.x_out[4 * i] = e.x, in.x_out[4 * i + 1] = e.y, in.x_out[4 * i + 2] = e.z, in.x_out[4 * i + 3] = e.w;
      }
      const float4 y = make_float4(e.x * g[u].x, e.y * g[u].y, e.z * g[u].z, e.w * g[u].w);
      float mx = max_abs_nan(max_abs_nan(max_abs_nan(max_abs_nan(0.f, y.x), y.y), y.z), y.w);
      mx = max_abs_nan(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = max_abs_nan(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      // |y * inv| stays below kMaxQ + 0.5 (inv at most 2 ulp above kMaxQ / mx); below 1e-30: zeros.
      const float inv = mx >= 1e-30f ? __fdividef(float(kMaxQ), mx) : 0.f;
      auto q = [&](float f) { return __float_as_uint(fmaf(f, inv, 12582912.f)); };
      const uint32_t a = __byte_perm(q(y.x), q(y.y), 0x5140), b = __byte_perm(q(y.z), q(y.w), 0x5140);
      if (i < quarters) {
        lo[i] = __byte_perm(a, b, 0x5410);
        hi[i] = __byte_perm(a, b, 0x7632);
        if (i % 4 == 0) planes.scale[i / 4] = mx * (1.f / float(kMaxQ));
      }
    }
  }
  return ss;
}
// The scalar rounds, out of line (see stages_in_vectors).
__device__ __noinline__ float planes_rounds_general(GemvInput in, int k, XPlanes planes) {
  return planes_rounds<false>(in, k, planes);
}

// The integer kind's x (or normalized residual stream) straight into its planes
// (gemv_int8_dot_cuda.h): 4 threads per 16-column segment, each a 16-byte quarter of x (+ delta)
// times the norm weights, rounded with the segment's max (two shuffles). The norm's 1 / rms,
// common to every column, is returned to scale the dot products instead of the values, so that
// x is read once. Block 0 also writes x_out. k % 16 == 0 (int_dot_applies). Every block does
// this for the whole of x, so it is kept short: one reciprocal per segment, one FMA per value
// (adding 1.5 * 2^23 leaves the integer in the low mantissa bits: bytes 0 and 1 are its 16-bit
// two's complement), byte permutes into the planes. A NaN makes its segment's scale NaN, so
// that NaN reaches the output as on the float path.
template <typename W>
__device__ float stage_input_planes(const Params<W>& p, const XPlanes planes) {
  const GemvInput& in = p.in;
  const float ss =
      stages_in_vectors(in, p.k) ? planes_rounds<true>(in, p.k, planes) : planes_rounds_general(in, p.k, planes);
  float norm_scale = 1.f;
  if (in.norm) norm_scale = 1.0f / sqrtf(block_sum(ss) / float(p.k) + in.eps);  // as rmsnorm_cuda
  __syncthreads();
  return norm_scale;
}

// The batch's share of the dots of its two rows with x, in integers per chunk (see above).
template <bool kShareScales>
__device__ __forceinline__ void dot_batch_int(const Params<int8_t>& p, const Batch<int8_t>& b, const XPlanes& x,
                                              int i, int stride, float& a0, float& a1) {
  const int nv = p.k / 16;
  float s0[kUnroll], s1[kUnroll];  // the chunks' scales of the two rows
#pragma unroll
  for (int j = 0; j < kUnroll; ++j) {
    if constexpr (kShareScales) {  // from the lanes that loaded them (shared_scale), whole warp
      const int from = 4 * j + (threadIdx.x % 32 >> p.scale_lane_shift);
      s0[j] = __shfl_sync(0xffffffffu, b.s0[0], from);
      s1[j] = __shfl_sync(0xffffffffu, b.s0[0], 16 + from);
    } else {
      s0[j] = b.s0[j], s1[j] = b.s1[j];
    }
  }
#pragma unroll
  for (int j = 0; j < kUnroll; ++j) {
    const int c = i + j * stride;
    if (c >= nv) break;
    const uint4 u0 = b.u0[j], u1 = b.u1[j], xh = x.hi[c], xl = x.hi[nv + c];
    const float sx = x.scale[c];
    int h0 = 0, h1 = 0, l0 = 0, l1 = 0;
    const uint32_t w0[4] = {u0.x, u0.y, u0.z, u0.w}, w1[4] = {u1.x, u1.y, u1.z, u1.w};
    const uint32_t xhw[4] = {xh.x, xh.y, xh.z, xh.w}, xlw[4] = {xl.x, xl.y, xl.z, xl.w};
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      h0 = dp4a_s8s8(w0[e], xhw[e], h0), h1 = dp4a_s8s8(w1[e], xhw[e], h1);
      l0 = dp4a_s8u8(w0[e], xlw[e], l0), l1 = dp4a_s8u8(w1[e], xlw[e], l1);
    }
    // |h| * 256 + |l| < 16 * 128 * 127 * 256 + 16 * 128 * 255: no overflow.
    a0 += float(h0 * 256 + l0) * (s0[j] * sx);
    a1 += float(h1 * 256 + l1) * (s1[j] * sx);
  }
}

// Block b takes the row pairs [n_pairs * b / grid, n_pairs * (b + 1) / grid): the grid is what
// stays resident at once (x is staged once per block) and every block gets the same share
// within one pair. Its kBlockWarps / warps_per_pair warp groups take the pairs in turn. kIntDot:
// int8 weights with integer dot products (staged, vector loads only).
template <typename W, GemvEpilogue E, bool kStaged, bool kVec, bool kIntDot = false, bool kShareScales = false>
__global__ void __launch_bounds__(kBlockWarps * 32) gemv_kernel(Params<W> p) {
  constexpr int kWarps = kBlockWarps;
  extern __shared__ float4 smem4[];
  float* s_x = reinterpret_cast<float*>(smem4);
  __shared__ float s_part[2][kWarps];
  unsigned stamp_id = 0;
  timeline_stamp(p.timeline, stamp_id, 0);
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
  const XPlanes planes = x_planes(s_x, p.k);  // the integer kind's x
  float x_scale = 1.f;  // what the int kind's dot products are multiplied by (stage_input_planes)
  auto start_on_x = [&]() -> const float* {
    wait_for_previous_kernel();
    release_next_kernel();
    timeline_stamp(p.timeline, stamp_id, 1);
    if constexpr (kIntDot) {
      x_scale = stage_input_planes(p, planes);
      return nullptr;  // the dots read the planes
    } else if constexpr (kStaged) {
      stage_input(p, s_x);
      return s_x;
    } else {
      return p.in.x;
    }
  };

  if constexpr (kVec) {
    // Batches of loads, two buffers that take turns: while a warp sums one, the other's loads
    // are in flight, and they are issued again as soon as it has been summed (a copy from one
    // buffer to the other would first wait for the loads). The first batch is issued before this
    // kernel waits for the one before it (weights do not depend on it) and before x is staged.
    const int per_batch = kUnroll * stride;
    const int n_iter = cdiv(p.k / kElems<W>, per_batch);  // batches per pair
    const int total = rounds * n_iter;
    // Where a batch lies: its round and place in the pair, and the pair's rows (found once per
    // round: they take divisions).
    struct Cursor {
      int round, it, r0, r1;
      bool valid;
    };
    auto next_of = [&](Cursor c) {
      if (++c.it == n_iter) c.it = 0, ++c.round, c.valid = c.round < rounds && rows_of(c.round, c.r0, c.r1);
      return c;
    };
    auto load = [&](const Cursor& c, Batch<W>& b) {
      if (c.valid) load_batch<W, kShareScales>(p, c.r0, c.r1, t + c.it * per_batch, stride, b);
    };
    if constexpr (kStaged && !kIntDot) {
      if (p.norm_ahead) {  // the norm's weights (constant) into shared memory after x, first
        const uint4* src = static_cast<const uint4*>(p.in.norm);
        uint4* dst = reinterpret_cast<uint4*>(s_x + p.k);
        for (int c = threadIdx.x; c < p.norm_ahead; c += blockDim.x) copy_async16(dst + c, src + c, true);
        commit_copies();
      }
    }
    Cursor c0{0, 0, 0, 0, false};
    c0.valid = total > 0 && rows_of(0, c0.r0, c0.r1);
    Batch<W> buf[2];
    load(c0, buf[0]);
    const float* x = start_on_x();
    timeline_stamp(p.timeline, stamp_id, 2);
    float a0 = 0.f, a1 = 0.f;
    // Float kernels: a pair whose last batch was summed waits in `done` (at most two a loop
    // step, one per buffer) and is finished after the step's sums, at one place in the code:
    // finish and its epilogue (RoPE, the cache writes) inline at both sums had doubled the loop's
    // code, which each launch fetches cold. On an H200 against two sites (same call, 2 rounds):
    // Llama-3-8B bf16 tg128 +0.7%, depth 1024 +0.6%, Llama-3.2-1B +0.6%; the int8 kernels lost
    // with it (8B int8 -0.3%, its q/k/v 9.92 -> 10.18 us), so they finish at each sum.
    constexpr bool kOneFinishSite = !kIntDot;
    struct Done {
      int round;
      float a0, a1;
    } done[2];
    bool has_done[2];
    auto sum = [&](const Cursor& c, const Batch<W>& b, Done& d, bool& has) {
      if constexpr (kIntDot) {
        if (c.valid) dot_batch_int<kShareScales>(p, b, planes, t + c.it * per_batch, stride, a0, a1);
      } else {
        if (c.valid) dot_batch<W, kStaged>(p, b, x, t + c.it * per_batch, stride, a0, a1);
      }
      has = c.it == n_iter - 1;
      if (has) {
        if constexpr (kIntDot) a0 *= x_scale, a1 *= x_scale;
        d = Done{c.round, a0, a1};
        a0 = a1 = 0.f;
      }
    };
    for (int b = 0; b < total; b += 2) {  // batch b in buf[0], b + 1 in buf[1]
      const Cursor c1 = next_of(c0);
      if (b + 1 < total) load(c1, buf[1]);
      sum(c0, buf[0], done[0], has_done[0]);
      if constexpr (!kOneFinishSite)
        if (has_done[0]) finish(done[0].round, done[0].a0, done[0].a1);
      const Cursor c2 = next_of(c1);
      if (b + 2 < total) load(c2, buf[0]);
      has_done[1] = false;
      if (b + 1 < total) sum(c1, buf[1], done[1], has_done[1]);
      if constexpr (kOneFinishSite) {
        // (The same in every thread: finish's barriers need the whole block.)
        const int n_done = int(has_done[0]) + int(has_done[1]);
#pragma unroll 1
        for (int f = 0; f < n_done; ++f) {
          const Done d = f == 0 && has_done[0] ? done[0] : done[1];
          finish(d.round, d.a0, d.a1);
        }
      } else if (has_done[1]) {
        finish(done[1].round, done[1].a0, done[1].a1);
      }
      c0 = c2;
    }
    timeline_stamp(p.timeline, stamp_id, 3);
  } else {
    const float* x = start_on_x();
    timeline_stamp(p.timeline, stamp_id, 2);
    for (int round = 0; round < rounds; ++round) {
      int r0, r1;
      float a0 = 0.f, a1 = 0.f;
      if (rows_of(round, r0, r1)) row_pair_dot_scalar(p, r0, r1, x, t, stride, a0, a1);
      finish(round, a0, a1);
    }
    timeline_stamp(p.timeline, stamp_id, 3);
  }
}

// Whether a float kernel's fused norm copies its weights into shared memory (after x) before it
// waits for the kernel before, instead of loading them after x's sum of squares: the staging of
// x then takes one trip to L2, not two. On an H200 within one call (3 rounds): Llama-3-8B bf16
// tg128 244.9 -> 248.1 t/s, at depth 1024 238.7 -> 241.0, Llama-3.2-1B +0.1%; the q/k/v product
// 16.4-16.9 -> 15.5 us. In the next call, less: 244.9 -> 246.0, depth 1024 238.6 -> 239.3, depth
// 8192 216.8 -> 216.7, 1B 1086.3 -> 1083.0 (with the preload of launch_pairs, then still on).
// (The integer kind loads the norm's weights with x already, one trip.)
// LLAMA_TP_NORM_AHEAD=0: never, for comparisons. (stages_in_vectors: the weights are f32,
// 16-byte aligned and k % 4 == 0, so k / 4 chunks of 16 bytes beside x's k floats.)
bool norm_ahead_applies(const GemvInput& in, int k, bool float_staged_vec) {
  static const bool allowed = env_allows("LLAMA_TP_NORM_AHEAD");
  return allowed && float_staged_vec && in.norm && stages_in_vectors(in, k) &&
         2 * size_t(k) * sizeof(float) <= size_t(smem_optin());
}

// Whether int8 products take integer dot products (dot_batch_int): 16-byte chunks (each in one
// scale group), x staged as its planes, which take about half the shared memory of floats: also
// rows past kMaxStagedK, e.g. Llama-3-70B's down projection at tp 1 (LLAMA_TP_INT8_DOT=0 keeps
// the float path, for comparisons).
bool int_dot_applies(int k, bool vec) {
  static const bool allowed = env_allows("LLAMA_TP_INT8_DOT");
  return allowed && vec && k % kSegment == 0 && int_dot_smem_bytes(k) <= size_t(smem_optin());
}

// The integer dot products take their scales with shuffles (shared_scale) for 8, 16 or 32 chunks
// of 16 columns a group (groups of 128, 256 or 512) or one group a row: the lane shift, log2 of
// the chunks a group (5 for one group: every lane of a run shares it). Others (llama2c and GGUF
// files keep groups of 32 or 64) load a scale a chunk: 0. LLAMA_TP_INT8_SHARED_SCALES=0: always
// 0, for comparisons.
int shared_scale_shift(int chunks_per_group, int groups) {
  static const bool allowed = env_allows("LLAMA_TP_INT8_SHARED_SCALES");
  if (!allowed) return 0;
  if (groups == 1) return 5;
  return chunks_per_group == 8 ? 3 : chunks_per_group == 16 ? 4 : chunks_per_group == 32 ? 5 : 0;
}

// Blocks for n_pairs row pairs, `groups` pairs per block and round, `fit` blocks per SM. With at
// least a round for every resident block, all of them (fit per SM), the pairs spread evenly: every
// SM then streams the same bytes (the last round of a block may be partly idle). Fewer pairs: one
// round per block, as many blocks as that takes. On an H200, Llama-3-8B bf16 decode: the q/k/v
// product (then in 8-warp blocks, 2 per SM: 3072 pairs of 8 a round) went from 192 blocks of 2
// rounds, with 60 SMs moving twice the bytes of the other 72, to 264 blocks: 17.96 -> 16.90 us,
// the step +1%.
// (Before that the rule was the fewest rounds: 192 blocks had beaten 128 blocks of 3 rounds by 3%.)
int gemv_grid(int n_pairs, int groups, int fit, int sms) {
  const int resident = fit * sms;
  return int64_t(n_pairs) >= int64_t(groups) * resident ? resident : cdiv(n_pairs, groups);
}

// The row pairs over blocks of kBlockWarps / p.warps_per_pair groups. (Until session 20 vector
// kernels of float weights could also preload their second batch into shared memory before the
// wait, LLAMA_TP_GEMV_PRELOAD=1. Once the fused norm's weights came ahead of the wait it lost on
// an H200 within one call: Llama-3-8B bf16 tg128 246.6 t/s without it against 246.0, depth 8192
// 219.1 against 216.7, Llama-3.2-1B 1118.2 against 1083.0; int8 had lost with it in sessions 15
// and 16, 350.3 -> 345.6 and 374.5 -> 360.5 t/s. Its code in every kernel's path went with it.
// What is in flight before the wait counts and more does not: int8's first batch issued after the
// wait instead of before lost 5.2%.)
template <typename W>
void launch_pairs(void (*kernel)(Params<W>), const Params<W>& p, size_t smem, cudaStream_t stream) {
  constexpr int kWarps = kBlockWarps;
  const int fit = resident_blocks(reinterpret_cast<const void*>(kernel), kWarps * 32, smem);
  const int blocks = gemv_grid(p.n_pairs, kWarps / p.warps_per_pair, fit, sm_count());
  CUDA_CHECK(launch(kernel, dim3(blocks), dim3(kWarps * 32), smem, stream, true, p));
}

template <typename W, GemvEpilogue E>
void launch_epilogue(const Params<W>& p, bool staged, bool vec, bool int_dot, cudaStream_t stream) {
  if constexpr (std::is_same_v<W, int8_t>) {
    if (int_dot)
      return launch_pairs(p.scale_lane_shift > 0 ? gemv_kernel<W, E, true, true, true, true>
                                                 : gemv_kernel<W, E, true, true, true>,
                          p, int_dot_smem_bytes(p.k), stream);
  }
  size_t smem = staged ? sizeof(float) * size_t(p.k) : 0;
  smem += size_t(p.norm_ahead) * 16;
  if (staged)
    launch_pairs(vec ? gemv_kernel<W, E, true, true> : gemv_kernel<W, E, true, false>, p, smem, stream);
  else
    launch_pairs(vec ? gemv_kernel<W, E, false, true> : gemv_kernel<W, E, false, false>, p, smem, stream);
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
    // (A group past the row is the row: the same single group, and d stays below 2^16.)
    const uint64_t chunks_per_group = uint64_t(std::max(1, std::min(w.group, k) / 16));
    LLAMA_TP_CHECK(k < (1 << 20), "gemv: int8 rows of ", k, " columns are longer than 2^20");  // chunk_scale
    p.group_one = chunks_per_group == 1;
    p.group_magic = p.group_one ? 0u : unsigned(((uint64_t(1) << 32) + chunks_per_group - 1) / chunks_per_group);
    p.scale_lane_shift = shared_scale_shift(int(chunks_per_group), p.groups);
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
  LLAMA_TP_CHECK(wpp >= 0 && wpp <= kBlockWarps && (wpp & (wpp - 1)) == 0,
                 "gemv: warps_per_row must be a power of two up to ", kBlockWarps, ", not ", wpp);
  p.warps_per_pair = wpp > 0 ? wpp : gemv_warps_per_row(p.rows, k, w.dtype);
  const bool int_dot = kInt8 && int_dot_applies(k, vec);
  if (norm_ahead_applies(in, k, staged && vec && !int_dot)) p.norm_ahead = k / 4;
  if (timeline_on()) {
    static const char* kEpilogue[] = {"", " swiglu", " rope"};
    const double bytes = double(p.rows) * k * sizeof(W) + (kInt8 ? double(sizeof(QuantScale)) * p.rows * p.groups : 0.0);
    p.timeline = timeline_node("gemv " + std::to_string(p.rows) + "x" + std::to_string(k) + " " +
                                   dtype_name(w.dtype) + kEpilogue[int(e)],
                               bytes);
  }
  switch (e) {
    case GemvEpilogue::Store: launch_epilogue<W, GemvEpilogue::Store>(p, staged, vec, int_dot, stream); break;
    case GemvEpilogue::Swiglu: launch_epilogue<W, GemvEpilogue::Swiglu>(p, staged, vec, int_dot, stream); break;
    case GemvEpilogue::RopeKv: launch_epilogue<W, GemvEpilogue::RopeKv>(p, staged, vec, int_dot, stream); break;
  }
}

}  // namespace

bool gemv_stages_input(int k) { return k <= kMaxStagedK && size_t(k) * sizeof(float) <= size_t(smem_optin()); }

// More warps per pair while the grid is short of 90% of a block per SM and each lane keeps at
// least two full batches of kUnroll 16-byte loads. Not the full grid: one just short of it (Llama-
// 3-8B's o and down products, 2048 pairs: 128 blocks of 16 warps) streams
// faster with one warp per pair than with twice the warps taking turns over the pairs. On an H200
// within one call: Llama-3-8B bf16 tg128 236.1 -> 237.7 t/s, int8 364.9 -> 377.4, Llama-3.2-1B
// 1034 -> 1062, Llama-2-7B 263.9 -> 268.9, TinyLlama 923 -> 945, 8B at depth 8192 213.3 -> 215.3.
int gemv_warps_per_row(int n, int k, DType w_dtype) {
  const int pairs = cdiv(n, 2), lane_loads = k / (16 / int(dtype_size(w_dtype))) / 32;
  int wpp = 1;
  while (wpp < kBlockWarps && 10 * cdiv(pairs, kBlockWarps / wpp) < 9 * sm_count() && lane_loads >= 2 * wpp * kUnroll)
    wpp *= 2;
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

void gemv_int8_cuda(float* out, const float* x, const int8_t* q, const QuantScale* scales, int n, int k, int group,
                    cudaStream_t stream) {
  GemvInput in;
  in.x = x;
  gemv_cuda(out, in, GemvWeight{q, DType::I8, scales, group}, n, k, GemvEpilogue::Store, nullptr, stream);
}

}  // namespace llama_tp::kernels

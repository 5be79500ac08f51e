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
      // Past the end: the scale of the last chunk, the one its 64 columns share on the tensor
      // cores, where a lane past the end may hold the sums of the lanes before it.
      b.s0[j] = chunk_scale(p, r0, min(c, nv - 1));
      b.s1[j] = chunk_scale(p, r1, min(c, nv - 1));
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

// Four norm weights from i (a multiple of 4; the pointer aligned for it) as floats.
__device__ __forceinline__ float4 load_norm4(const void* w, DType t, int i) {
  if (t == DType::F32) return *reinterpret_cast<const float4*>(static_cast<const float*>(w) + i);
  const uint2 u = *reinterpret_cast<const uint2*>(static_cast<const char*>(w) + size_t(i) * 2);
  float f[8];
  if (t == DType::BF16)
    unpack(make_uint4(u.x, u.y, 0, 0), f, bf16{});
  else
    unpack(make_uint4(u.x, u.y, 0, 0), f, f16{});
  return make_float4(f[0], f[1], f[2], f[3]);
}

constexpr int kStageLoads = 4;  // 16-byte loads per thread and operand in flight while staging x

// x (or the normalized residual stream) into shared memory; block 0 also writes x_out. 16-byte
// loads where the pointers allow, kStageLoads of each operand issued together, so that the
// block waits for a few rounds of loads (x of 14336 floats: 4 rounds, not 14).
template <typename W>
__device__ void stage_input(const Params<W>& p, float* s_x) {
  const GemvInput& in = p.in;
  float ss = 0.f;
  const bool vec = p.k % 4 == 0 && aligned16(in.x) && (!in.delta || aligned16(in.delta));
  const int n4 = p.k / 4, step = kStageLoads * blockDim.x;
  float4* s_x4 = reinterpret_cast<float4*>(s_x);
  if (vec) {
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
    const int norm_align = in.norm_dtype == DType::F32 ? 16 : 8;
    if (p.k % 4 == 0 && reinterpret_cast<uintptr_t>(in.norm) % norm_align == 0 &&
        (!write_stream || aligned16(in.x_out))) {
      for (int base = threadIdx.x; base < n4; base += step) {
        float4 g[kStageLoads];
#pragma unroll
        for (int u = 0; u < kStageLoads; ++u) {
          const int i = base + u * blockDim.x;
          g[u] = i < n4 ? load_norm4(in.norm, in.norm_dtype, 4 * i) : make_float4(0.f, 0.f, 0.f, 0.f);
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
    } else {
      for (int i = threadIdx.x; i < p.k; i += blockDim.x) {
        const float v = s_x[i];
        if (write_stream) in.x_out[i] = v;
        s_x[i] = v * scale * load_norm(in.norm, in.norm_dtype, i);
      }
    }
  }
  __syncthreads();
}

// ---- int8 weights on the tensor cores ----------------------------------------------------
// On the float path, int8 weights leave the GEMV compute-bound: each weight takes two
// instructions to become a float and one FMA. Instead, x is rounded to 24-bit integers per 64
// columns (one scale each, kept in shared memory as three int8 planes: hi, mid, lo) and the
// products run on the tensor cores as exact int8 x int8 sums (mma.m16n8k32.s8, int32): the
// weights enter as loaded, with no conversion. The rounding of x (at most max|x| of its 64
// columns / 2^24) is far below the int8 weights' own.
//
// The loads are those of the float kinds (a row pair per warp, 16-byte chunks t + j * stride),
// which stream at full bandwidth. Within one mma, lane (g = lane / 4, u = lane % 4) gives the
// A rows g and g + 8 the bytes of its chunk of rows r0 and r1, and the B column g the x parts
// of the same columns. So A row g holds the 64 columns of the 4 chunks of lanes 4g..4g+3 of
// r0 (row g + 8: those of r1) and B column g their x: the diagonal D[g][g] (D[g + 8][g]) is
// r0's (r1's) dot over those 64 columns, in lane (g, g / 2); the other sums are discarded.
// The 4 chunks lie in one x segment and, as the scale group is a multiple of 64, in one
// weight scale group.

constexpr int kSegment = 64;       // columns per x scale
constexpr int kMaxQ = 0x7F7F7F;    // the largest |x| in 24 bits that splits into three int8

__device__ __forceinline__ void mma_s8_16832(int (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                             uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#else
  __trap();  // imma_applies takes this path on compute capability 8.0 and later only
#endif
}

// Where the staged x lives for the tensor-core kind, after the floats: three planes of k
// bytes, then one f32 scale per 64 columns.
struct XPlanes {
  const int8_t* hi;  // then mid and lo, k bytes apart
  const float* scale;
};
__host__ __device__ inline size_t imma_smem_bytes(int k) { return size_t(k) * 7 + sizeof(float) * size_t(cdiv(k, kSegment)); }

// x (staged as floats in s_x, see stage_input) as 24-bit integers per 64 columns: 8 lanes per
// segment, 8 neighbouring columns per lane. A NaN in x makes its warp's segments' scales NaN,
// so that NaN reaches the output as on the float path.
__device__ XPlanes quantize_staged_x(const float* s_x, int k) {
  int8_t* planes = reinterpret_cast<int8_t*>(const_cast<float*>(s_x) + k);
  float* scale = reinterpret_cast<float*>(planes + 3 * size_t(k));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  for (int s0 = 4 * warp; s0 < cdiv(k, kSegment); s0 += 4 * warps) {  // the same trips for the whole warp
    const int s = s0 + lane / 8, i = s * kSegment + 8 * (lane % 8);  // k % 16 == 0: 8 columns or none
    float v[8] = {};
    if (i < k) {
      const float4 a = *reinterpret_cast<const float4*>(s_x + i), b = *reinterpret_cast<const float4*>(s_x + i + 4);
      v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
    }
    float mx = 0.f;
    bool nan = false;
#pragma unroll
    for (int e = 0; e < 8; ++e) mx = fmaxf(mx, fabsf(v[e])), nan |= v[e] != v[e];
#pragma unroll
    for (int o = 4; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    nan = __any_sync(0xffffffffu, nan);
    if (i >= k) continue;
    if (lane % 8 == 0) scale[s] = nan ? NAN : mx / float(kMaxQ);
    const float inv = mx >= 1e-30f ? float(kMaxQ) / mx : 0.f;  // below 1e-30: as zeros
    uint32_t part[3][2] = {};
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      int q = min(max(__float2int_rn(v[e] * inv), -kMaxQ), kMaxQ);
      const int lo = ((q + 128) & 255) - 128;  // q = (hi * 256 + mid) * 256 + lo, each in [-127, 127]
      q = (q - lo) >> 8;
      const int mid = ((q + 128) & 255) - 128, hi = (q - mid) >> 8;
      const int shift = 8 * (e % 4);
      part[0][e / 4] |= uint32_t(uint8_t(hi)) << shift;
      part[1][e / 4] |= uint32_t(uint8_t(mid)) << shift;
      part[2][e / 4] |= uint32_t(uint8_t(lo)) << shift;
    }
#pragma unroll
    for (int pl = 0; pl < 3; ++pl) *reinterpret_cast<uint2*>(planes + size_t(pl) * k + i) = make_uint2(part[pl][0], part[pl][1]);
  }
  __syncthreads();
  return {planes, scale};
}

// The batch's share of the dots of its two rows with x, on the tensor cores (see above). Every
// lane of the warp takes part in each mma: lanes past the row's end hold zero weights.
__device__ __forceinline__ void dot_batch_imma(const Params<int8_t>& p, const Batch<int8_t>& b, const XPlanes& x,
                                               int i, int stride, float& a0, float& a1) {
  const int nv = p.k / 16, lane = threadIdx.x % 32, g = lane / 4;
  const bool odd = g & 1, diag = lane % 4 == g / 2;
  const uint4* hi = reinterpret_cast<const uint4*>(x.hi);
  const int plane = p.k / 16;  // uint4 entries per plane
#pragma unroll
  for (int j = 0; j < kUnroll; ++j) {
    const int c = i + j * stride;
    if (c - lane >= nv) break;  // the same for the whole warp
    const int cx = min(c, nv - 1);
    const uint4 u0 = b.u0[j], u1 = b.u1[j];
    int d[3][4] = {};
#pragma unroll
    for (int pl = 0; pl < 3; ++pl) {
      const uint4 xv = hi[pl * plane + cx];
      mma_s8_16832(d[pl], u0.x, u1.x, u0.y, u1.y, xv.x, xv.y);
      mma_s8_16832(d[pl], u0.z, u1.z, u0.w, u1.w, xv.z, xv.w);
    }
    const float sx = diag ? x.scale[cx / 4] : 0.f;  // other lanes' sums are not r0's or r1's
    const int h0 = odd ? d[0][1] : d[0][0], h1 = odd ? d[0][3] : d[0][2];
    const int l0 = (odd ? d[1][1] : d[1][0]) * 256 + (odd ? d[2][1] : d[2][0]);
    const int l1 = (odd ? d[1][3] : d[1][2]) * 256 + (odd ? d[2][3] : d[2][2]);
    a0 += fmaf(float(h0), 65536.f, float(l0)) * (b.s0[j] * sx);
    a1 += fmaf(float(h1), 65536.f, float(l1)) * (b.s1[j] * sx);
  }
}

// Block b takes the row pairs [n_pairs * b / grid, n_pairs * (b + 1) / grid): the grid is what
// stays resident at once (x is staged once per block) and every block gets the same share
// within one pair. Its kWarps / warps_per_pair warp groups take the pairs in turn. kImma: int8
// weights on the tensor cores (staged, vector loads only).
template <typename W, GemvEpilogue E, bool kStaged, bool kVec, bool kImma = false>
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
      if (c.valid) load_batch(p, c.r0, c.r1, t + c.it * per_batch, stride, b);
    };
    Cursor c0{0, 0, 0, 0, false};
    c0.valid = total > 0 && rows_of(0, c0.r0, c0.r1);
    Batch<W> buf[2];
    load(c0, buf[0]);
    const float* x = start_on_x();
    XPlanes planes{};
    if constexpr (kImma) planes = quantize_staged_x(x, p.k);
    float a0 = 0.f, a1 = 0.f;
    auto sum = [&](const Cursor& c, const Batch<W>& b) {
      if constexpr (kImma) {
        if (c.valid) dot_batch_imma(p, b, planes, t + c.it * per_batch, stride, a0, a1);
      } else {
        if (c.valid) dot_batch<W, kStaged>(p, b, x, t + c.it * per_batch, stride, a0, a1);
      }
      if (c.it == n_iter - 1) {
        finish(c.round, a0, a1);
        a0 = a1 = 0.f;
      }
    };
    for (int b = 0; b < total; b += 2) {  // batch b in buf[0], b + 1 in buf[1]
      const Cursor c1 = next_of(c0);
      if (b + 1 < total) load(c1, buf[1]);
      sum(c0, buf[0]);
      const Cursor c2 = next_of(c1);
      if (b + 2 < total) load(c2, buf[0]);
      if (b + 1 < total) sum(c1, buf[1]);
      c0 = c2;
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

// Whether int8 products take the tensor cores (dot_batch_imma): Ampere or later, 16-byte chunks,
// scale groups of whole segments, x staged with its planes (LLAMA_TP_INT8_MMA=0 keeps the float
// path, for comparisons).
bool imma_applies(int k, int group, bool vec, bool staged) {
  static const bool allowed = env_allows("LLAMA_TP_INT8_MMA");
  return allowed && vec && staged && group % kSegment == 0 && imma_smem_bytes(k) <= size_t(smem_optin()) &&
         device_attribute<cudaDevAttrComputeCapabilityMajor>(0) >= 8;
}

// Blocks for n_pairs row pairs, `groups` pairs per block and round, `fit` blocks per SM: the
// fewest rounds per block that the resident blocks allow, the pairs spread evenly over as many
// blocks as that needs. A warp's loads in flight are bounded, so the most warps streaming at once
// win over an even load per SM: e.g. 3072 pairs of 8 per round on 132 SMs with 2 blocks each
// take 192 blocks of 2 rounds (some SMs hold two, some one) rather than 128 blocks of 3 (one per
// SM): 3% faster on the whole Llama-3-8B decode step on an H200, 4% with int8 weights.
int gemv_grid(int n_pairs, int groups, int fit, int sms) {
  const int64_t rounds = cdiv(n_pairs, int64_t(groups) * fit * sms);
  return cdiv(n_pairs, rounds * groups);
}

// The row pairs over blocks of kWarps / p.warps_per_pair groups.
template <typename W>
void launch_pairs(void (*kernel)(Params<W>), const Params<W>& p, size_t smem, cudaStream_t stream) {
  const int fit = resident_blocks(reinterpret_cast<const void*>(kernel), kWarps * 32, smem);
  const int blocks = gemv_grid(p.n_pairs, kWarps / p.warps_per_pair, fit, sm_count());
  CUDA_CHECK(launch(kernel, dim3(blocks), dim3(kWarps * 32), smem, stream, true, p));
}

template <typename W, GemvEpilogue E>
void launch_epilogue(const Params<W>& p, bool staged, bool vec, bool imma, cudaStream_t stream) {
  if constexpr (std::is_same_v<W, int8_t>) {
    if (imma) return launch_pairs(gemv_kernel<W, E, true, true, true>, p, imma_smem_bytes(p.k), stream);
  }
  const size_t smem = staged ? sizeof(float) * size_t(p.k) : 0;
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
  p.warps_per_pair = wpp > 0 ? wpp : gemv_warps_per_row(p.rows, k, w.dtype);
  const bool imma = kInt8 && imma_applies(k, w.group, vec, staged);
  switch (e) {
    case GemvEpilogue::Store: launch_epilogue<W, GemvEpilogue::Store>(p, staged, vec, imma, stream); break;
    case GemvEpilogue::Swiglu: launch_epilogue<W, GemvEpilogue::Swiglu>(p, staged, vec, imma, stream); break;
    case GemvEpilogue::RopeKv: launch_epilogue<W, GemvEpilogue::RopeKv>(p, staged, vec, imma, stream); break;
  }
}

}  // namespace

bool gemv_stages_input(int k) { return k <= kMaxStagedK && size_t(k) * sizeof(float) <= size_t(smem_optin()); }

// More warps per pair while the grid is short of 2 blocks per SM and each lane keeps at least
// two full batches of kUnroll 16-byte loads.
int gemv_warps_per_row(int n, int k, DType w_dtype) {
  const int pairs = cdiv(n, 2), lane_loads = k / (16 / int(dtype_size(w_dtype))) / 32;
  int wpp = 1;
  while (wpp < kWarps && cdiv(pairs, kWarps / wpp) < 2 * sm_count() && lane_loads >= 2 * wpp * kUnroll) wpp *= 2;
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

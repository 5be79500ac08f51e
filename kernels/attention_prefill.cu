#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "kernels/attention_prefill_cuda.h"
#include "kernels/common_cuda.h"
#include "runtime/cuda_check.h"

namespace llama_tp::kernels {
namespace {

// ---- which path ---------------------------------------------------------------------------

enum class EnvChoice { Auto, Split, Cublas, Flash };

// LLAMA_TP_PREFILL_ATTENTION: auto (or unset), split (attention_cuda for every call), cublas, flash.
EnvChoice env_choice() {
  static const EnvChoice choice = [] {
    const char* v = std::getenv("LLAMA_TP_PREFILL_ATTENTION");
    if (!v || !*v || std::strcmp(v, "auto") == 0) return EnvChoice::Auto;
    if (std::strcmp(v, "split") == 0) return EnvChoice::Split;
    if (std::strcmp(v, "cublas") == 0) return EnvChoice::Cublas;
    if (std::strcmp(v, "flash") == 0) return EnvChoice::Flash;
    LLAMA_TP_FAIL("LLAMA_TP_PREFILL_ATTENTION=", v, " is not one of auto, split, cublas, flash");
  }();
  return choice;
}

void check_args(const AttentionArgs& a) {
  LLAMA_TP_CHECK(a.n_kv_heads > 0 && a.n_heads % a.n_kv_heads == 0, "attention: ", a.n_heads,
                 " query heads do not divide into ", a.n_kv_heads, " kv heads");
  LLAMA_TP_CHECK(a.pos0 >= 0 && a.pos0 + a.n_tokens <= a.max_seq, "attention: positions ", a.pos0, "..",
                 a.pos0 + a.n_tokens, " exceed the KV cache of ", a.max_seq, " positions");
}

// ---- Cublas path: Q·Kᵀ and P·V as strided-batched GEMMs over the kv heads ----------------
//
// Workspace, for a pass of tb query tokens, R = tb * group rows per kv head (row r = token
// r / group, query head r % group of the group):
//   Q [n_kv][R][head_dim]  cache dtype
//   S [n_kv][R][ld]        float32 scores, ld = the pass's key count rounded up to 8
//   P [n_kv][R][ld]        cache dtype (f32 caches: P overwrites S in place)
//   O [n_kv][R][head_dim]  float32

constexpr size_t kAlign = 256;
size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
int round8(int n) { return (n + 7) / 8 * 8; }

struct CublasLayout {
  int tokens_per_pass;
  size_t q_off, s_off, p_off, o_off, bytes;
};

// Sized for the widest pass (keys up to pos0 + n_tokens) so one layout serves every pass.
CublasLayout cublas_layout(const AttentionArgs& a, int tb) {
  const size_t cts = dtype_size(a.cache_dtype);
  const size_t rows = size_t(a.n_heads) * tb;
  const size_t ld = size_t(round8(a.pos0 + a.n_tokens));
  CublasLayout l{};
  l.tokens_per_pass = tb;
  l.q_off = 0;
  l.s_off = l.q_off + align_up(rows * a.head_dim * cts);
  const size_t s_bytes = align_up(rows * ld * sizeof(float));
  if (a.cache_dtype == DType::F32) {
    l.p_off = l.s_off;
    l.o_off = l.s_off + s_bytes;
  } else {
    l.p_off = l.s_off + s_bytes;
    l.o_off = l.p_off + align_up(rows * ld * cts);
  }
  l.bytes = l.o_off + align_up(rows * a.head_dim * sizeof(float));
  return l;
}

// The most tokens per pass that fit budget (at least 1), then evened out over the passes.
CublasLayout cublas_plan(const AttentionArgs& a, size_t budget) {
  int lo = 1, hi = a.n_tokens;
  while (lo < hi) {  // largest tb in [1, n_tokens] with bytes(tb) <= budget (or 1)
    const int mid = lo + (hi - lo + 1) / 2;
    if (cublas_layout(a, mid).bytes <= budget) lo = mid;
    else hi = mid - 1;
  }
  const int passes = (a.n_tokens + lo - 1) / lo;
  return cublas_layout(a, (a.n_tokens + passes - 1) / passes);
}

cudaDataType_t cublas_type(DType t) {
  switch (t) {
    case DType::F32: return CUDA_R_32F;
    case DType::F16: return CUDA_R_16F;
    case DType::BF16: return CUDA_R_16BF;
    default: LLAMA_TP_FAIL("attention: caches must be f32, f16 or bf16, not ", dtype_name(t));
  }
}

// Block (token t of the pass, kv head g): the group's query heads of token t0 + t, converted.
template <typename T>
__global__ void gather_q_kernel(T* qw, const float* q, int q_stride, int t0, int tb, int group_width) {
  const int t = blockIdx.x, g = blockIdx.y;
  const float* src = q + size_t(t0 + t) * q_stride + size_t(g) * group_width;
  T* dst = qw + (size_t(g) * tb + t) * group_width;
  for (int c = threadIdx.x; c < group_width; c += blockDim.x) dst[c] = from_f32<T>(src[c]);
}

// The inverse for the output: O rows of token t back into out row t0 + t.
__global__ void scatter_o_kernel(float* out, const float* o, int out_stride, int t0, int tb, int group_width) {
  const int t = blockIdx.x, g = blockIdx.y;
  const float* src = o + (size_t(g) * tb + t) * group_width;
  float* dst = out + size_t(t0 + t) * out_stride + size_t(g) * group_width;
  for (int c = threadIdx.x; c < group_width; c += blockDim.x) dst[c] = src[c];
}

constexpr int kSoftmaxWarps = 8;

// One warp per row of S (n_kv * R rows, row stride ld, n_keys columns): the row's token t sees
// keys 0 ..= key0 + t; P = softmax over those, 0 for the rest. S is already scaled. For f32
// caches p aliases s (each lane reads s[j] before writing p[j]).
template <typename T>
__global__ void __launch_bounds__(kSoftmaxWarps * 32)
    causal_softmax_kernel(const float* s, T* p, int n_rows, int rows_per_head, int group, int ld, int n_keys,
                          int key0) {
  const int row = blockIdx.x * kSoftmaxWarps + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= n_rows) return;
  const int t = (row % rows_per_head) / group;
  const int n_vis = key0 + t + 1;  // <= n_keys
  const float* sr = s + size_t(row) * ld;
  T* pr = p + size_t(row) * ld;

  float m = -INFINITY, l = 0.f;  // this lane's running max and sum of exp(s - m)
#pragma unroll 4
  for (int j = lane; j < n_vis; j += 32) {
    const float x = sr[j];
    const float m_new = fmaxf(m, x);
    l = l * __expf(m - m_new) + __expf(x - m_new);
    m = m_new;
  }
  const float m_row = warp_max(m);  // finite: key 0 is visible to every row
  l = m == -INFINITY ? 0.f : l * __expf(m - m_row);
  const float inv = 1.f / warp_sum(l);
#pragma unroll 4
  for (int j = lane; j < n_keys; j += 32) {
    const float v = j < n_vis ? __expf(sr[j] - m_row) * inv : 0.f;
    pr[j] = from_f32<T>(v);
  }
}

void attention_cublas(const AttentionArgs& a, cublasHandle_t handle, void* workspace, size_t workspace_bytes,
                      cudaStream_t stream) {
  const CublasLayout min_layout = cublas_layout(a, 1);
  LLAMA_TP_CHECK(workspace && workspace_bytes >= min_layout.bytes, "attention (cuBLAS prefill): needs a workspace of ",
                 min_layout.bytes, " bytes or more, got ", workspace_bytes);
  const CublasLayout lay = cublas_plan(a, workspace_bytes);
  const int group = a.n_heads / a.n_kv_heads, hd = a.head_dim, group_width = group * hd;
  const float scale = 1.0f / std::sqrt(float(hd)), one = 1.f, zero = 0.f;
  const cudaDataType_t type = cublas_type(a.cache_dtype);
  const long long cache_stride = (long long)a.max_seq * hd;
  char* ws = static_cast<char*>(workspace);
  float* s = reinterpret_cast<float*>(ws + lay.s_off);
  float* o = reinterpret_cast<float*>(ws + lay.o_off);

  dispatch_float(a.cache_dtype, [&](auto tag) {
    using T = decltype(tag);
    T* qw = reinterpret_cast<T*>(ws + lay.q_off);
    T* p = reinterpret_cast<T*>(ws + lay.p_off);
    for (int t0 = 0; t0 < a.n_tokens; t0 += lay.tokens_per_pass) {
      const int tb = std::min(lay.tokens_per_pass, a.n_tokens - t0);
      const int rows = tb * group;           // per kv head
      const int n_keys = a.pos0 + t0 + tb;   // keys the pass's last token sees
      const int ld = round8(n_keys);
      const dim3 grid(tb, a.n_kv_heads);

      gather_q_kernel<T><<<grid, 256, 0, stream>>>(qw, a.q, a.q_stride, t0, tb, group_width);
      CUDA_CHECK_LAUNCH();
      // Column-major view: Sᵀ [n_keys, rows] = K_g [hd, n_keys]ᵀ · Q_gᵀ [hd, rows].
      CUBLAS_CHECK(cublasGemmStridedBatchedEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n_keys, rows, hd, &scale,
                                              a.k_cache, type, hd, cache_stride, qw, type, hd,
                                              (long long)rows * hd, &zero, s, CUDA_R_32F, ld,
                                              (long long)rows * ld, a.n_kv_heads, CUBLAS_COMPUTE_32F,
                                              CUBLAS_GEMM_DEFAULT));
      const int n_rows = a.n_kv_heads * rows;
      causal_softmax_kernel<T><<<(n_rows + kSoftmaxWarps - 1) / kSoftmaxWarps, kSoftmaxWarps * 32, 0, stream>>>(
          s, p, n_rows, rows, group, ld, n_keys, a.pos0 + t0);
      CUDA_CHECK_LAUNCH();
      // Oᵀ [hd, rows] = V_g [hd, n_keys] · Pᵀ [n_keys, rows].
      CUBLAS_CHECK(cublasGemmStridedBatchedEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, hd, rows, n_keys, &one,
                                              a.v_cache, type, hd, cache_stride, p, type, ld,
                                              (long long)rows * ld, &zero, o, CUDA_R_32F, hd,
                                              (long long)rows * hd, a.n_kv_heads, CUBLAS_COMPUTE_32F,
                                              CUBLAS_GEMM_DEFAULT));
      scatter_o_kernel<<<grid, 256, 0, stream>>>(a.out, o, a.n_heads * hd, t0, tb, group_width);
      CUDA_CHECK_LAUNCH();
    }
  });
}

// ---- Flash path: one fused kernel on mma.sync ----------------------------------------------
//
// Block (query block x, kv head y): 64 rows of the flattened (token, query head of the group)
// space, row R = token R / group, head kv_head * group + R % group; 4 warps of 16 rows. The
// block walks the keys 0 ..= pos0 + its last token in tiles of 64, K and V tiles double-
// buffered in shared memory by cp.async (rows past the block's last key are zero-filled, never
// read from the cache). Per tile each warp computes S = Q·Kᵀ (16 x 64) with m16n8k16 MMAs, masks
// it causally, updates the running max and sum (base-2 exponentials of pre-scaled scores),
// rescales its O accumulator and adds P·V with P taken straight from the S registers.
//
// Fragment layouts (PTX ISA, mma.m16n8k16 with 16-bit inputs; g = lane / 4, c = lane % 4):
//   A (16x16): reg0 = (row g, k 2c..2c+1), reg1 = (g+8, 2c), reg2 = (g, 2c+8), reg3 = (g+8, 2c+8)
//   B (16x8):  reg0 = (k 2c..2c+1, col g), reg1 = (k 2c+8.., col g)
//   C (16x8):  c0,c1 = (row g, cols 2c, 2c+1), c2,c3 = (row g+8, same cols)
// ldmatrix.x4: lanes 8i..8i+7 give the row addresses of 8x8 matrix i; register i receives
// (row g, cols 2c, 2c+1) of matrix i, or with .trans (rows 2c, 2c+1, col g).

constexpr int kFlashRows = 64;  // query rows per block
constexpr int kFlashKeys = 64;  // keys per tile
constexpr int kFlashThreads = 128;

template <int HD>
constexpr int flash_ld() { return HD + 8; }  // smem row stride (elements): ldmatrix rows hit distinct banks

template <int HD>
constexpr size_t flash_smem_bytes() {
  return size_t(kFlashRows + 4 * kFlashKeys) * flash_ld<HD>() * 2;  // Q + 2 stages of K and V
}

struct FlashParams {
  float* out;
  const float* q;
  const void* k_cache;
  const void* v_cache;
  int q_stride, n_tokens, n_heads, group, pos0, max_seq;
  float scale_log2;  // log2(e) / sqrt(head_dim)
};

template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  uint32_t u;
  if constexpr (std::is_same_v<T, bf16>) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    memcpy(&u, &v, 4);
  } else {
    const __half2 v = __floats2half2_rn(lo, hi);
    memcpy(&u, &v, 4);
  }
  return u;
}

template <typename T>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, bf16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p))
               : "memory");
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p))
               : "memory");
}

// 16 bytes global -> shared, asynchronously; zero-filled when !valid (src is not read then).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

template <typename T, int HD>
__global__ void __launch_bounds__(kFlashThreads, 2) flash_prefill_kernel(FlashParams p) {
  constexpr int LD = flash_ld<HD>();
  constexpr int kChunks = HD / 8;  // 16-byte chunks per K/V row
  extern __shared__ __align__(16) unsigned char flash_smem[];
  T* s_q = reinterpret_cast<T*>(flash_smem);  // [64][LD]
  T* s_k = s_q + kFlashRows * LD;             // [2][64][LD]
  T* s_v = s_k + 2 * kFlashKeys * LD;         // [2][64][LD]

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int gid = lane / 4, tig = lane % 4;
  const int qblock = gridDim.x - 1 - blockIdx.x;  // the longest blocks (latest tokens) start first
  const int kvh = blockIdx.y;
  const int total_rows = p.n_tokens * p.group;
  const int row0 = qblock * kFlashRows;
  const int t_first = row0 / p.group;
  const int t_last = min(p.n_tokens - 1, (row0 + kFlashRows - 1) / p.group);
  const int key_end = p.pos0 + t_last + 1;  // keys 0 .. key_end - 1 are read
  const int n_tiles = (key_end + kFlashKeys - 1) / kFlashKeys;
  const T* k_head = static_cast<const T*>(p.k_cache) + size_t(kvh) * p.max_seq * HD;
  const T* v_head = static_cast<const T*>(p.v_cache) + size_t(kvh) * p.max_seq * HD;

  auto load_tile = [&](int tile, int stage) {
    const int kt = tile * kFlashKeys;
    T* dk = s_k + stage * kFlashKeys * LD;
    T* dv = s_v + stage * kFlashKeys * LD;
    for (int idx = tid; idx < kFlashKeys * kChunks; idx += kFlashThreads) {
      const int r = idx / kChunks, c = (idx % kChunks) * 8;
      const bool valid = kt + r < key_end;
      const size_t off = size_t(valid ? kt + r : 0) * HD + c;
      cp_async16(dk + r * LD + c, k_head + off, valid);
      cp_async16(dv + r * LD + c, v_head + off, valid);
    }
    cp_async_commit();
  };
  load_tile(0, 0);

  // Q rows, float32 -> T (zeros past the last row).
  constexpr int kQVecs = HD / 4;
  for (int idx = tid; idx < kFlashRows * kQVecs; idx += kFlashThreads) {
    const int r = idx / kQVecs, c = (idx % kQVecs) * 4, row = row0 + r;
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
    if (row < total_rows) {
      const int t = row / p.group, h = kvh * p.group + row % p.group;
      v = *reinterpret_cast<const float4*>(p.q + size_t(t) * p.q_stride + size_t(h) * HD + c);
    }
    uint2 u;
    u.x = pack2<T>(v.x, v.y);
    u.y = pack2<T>(v.z, v.w);
    *reinterpret_cast<uint2*>(s_q + r * LD + c) = u;
  }
  __syncthreads();

  uint32_t qf[HD / 16][4];  // this warp's 16 rows as A fragments, one per 16 dims
#pragma unroll
  for (int ks = 0; ks < HD / 16; ++ks)
    ldmatrix_x4(qf[ks], s_q + (warp * 16 + lane % 16) * LD + ks * 16 + (lane / 16) * 8);

  // This thread's two rows: gid and gid + 8 of the warp's 16. Padding rows past the last one
  // behave as the last token (finite, never written).
  int limit[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int row = row0 + warp * 16 + gid + 8 * i;
    limit[i] = p.pos0 + min(row / p.group, p.n_tokens - 1);
  }
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  float o[HD / 8][4];
#pragma unroll
  for (int db = 0; db < HD / 8; ++db) o[db][0] = o[db][1] = o[db][2] = o[db][3] = 0.f;

  for (int tile = 0; tile < n_tiles; ++tile) {
    const int stage = tile & 1;
    if (tile + 1 < n_tiles)
      load_tile(tile + 1, stage ^ 1);  // that stage was last read in the previous iteration, before its barrier
    else
      cp_async_commit();  // an empty group keeps the wait below uniform
    cp_async_wait<1>();   // this tile's group has landed (for this thread) ...
    __syncthreads();      // ... and for every thread
    const T* sk = s_k + stage * kFlashKeys * LD;
    const T* sv = s_v + stage * kFlashKeys * LD;

    float s[kFlashKeys / 8][4];
#pragma unroll
    for (int nb = 0; nb < kFlashKeys / 8; ++nb) s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.f;
#pragma unroll
    for (int ks = 0; ks < HD / 16; ++ks) {
#pragma unroll
      for (int np = 0; np < kFlashKeys / 16; ++np) {
        // Matrices: keys np*16 + {0..7, 0..7, 8..15, 8..15} x dims ks*16 + {0..7, 8..15, 0..7, 8..15}.
        const int mi = lane / 8;
        uint32_t kb[4];
        ldmatrix_x4(kb, sk + (np * 16 + lane % 8 + (mi / 2) * 8) * LD + ks * 16 + (mi % 2) * 8);
        mma16816<T>(s[2 * np], qf[ks], kb[0], kb[1]);
        mma16816<T>(s[2 * np + 1], qf[ks], kb[2], kb[3]);
      }
    }

    // Scale into base 2, mask keys past each row's position, row max over the quad.
    const int kt = tile * kFlashKeys;
    const bool need_mask = kt + kFlashKeys - 1 > p.pos0 + t_first;
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nb = 0; nb < kFlashKeys / 8; ++nb) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[nb][e] * p.scale_log2;
        if (need_mask && kt + nb * 8 + 2 * tig + (e & 1) > limit[e / 2]) x = -INFINITY;
        s[nb][e] = x;
        mx[e / 2] = fmaxf(mx[e / 2], x);
      }
    }
    float alpha[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
      // Tile 0 holds key 0, visible to every row, so m is finite from the first tile on and
      // m_new is never -inf here; alpha is 0 on the first tile (m = -inf, O and l are 0).
      const float m_new = fmaxf(m[i], mx[i]);
      alpha[i] = exp2f(m[i] - m_new);
      m[i] = m_new;
      l[i] *= alpha[i];
    }
#pragma unroll
    for (int db = 0; db < HD / 8; ++db) {
      o[db][0] *= alpha[0], o[db][1] *= alpha[0];
      o[db][2] *= alpha[1], o[db][3] *= alpha[1];
    }
#pragma unroll
    for (int nb = 0; nb < kFlashKeys / 8; ++nb) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float pe = exp2f(s[nb][e] - m[e / 2]);
        s[nb][e] = pe;
        l[e / 2] += pe;  // this thread's columns only; the quad's partial sums are added at the end
      }
    }

    // O += P·V: the S accumulators of key blocks 2kk, 2kk+1 are the A fragment of keys 16kk...
#pragma unroll
    for (int kk = 0; kk < kFlashKeys / 16; ++kk) {
      const uint32_t pa[4] = {pack2<T>(s[2 * kk][0], s[2 * kk][1]), pack2<T>(s[2 * kk][2], s[2 * kk][3]),
                              pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int dp = 0; dp < HD / 16; ++dp) {
        // Matrices: keys kk*16 + {0..7, 8..15, 0..7, 8..15} x dims dp*16 + {0..7, 0..7, 8..15, 8..15}.
        const int mi = lane / 8;
        uint32_t vb[4];
        ldmatrix_x4_trans(vb, sv + (kk * 16 + lane % 8 + (mi % 2) * 8) * LD + dp * 16 + (mi / 2) * 8);
        mma16816<T>(o[2 * dp], pa, vb[0], vb[1]);
        mma16816<T>(o[2 * dp + 1], pa, vb[2], vb[3]);
      }
    }
    __syncthreads();  // every warp is done with this stage before it is refilled
  }
  cp_async_wait<0>();

#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int row = row0 + warp * 16 + gid + 8 * i;
    if (row >= total_rows) continue;
    const int t = row / p.group, h = kvh * p.group + row % p.group;
    float* dst = p.out + size_t(t) * p.n_heads * HD + size_t(h) * HD + 2 * tig;
    const float inv = 1.f / l[i];
#pragma unroll
    for (int db = 0; db < HD / 8; ++db)
      *reinterpret_cast<float2*>(dst + db * 8) = make_float2(o[db][2 * i] * inv, o[db][2 * i + 1] * inv);
  }
}

int flash_blocks(const AttentionArgs& a) {
  const int64_t rows = int64_t(a.n_tokens) * (a.n_heads / a.n_kv_heads);
  return int((rows + kFlashRows - 1) / kFlashRows) * a.n_kv_heads;
}

template <typename T, int HD>
void launch_flash(const AttentionArgs& a, cudaStream_t stream) {
  const int group = a.n_heads / a.n_kv_heads;
  const FlashParams p{a.out, a.q, a.k_cache, a.v_cache, a.q_stride, a.n_tokens, a.n_heads, group, a.pos0,
                      a.max_seq, softmax_scale_log2(HD)};
  constexpr size_t smem = flash_smem_bytes<HD>();
  if constexpr (smem > 48 * 1024)
    CUDA_CHECK(cudaFuncSetAttribute(flash_prefill_kernel<T, HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    int(smem)));
  const int64_t rows = int64_t(a.n_tokens) * group;
  const dim3 grid(unsigned((rows + kFlashRows - 1) / kFlashRows), unsigned(a.n_kv_heads));
  flash_prefill_kernel<T, HD><<<grid, kFlashThreads, smem, stream>>>(p);
  CUDA_CHECK_LAUNCH();
}

void attention_flash(const AttentionArgs& a, cudaStream_t stream) {
  if (a.cache_dtype == DType::BF16) {
    if (a.head_dim == 64) launch_flash<bf16, 64>(a, stream);
    else launch_flash<bf16, 128>(a, stream);
  } else {
    if (a.head_dim == 64) launch_flash<f16, 64>(a, stream);
    else launch_flash<f16, 128>(a, stream);
  }
}

}  // namespace

bool attention_prefill_applies(const AttentionArgs& args) {
  return args.n_tokens >= kPrefillAttentionMinTokens && env_choice() != EnvChoice::Split;
}

bool attention_prefill_flash_supported(const AttentionArgs& a) {
  return (a.cache_dtype == DType::BF16 || a.cache_dtype == DType::F16) && (a.head_dim == 64 || a.head_dim == 128) &&
         a.n_kv_heads > 0 && a.n_heads % a.n_kv_heads == 0 && a.q_stride % 4 == 0 && aligned16(a.q) &&
         aligned16(a.k_cache) && aligned16(a.v_cache) && aligned16(a.out);
}

PrefillAttentionAlgo attention_prefill_resolve(const AttentionArgs& args, PrefillAttentionAlgo algo) {
  if (algo != PrefillAttentionAlgo::Auto) return algo;
  const bool flash_ok = attention_prefill_flash_supported(args);
  switch (env_choice()) {
    case EnvChoice::Cublas: return PrefillAttentionAlgo::Cublas;
    case EnvChoice::Flash: return flash_ok ? PrefillAttentionAlgo::Flash : PrefillAttentionAlgo::Cublas;
    default: break;
  }
  // One block per 64 query rows and kv head: with fewer blocks than SMs (few tokens, or few kv
  // heads per rank) the fused kernel leaves the GPU idle and the GEMMs do better.
  return flash_ok && flash_blocks(args) >= sm_count() ? PrefillAttentionAlgo::Flash
                                                             : PrefillAttentionAlgo::Cublas;
}

size_t attention_prefill_workspace_bytes(const AttentionArgs& args, PrefillAttentionAlgo algo, size_t max_bytes) {
  if (args.n_tokens <= 0) return 0;
  check_args(args);
  if (attention_prefill_resolve(args, algo) == PrefillAttentionAlgo::Flash) return 0;
  return cublas_plan(args, max_bytes).bytes;
}

void attention_prefill_cuda(const AttentionArgs& args, PrefillAttentionAlgo algo, cublasHandle_t cublas,
                            void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  if (args.n_tokens <= 0) return;
  check_args(args);
  algo = attention_prefill_resolve(args, algo);
  if (algo == PrefillAttentionAlgo::Flash) {
    LLAMA_TP_CHECK(attention_prefill_flash_supported(args), "attention: the flash prefill kernel takes f16/bf16 "
                   "caches, head_dim 64 or 128 and 16-byte aligned buffers, not ", dtype_name(args.cache_dtype),
                   " with head_dim ", args.head_dim);
    attention_flash(args, stream);
    return;
  }
  attention_cublas(args, cublas, workspace, workspace_bytes, stream);
}

}  // namespace llama_tp::kernels

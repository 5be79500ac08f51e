#include "kernels/common_cuda.h"
#include "kernels/matmul_cuda.h"
#include "runtime/cuda_check.h"

namespace llama_tp::kernels {
namespace {

constexpr int kGemvWarps = 8;  // warps per block
constexpr int kUnroll = 8;     // independent 16-byte weight loads in flight per lane

template <typename T>
__device__ __forceinline__ float dot_vec(uint4 wv, const float* x) {
  constexpr int V = kVec<T>;
  float wf[V];
  unpack(wv, wf, T{});
  float s = 0.f;
#pragma unroll
  for (int j = 0; j < V; j += 4) {
    const float4 xv = __ldg(reinterpret_cast<const float4*>(x + j));
    s += wf[j] * xv.x + wf[j + 1] * xv.y + wf[j + 2] * xv.z + wf[j + 3] * xv.w;
  }
  return s;
}

// One lane's share of a row's dot product: elements t, t + stride, ... (16-byte vectors when
// kVectorized), kUnroll loads in flight at once.
template <typename T, bool kVectorized>
__device__ __forceinline__ float row_dot(const T* __restrict__ wr, const float* __restrict__ x, int k, int t,
                                         int stride) {
  float acc = 0.f;
  if constexpr (kVectorized) {
    constexpr int V = kVec<T>;
    const uint4* wv = reinterpret_cast<const uint4*>(wr);
    const int nv = k / V;
    for (int i = t; i < nv; i += kUnroll * stride) {
      uint4 u[kUnroll];
#pragma unroll
      for (int j = 0; j < kUnroll; ++j) u[j] = i + j * stride < nv ? __ldcs(wv + i + j * stride) : make_uint4(0, 0, 0, 0);
#pragma unroll
      for (int j = 0; j < kUnroll; ++j)
        if (i + j * stride < nv) acc += dot_vec<T>(u[j], x + size_t(i + j * stride) * V);
    }
  } else {
    for (int i = t; i < k; i += stride) acc += to_f32(wr[i]) * x[i];
  }
  return acc;
}

// Each output row is taken by `warps_per_row` warps of one block (1, 2, 4 or 8: more when the
// matrix has too few rows to give every SM several blocks), which stride over the row together;
// their partial sums meet in shared memory. Weights are read once per token: streaming loads
// (__ldcs) keep them from evicting x, which every warp re-reads from L1/L2. With kSwiglu, w has
// 2n rows [gate | up] and out[r] = silu(gate_r · x) * (up_r · x).
template <typename T, bool kVectorized, bool kSwiglu>
__global__ void __launch_bounds__(kGemvWarps * 32) gemv_kernel(float* __restrict__ out, const float* __restrict__ x,
                                                               const T* __restrict__ w, int n, int k,
                                                               int warps_per_row) {
  constexpr int kDots = kSwiglu ? 2 : 1;
  __shared__ float partial[kDots][kGemvWarps];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row = blockIdx.x * (kGemvWarps / warps_per_row) + warp / warps_per_row;
  const int t = (warp % warps_per_row) * 32 + lane, stride = warps_per_row * 32;
  float acc[kDots] = {};
  if (row < n)
#pragma unroll
    for (int d = 0; d < kDots; ++d)
      acc[d] = row_dot<T, kVectorized>(w + (size_t(row) + size_t(d) * n) * k, x, k, t, stride);
#pragma unroll
  for (int d = 0; d < kDots; ++d) acc[d] = warp_sum(acc[d]);
  if (warps_per_row > 1) {
    if (lane == 0)
#pragma unroll
      for (int d = 0; d < kDots; ++d) partial[d][warp] = acc[d];
    __syncthreads();
#pragma unroll
    for (int d = 0; d < kDots; ++d) {
      acc[d] = 0.f;
      for (int p = 0; p < warps_per_row; ++p) acc[d] += partial[d][warp - warp % warps_per_row + p];
    }
  }
  if (lane == 0 && warp % warps_per_row == 0 && row < n) {
    if constexpr (kSwiglu)
      out[row] = acc[0] / (1.0f + expf(-acc[0])) * acc[1];
    else
      out[row] = acc[0];
  }
}

template <bool kSwiglu>
void launch_gemv(float* out, const float* x, const void* w, DType w_dtype, int n, int k, cudaStream_t stream,
                 int warps_per_row) {
  if (n == 0) return;
  const int wpr = warps_per_row > 0 ? warps_per_row : gemv_warps_per_row(n, k, w_dtype);
  LLAMA_TP_CHECK(wpr == 1 || wpr == 2 || wpr == 4 || wpr == 8, "gemv: warps_per_row must be 1, 2, 4 or 8, not ", wpr);
  const int blocks = cdiv(n, kGemvWarps / wpr);
  dispatch_float(w_dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* wt = static_cast<const T*>(w);
    if (k % kVec<T> == 0 && aligned16(w) && aligned16(x))
      gemv_kernel<T, true, kSwiglu><<<blocks, kGemvWarps * 32, 0, stream>>>(out, x, wt, n, k, wpr);
    else
      gemv_kernel<T, false, kSwiglu><<<blocks, kGemvWarps * 32, 0, stream>>>(out, x, wt, n, k, wpr);
  });
  CUDA_CHECK_LAUNCH();
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::F32: return CUDA_R_32F;
    case DType::F16: return CUDA_R_16F;
    case DType::BF16: return CUDA_R_16BF;
    default: LLAMA_TP_FAIL("cuBLAS products take f32, f16 or bf16 weights, not ", dtype_name(t));
  }
}

}  // namespace

int gemv_warps_per_row(int n, int k, DType w_dtype) {
  // Split rows over more warps while the grid is short of 2 blocks per SM and each lane keeps
  // at least one full round of kUnroll loads.
  const int vecs = k / (16 / int(dtype_size(w_dtype)));
  int wpr = 1;
  while (wpr < kGemvWarps && cdiv(n, kGemvWarps / wpr) < 2 * sm_count() && vecs >= 2 * wpr * 32 * kUnroll) wpr *= 2;
  return wpr;
}

void gemv_cuda(float* out, const float* x, const void* w, DType w_dtype, int n, int k, cudaStream_t stream,
               int warps_per_row) {
  launch_gemv<false>(out, x, w, w_dtype, n, k, stream, warps_per_row);
}

void gemv_swiglu_cuda(float* out, const float* x, const void* w13, DType w_dtype, int ffn, int k,
                      cudaStream_t stream, int warps_per_row) {
  launch_gemv<true>(out, x, w13, w_dtype, ffn, k, stream, warps_per_row);
}

void gemm_cublas(cublasHandle_t handle, float* out, const void* x_w, const void* w, DType w_dtype,
                 int m, int n, int k) {
  if (m == 0 || n == 0) return;
  // Column-major view: outᵀ [n, m] = w [k, n]ᵀ · xᵀ [k, m].
  const float alpha = 1.f, beta = 0.f;
  const cudaDataType_t t = cuda_type(w_dtype);
  CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, t, k, x_w, t, k, &beta,
                            out, CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace llama_tp::kernels

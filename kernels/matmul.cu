#include "kernels/common_cuda.h"
#include "kernels/matmul_cuda.h"
#include "runtime/cuda_check.h"

namespace llama_tp::kernels {
namespace {

constexpr int kGemvWarps = 8;  // output rows per block
constexpr int kUnroll = 4;     // 16-byte weight loads in flight per lane

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

// Weights are read once per token: streaming loads (__ldcs) keep them from evicting x, which
// every warp re-reads from L1/L2.
template <typename T, bool kVectorized>
__global__ void __launch_bounds__(kGemvWarps * 32) gemv_kernel(float* __restrict__ out, const float* __restrict__ x,
                                                               const T* __restrict__ w, int n, int k) {
  const int row = blockIdx.x * kGemvWarps + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= n) return;
  const T* wr = w + size_t(row) * k;
  float acc = 0.f;
  if constexpr (kVectorized) {
    constexpr int V = kVec<T>;
    const uint4* wv = reinterpret_cast<const uint4*>(wr);
    const int nv = k / V;
    int i = lane;
    for (; i + (kUnroll - 1) * 32 < nv; i += kUnroll * 32) {
      uint4 u[kUnroll];
#pragma unroll
      for (int j = 0; j < kUnroll; ++j) u[j] = __ldcs(wv + i + j * 32);
#pragma unroll
      for (int j = 0; j < kUnroll; ++j) acc += dot_vec<T>(u[j], x + size_t(i + j * 32) * V);
    }
    for (; i < nv; i += 32) acc += dot_vec<T>(__ldcs(wv + i), x + size_t(i) * V);
  } else {
    for (int i = lane; i < k; i += 32) acc += to_f32(wr[i]) * x[i];
  }
  acc = warp_sum(acc);
  if (lane == 0) out[row] = acc;
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

void gemv_cuda(float* out, const float* x, const void* w, DType w_dtype, int n, int k, cudaStream_t stream) {
  if (n == 0) return;
  const int blocks = cdiv(n, kGemvWarps);
  dispatch_float(w_dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* wt = static_cast<const T*>(w);
    if (k % kVec<T> == 0 && aligned16(w) && aligned16(x))
      gemv_kernel<T, true><<<blocks, kGemvWarps * 32, 0, stream>>>(out, x, wt, n, k);
    else
      gemv_kernel<T, false><<<blocks, kGemvWarps * 32, 0, stream>>>(out, x, wt, n, k);
  });
  CUDA_CHECK_LAUNCH();
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

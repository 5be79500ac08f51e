#include <algorithm>

#include "kernels/common_cuda.h"
#include "kernels/matmul_int8_cuda.h"
#include "kernels/quantize_cuda.h"
#include "runtime/cuda_check.h"

namespace llama_tp::kernels {
namespace {

constexpr int kGemvWarps = 8;  // output rows per block
constexpr int kUnroll = 4;     // 16-byte weight loads in flight per lane

// Four int8 (one 32-bit word) to floats without I2F (a quarter-rate instruction): byte b, biased
// to b + 128, becomes the low mantissa bits of 2^23; subtracting 2^23 + 128 leaves b exactly.
__device__ __forceinline__ void int8x4_to_float(uint32_t word, float* f) {
  const uint32_t biased = word ^ 0x80808080u;
#pragma unroll
  for (int i = 0; i < 4; ++i) f[i] = __uint_as_float(__byte_perm(biased, 0x4B000000u, 0x7650u + i)) - 8388736.f;
}

// 16 int8 weights · x[0..16).
__device__ __forceinline__ float dot16(uint4 wv, const float* x) {
  const uint32_t words[4] = {wv.x, wv.y, wv.z, wv.w};
  float s = 0.f;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    float wf[4];
    int8x4_to_float(words[j], wf);
    const float4 xv = __ldg(reinterpret_cast<const float4*>(x + 4 * j));
    s += wf[0] * xv.x + wf[1] * xv.y + wf[2] * xv.z + wf[3] * xv.w;
  }
  return s;
}

// As gemv_kernel in matmul.cu: streaming loads (__ldcs) keep the weights from evicting x. Each
// 16-byte chunk lies in one scale group (group % 16 == 0), so it is summed unscaled and then
// multiplied by its scale once.
template <bool kVectorized>
__global__ void __launch_bounds__(kGemvWarps * 32)
    gemv_int8_kernel(float* __restrict__ out, const float* __restrict__ x, const int8_t* __restrict__ q,
                     const float* __restrict__ scales, int n, int k, int group) {
  const int row = blockIdx.x * kGemvWarps + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= n) return;
  const int groups = (k + group - 1) / group;
  const int8_t* qr = q + size_t(row) * k;
  const float* sr = scales + size_t(row) * groups;
  float acc = 0.f;
  if constexpr (kVectorized) {
    const uint4* wv = reinterpret_cast<const uint4*>(qr);
    const int nv = k / 16, chunks_per_group = group / 16;
    int i = lane;
    for (; i + (kUnroll - 1) * 32 < nv; i += kUnroll * 32) {
      uint4 u[kUnroll];
#pragma unroll
      for (int j = 0; j < kUnroll; ++j) u[j] = __ldcs(wv + i + j * 32);
#pragma unroll
      for (int j = 0; j < kUnroll; ++j) {
        const int c = i + j * 32;
        acc += dot16(u[j], x + size_t(c) * 16) * __ldg(sr + c / chunks_per_group);
      }
    }
    for (; i < nv; i += 32) acc += dot16(__ldcs(wv + i), x + size_t(i) * 16) * __ldg(sr + i / chunks_per_group);
  } else {
    for (int c = lane; c < k; c += 32) acc += float(qr[c]) * sr[c / group] * x[c];
  }
  acc = warp_sum(acc);
  if (lane == 0) out[row] = acc;
}

cudaDataType_t cublas_type(DType t) {
  switch (t) {
    case DType::F32: return CUDA_R_32F;
    case DType::F16: return CUDA_R_16F;
    case DType::BF16: return CUDA_R_16BF;
    default: LLAMA_TP_FAIL("cuBLAS products take f32, f16 or bf16 operands, not ", dtype_name(t));
  }
}

}  // namespace

void gemv_int8_cuda(float* out, const float* x, const int8_t* q, const float* scales, int n, int k, int group,
                    cudaStream_t stream) {
  if (n == 0) return;
  LLAMA_TP_CHECK(group > 0, "gemv_int8_cuda: group must be positive");
  const int blocks = cdiv(n, kGemvWarps);
  // group == k (one scale per row) with k % 16 == 0 also keeps every chunk inside one group.
  if (k % 16 == 0 && group % 16 == 0 && aligned16(q) && aligned16(x))
    gemv_int8_kernel<true><<<blocks, kGemvWarps * 32, 0, stream>>>(out, x, q, scales, n, k, group);
  else
    gemv_int8_kernel<false><<<blocks, kGemvWarps * 32, 0, stream>>>(out, x, q, scales, n, k, group);
  CUDA_CHECK_LAUNCH();
}

void gemm_int8_dequant_cublas(cublasHandle_t handle, float* out, const void* x_w, DType dtype, const int8_t* q,
                              const float* scales, int m, int n, int k, int group, void* tile, int tile_rows,
                              cudaStream_t stream) {
  if (m == 0 || n == 0) return;
  LLAMA_TP_CHECK(tile_rows > 0 && group > 0, "gemm_int8_dequant_cublas: tile_rows and group must be positive");
  const int groups = (k + group - 1) / group;
  const cudaDataType_t t = cublas_type(dtype);
  const float alpha = 1.f, beta = 0.f;
  for (int n0 = 0; n0 < n; n0 += tile_rows) {
    const int nt = std::min(tile_rows, n - n0);
    dequantize_int8_cuda(tile, dtype, q + size_t(n0) * k, scales + size_t(n0) * groups, nt, k, group, stream);
    // Column-major view as gemm_cublas: outᵀ rows [n0, n0 + nt) = tile [k, nt]ᵀ · xᵀ [k, m], ldc n.
    CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, nt, m, k, &alpha, tile, t, k, x_w, t, k, &beta,
                              out + n0, CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
}

}  // namespace llama_tp::kernels

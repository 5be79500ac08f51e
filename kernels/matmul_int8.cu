#include <algorithm>

#include "kernels/common_cuda.h"
#include "kernels/matmul_int8_cuda.h"
#include "kernels/quantize_cuda.h"
#include "runtime/cuda_check.h"

namespace llama_tp::kernels {
namespace {

cudaDataType_t cublas_type(DType t) {
  switch (t) {
    case DType::F32: return CUDA_R_32F;
    case DType::F16: return CUDA_R_16F;
    case DType::BF16: return CUDA_R_16BF;
    default: LLAMA_TP_FAIL("cuBLAS products take f32, f16 or bf16 operands, not ", dtype_name(t));
  }
}

}  // namespace

void gemm_int8_dequant_cublas(cublasHandle_t handle, float* out, const void* x_w, DType dtype, const int8_t* q,
                              const QuantScale* scales, int m, int n, int k, int group, void* tile, int tile_rows,
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

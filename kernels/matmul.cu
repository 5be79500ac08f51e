#include "kernels/common_cuda.h"
#include "kernels/matmul_cuda.h"
#include "runtime/cuda_check.h"

namespace llama_tp::kernels {
namespace {

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::F32: return CUDA_R_32F;
    case DType::F16: return CUDA_R_16F;
    case DType::BF16: return CUDA_R_16BF;
    default: LLAMA_TP_FAIL("cuBLAS products take f32, f16 or bf16 weights, not ", dtype_name(t));
  }
}

}  // namespace

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

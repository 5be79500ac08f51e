#pragma once
// CUDA_CHECK / CUBLAS_CHECK wrap every CUDA runtime and cuBLAS call: a failure becomes a
// llama_tp::Error naming the call, the code and file:line. CUDA_CHECK_LAUNCH() after a kernel
// launch checks the launch (and, in debug builds, synchronises to surface execution errors).
#include <cuda_runtime.h>

#include "runtime/error.h"

#define CUDA_CHECK(call)                                                                   \
  do {                                                                                     \
    cudaError_t err_ = (call);                                                             \
    if (err_ != cudaSuccess) LLAMA_TP_FAIL("CUDA error in ", #call, ": ", cudaGetErrorString(err_)); \
  } while (0)

#ifdef NDEBUG
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
#else
#define CUDA_CHECK_LAUNCH()              \
  do {                                   \
    CUDA_CHECK(cudaGetLastError());      \
    CUDA_CHECK(cudaDeviceSynchronize()); \
  } while (0)
#endif

#define CUBLAS_CHECK(call)                                                              \
  do {                                                                                  \
    int st_ = int(call);                                                                \
    if (st_ != 0) LLAMA_TP_FAIL("cuBLAS error ", st_, " in ", #call);                   \
  } while (0)

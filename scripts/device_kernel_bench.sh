#!/usr/bin/env bash
# Times the CUDA kernels on Llama-3-8B shapes (batch-1 GEMV against cuBLAS, decode and prefill
# attention, rmsnorm), for the speed work of issue 6. Not a test: numbers only.
#   scripts/device_kernel_bench.sh build [dir]   here: compiles <dir>/kernel_bench (default dir build-bench)
#   scripts/device_kernel_bench.sh run [dir]     on the GPU machine: runs kernel_bench
# With LLAMA_TP_TIMELINE=1 it also prints, per GEMV and dtype, the phases of 20 back-to-back launches
# (kernels/timeline_cuda.h).
set -euo pipefail
mode=${1:-build}
dir=${2:-build-bench}
if [[ $mode == run ]]; then
  export LD_LIBRARY_PATH="/usr/local/cuda/lib64:/usr/local/cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  exec "$dir/kernel_bench"
fi
mkdir -p "$dir"
cat >"$dir/kernel_bench.cu" <<'CU'
#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>
#include <cublas_v2.h>
#include "kernels/attention_cuda.h"
#include "kernels/convert_cuda.h"
#include "kernels/gemv_cuda.h"
#include "kernels/matmul_cuda.h"
#include "kernels/matmul_int8_cuda.h"
#include "kernels/rmsnorm_cuda.h"
#include "kernels/swiglu_cuda.h"
#include "kernels/timeline_cuda.h"
#include "runtime/cuda_check.h"
using namespace llama_tp;
using namespace llama_tp::kernels;

// Random bf16-representable values in [-1, 1) (never zeros: they can run faster than data).
void* random_dev(size_t n, DType dt, unsigned seed) {
  std::vector<float> h(n);
  for (size_t i = 0; i < n; ++i) { seed = seed * 1664525u + 1013904223u; h[i] = float(seed >> 8) / float(1 << 23) - 1.f; }
  float* f; void* d;
  CUDA_CHECK(cudaMalloc(&f, n * 4)); CUDA_CHECK(cudaMalloc(&d, n * dtype_size(dt)));
  CUDA_CHECK(cudaMemcpy(f, h.data(), n * 4, cudaMemcpyHostToDevice));
  convert_cuda(d, dt, f, DType::F32, n, 0);
  CUDA_CHECK(cudaDeviceSynchronize()); CUDA_CHECK(cudaFree(f));
  return d;
}

// Median of 50 timed runs (after 5 warm-ups) in microseconds.
template <typename F> float time_us(F&& f) {
  cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
  for (int i = 0; i < 5; ++i) f();
  std::vector<float> t;
  for (int i = 0; i < 50; ++i) { cudaEventRecord(a); f(); cudaEventRecord(b); cudaEventSynchronize(b); float ms; cudaEventElapsedTime(&ms, a, b); t.push_back(ms * 1000); }
  CUDA_CHECK(cudaGetLastError());
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}


int main() {
  cudaDeviceProp prop; CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  printf("device: %s, %d SMs\n", prop.name, prop.multiProcessorCount);
  cublasHandle_t h; CUBLAS_CHECK(cublasCreate(&h));
  timeline_init();  // LLAMA_TP_TIMELINE=1 only
  const DType bf = DType::BF16;
  // ---- batch-1 linear: weights rotate among 4 copies so L2 (50 MB) cannot hold them
  struct Lin { const char* name; int n, k; };
  printf("\n%-22s %9s %7s %9s %7s %9s %7s %9s %7s\n", "linear (n x k)", "bf16 us", "GB/s", "x20 us", "GB/s",
         "int8 us", "GB/s", "x20 us", "GB/s");
  for (Lin l : {Lin{"qkv 6144x4096", 6144, 4096}, Lin{"o 4096x4096", 4096, 4096}, Lin{"gate_up 28672x4096", 28672, 4096},
                Lin{"down 4096x14336", 4096, 14336}, Lin{"lm_head 128256x4096", 128256, 4096}, Lin{"1b qkv 3072x2048", 3072, 2048},
                Lin{"1b down 2048x8192", 2048, 8192}}) {
    const int copies = 4;
    std::vector<void*> w(copies), q(copies), s(copies);
    for (int c = 0; c < copies; ++c) {
      w[c] = random_dev(size_t(l.n) * l.k, bf, 7 + c);
      q[c] = random_dev(size_t(l.n) * l.k / 2, bf, 17 + c);  // any bytes are int8 values
      s[c] = random_dev(size_t(l.n) * (l.k / 128), DType::F32, 27 + c);
    }
    float* x = (float*)random_dev(l.k, DType::F32, 3);
    float* out; CUDA_CHECK(cudaMalloc(&out, size_t(l.n) * 4));
    int i = 0;
    auto bf_call = [&] { gemv_cuda(out, x, w[i++ % copies], bf, l.n, l.k, 0); };
    auto i8_call = [&] { int c = i++ % copies; gemv_int8_cuda(out, x, (const int8_t*)q[c], (const float*)s[c], l.n, l.k, 128, 0); };
    const float g = time_us(bf_call), g20 = time_us([&] { for (int r = 0; r < 20; ++r) bf_call(); }) / 20;
    const float q1 = time_us(i8_call), q20 = time_us([&] { for (int r = 0; r < 20; ++r) i8_call(); }) / 20;
    if (timeline_on())  // LLAMA_TP_TIMELINE=1: the phases of 20 back-to-back launches of each
      for (auto [call, dt] : {std::pair{std::function<void()>(bf_call), "bf16"}, std::pair{std::function<void()>(i8_call), "int8"}}) {
        timeline_reset();
        for (int r = 0; r < 20; ++r) call();
        printf("%s %s, 20 launches: %s", l.name, dt, timeline_report().c_str());
      }
    const double bytes = double(l.n) * l.k * 2, qbytes = double(l.n) * l.k * (1 + 4.0 / 128);
    printf("%-22s %9.1f %7.0f %9.1f %7.0f %9.1f %7.0f %9.1f %7.0f\n", l.name, g, bytes / g / 1e3, g20, bytes / g20 / 1e3,
           q1, qbytes / q1 / 1e3, q20, qbytes / q20 / 1e3);
    for (int c = 0; c < copies; ++c) cudaFree(w[c]), cudaFree(q[c]), cudaFree(s[c]);
    cudaFree(x); cudaFree(out);
  }
  // ---- attention, Llama-3-8B heads (32 q / 8 kv, head_dim 128), bf16 cache
  printf("\n%-28s %10s %12s\n", "attention bf16 32/8x128", "us", "KV GB/s");
  const int max_seq = 8192 + 2048;
  void* kc = random_dev(size_t(8) * max_seq * 128, bf, 11);
  void* vc = random_dev(size_t(8) * max_seq * 128, bf, 12);
  const int width = (32 + 16) * 128;
  float* qkv = (float*)random_dev(size_t(2048) * width, DType::F32, 13);
  float* out; CUDA_CHECK(cudaMalloc(&out, size_t(2048) * 32 * 128 * 4));
  void* ws; CUDA_CHECK(cudaMalloc(&ws, size_t(256) << 20));
  for (auto [n_tokens, pos0] : {std::pair{1, 127}, std::pair{1, 1023}, std::pair{1, 8191}, std::pair{2048, 0}}) {
    AttentionArgs a{out, qkv, width, kc, vc, bf, n_tokens, 32, 8, 128, pos0, max_seq};
    float t = time_us([&] { attention_cuda(a, ws, 0); });
    const double kv_bytes = 2.0 * 8 * (pos0 + n_tokens) * 128 * 2;
    char name[64]; snprintf(name, sizeof name, "T=%d at pos %d", n_tokens, pos0);
    printf("%-28s %10.1f %12.0f\n", name, t, kv_bytes / t / 1e3);
  }
  // ---- rmsnorm, one row of 4096
  float* xr = (float*)random_dev(4096, DType::F32, 5);
  void* wr = random_dev(4096, bf, 6);
  float* xo = (float*)random_dev(64 * 4096, DType::F32, 8);
  float* xi = (float*)random_dev(64 * 4096, DType::F32, 9);
  printf("\nrmsnorm 1x4096 in place: %.1f us, out of place: %.1f us, 64x4096: %.1f us; add of 1 float (launch floor): %.1f us\n",
         time_us([&] { rmsnorm_cuda(xr, xr, wr, bf, 1, 4096, 1e-5f, 0); }),
         time_us([&] { rmsnorm_cuda(xo, xi, wr, bf, 1, 4096, 1e-5f, 0); }),
         time_us([&] { rmsnorm_cuda(xo, xi, wr, bf, 64, 4096, 1e-5f, 0); }),
         time_us([&] { add_cuda(xo, xi, 1, 0); }));
  return 0;
}
CU
root=$(cd "$(dirname "$0")/.." && pwd)
nvcc -std=c++20 -O3 -arch=sm_90 --expt-relaxed-constexpr -I"$root" -o "$dir/kernel_bench" "$dir/kernel_bench.cu" \
  "$root/kernels/matmul.cu" "$root/kernels/gemv.cu" "$root/kernels/attention.cu" "$root/kernels/convert.cu" "$root/kernels/rmsnorm.cu" "$root/kernels/swiglu.cu" \
  "$root/kernels/timeline.cu" "$root/kernels/timeline.cpp" "$root/runtime/dtype.cpp" -lcublas
echo "built $dir/kernel_bench"

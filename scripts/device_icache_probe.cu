// What code not yet in an SM's instruction cache costs (session 20): one warp per block (132
// blocks) runs N unrolled FFMAs (16 bytes of machine code each) three times in a loop; pass 0
// fetches the code, passes 1 and 2 find it cached if it fits. Alone and beside a kernel streaming
// 2 GiB. Build here, run on the GPU machine:
//   nvcc -O3 -arch=sm_90 -o .device-pack/icache_probe scripts/device_icache_probe.cu
//   run(command=".device-pack/icache_probe", carry=[".device-pack"])
// H200 (session 20), us per pass: 16 KB 0.67 cold / 0.53 warm; 32 KB 2.47 / 1.22; 64 KB 4.98 /
// 4.93 (does not fit: every pass fetches, about 13 KB/us). Code a kernel runs once per launch (a
// GEMV's staging and epilogue) pays that fetch on every launch: kernels/gemv.cu keeps paths the
// common case never takes out of line. (The decode attention did not gain from warm code: run
// twice in a row, the second launch took as long, 8.34 against 8.26 us a layer.)
#include <cstdio>
#include <cuda_runtime.h>
__device__ __forceinline__ unsigned long long gt() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
template <int N>
__global__ void straight(float* out, unsigned long long* t) {
  float a[8];
  for (int i = 0; i < 8; ++i) a[i] = threadIdx.x * 0.001f + i;
#pragma unroll 1
  for (int r = 0; r < 3; ++r) {
    __syncwarp();
    unsigned long long t0 = gt();
#pragma unroll
    for (int i = 0; i < N; ++i) a[i % 8] = fmaf(a[i % 8], 1.0001f, 0.5f + r);
    __syncwarp();
    unsigned long long t1 = gt();
    if (threadIdx.x == 0) t[blockIdx.x * 3 + r] = t1 - t0;
  }
  float s = 0; for (int i = 0; i < 8; ++i) s += a[i];
  out[blockIdx.x * 32 + threadIdx.x] = s;
}
__global__ void stream(const float4* src, float* out, size_t n) {
  float4 acc = {0, 0, 0, 0};
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    float4 v = __ldcs(src + i); acc.x += v.x; acc.y += v.y;
  }
  if (acc.x == 1234.5f) out[0] = acc.y;
}
template <int N>
void run(const char* name, bool loaded, float* out, unsigned long long* t, float4* big, size_t nbig, cudaStream_t s1, cudaStream_t s2) {
  static unsigned long long h[132 * 3];
  double sum[3] = {0, 0, 0};
  int reps = 5;
  for (int k = 0; k < reps; ++k) {
    if (loaded) stream<<<264, 512, 0, s2>>>(big, out + 100000, nbig);
    straight<N / 2><<<132, 32, 0, s1>>>(out, t);  // evict: another kernel's code in between
    straight<N><<<132, 32, 0, s1>>>(out, t);
    cudaDeviceSynchronize();
    cudaMemcpy(h, t, sizeof(h), cudaMemcpyDeviceToHost);
    for (int b = 0; b < 132; ++b) for (int r = 0; r < 3; ++r) sum[r] += h[b * 3 + r];
  }
  printf("%-8s N=%5d (%3d KB SASS) %s: pass0 %.2f us, pass1 %.2f us, pass2 %.2f us\n", name, N, N * 16 / 1024,
         loaded ? "beside streaming" : "alone          ", sum[0] / reps / 132 / 1000, sum[1] / reps / 132 / 1000, sum[2] / reps / 132 / 1000);
}
int main() {
  float* out; unsigned long long* t; float4* big;
  size_t nbig = size_t(2) << 30 >> 4;  // 2 GiB
  cudaMalloc(&out, 200000 * 4); cudaMalloc(&t, 132 * 3 * 8); cudaMalloc(&big, nbig * 16);
  cudaMemset(big, 0, nbig * 16);
  cudaStream_t s1, s2; cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking); cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking);
  for (int loaded = 0; loaded < 2; ++loaded) {
    run<256>("ffma", loaded, out, t, big, nbig, s1, s2);
    run<1024>("ffma", loaded, out, t, big, nbig, s1, s2);
    run<2048>("ffma", loaded, out, t, big, nbig, s1, s2);
    run<4096>("ffma", loaded, out, t, big, nbig, s1, s2);
  }
  printf("%s\n", cudaGetErrorString(cudaGetLastError()));
}

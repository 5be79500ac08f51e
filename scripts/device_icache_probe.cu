// What code not yet in an SM's instruction cache costs (session 20): one warp per block (one per
// SM) runs N unrolled FFMAs (16 bytes of machine code each) three times in a loop; pass 0
// fetches the code, passes 1 and 2 find it cached if it fits. Alone and beside a kernel streaming
// 2 GiB. Build here, run on the GPU machine:
//   nvcc -O3 -arch=sm_90 -o .device-pack/icache_probe scripts/device_icache_probe.cu
//   run(command=".device-pack/icache_probe", carry=[".device-pack"])
// H200 (session 20), us per pass: 16 KB 0.67 cold / 0.53 warm; 32 KB 2.47 / 1.22; 64 KB 4.98 /
// 4.93 (does not fit: every pass fetches, about 13 KB/us). Code a kernel runs once per launch (a
// GEMV's staging and epilogue) pays that fetch on every launch: kernels/gemv.cu keeps paths the
// common case never takes out of line. (The decode attention did not gain from warm code: run
// twice in a row, the second launch took as long, 8.34 against 8.26 us a layer.)
#include <cuda_runtime.h>

#include <cstdio>
#include <vector>

__device__ __forceinline__ unsigned long long gt() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// Each pass's time in ns into t[block][pass].
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
  float s = 0;
  for (int i = 0; i < 8; ++i) s += a[i];
  out[blockIdx.x * 32 + threadIdx.x] = s;
}

// Reads n float4 once (streaming), for memory traffic beside the probe.
__global__ void stream(const float4* src, float* out, size_t n) {
  float4 acc = {0, 0, 0, 0};
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const float4 v = __ldcs(src + i);
    acc.x += v.x, acc.y += v.y;
  }
  if (acc.x == 1234.5f) out[0] = acc.y;  // never, but the loads stay
}

struct Probe {
  int blocks;  // one warp per SM
  float* out;
  unsigned long long* t;  // [blocks][3] ns per pass
  float4* big;            // streamed beside, when loaded
  size_t n_big;
  cudaStream_t s1, s2;
};

// Mean us per pass of straight<N> over the blocks and 5 repetitions, each after another kernel
// (straight<N / 2>) has run on the SMs.
template <int N>
void run(const Probe& p, bool loaded) {
  std::vector<unsigned long long> h(size_t(p.blocks) * 3);
  double sum[3] = {0, 0, 0};
  const int reps = 5;
  for (int k = 0; k < reps; ++k) {
    if (loaded) stream<<<2 * p.blocks, 512, 0, p.s2>>>(p.big, p.out + 100000, p.n_big);
    straight<N / 2><<<p.blocks, 32, 0, p.s1>>>(p.out, p.t);
    straight<N><<<p.blocks, 32, 0, p.s1>>>(p.out, p.t);
    cudaDeviceSynchronize();
    cudaMemcpy(h.data(), p.t, h.size() * sizeof(h[0]), cudaMemcpyDeviceToHost);
    for (size_t i = 0; i < h.size(); ++i) sum[i % 3] += double(h[i]);
  }
  const double scale = 1.0 / (reps * p.blocks * 1000.0);
  printf("N=%5d FFMAs (%3d KB of code) %s: pass 0 %.2f us, pass 1 %.2f us, pass 2 %.2f us\n", N, N * 16 / 1024,
         loaded ? "beside streaming" : "alone           ", sum[0] * scale, sum[1] * scale, sum[2] * scale);
}

int main() {
  Probe p;
  cudaDeviceGetAttribute(&p.blocks, cudaDevAttrMultiProcessorCount, 0);
  p.n_big = (size_t(2) << 30) / sizeof(float4);  // 2 GiB
  cudaMalloc(&p.out, 200000 * sizeof(float));
  cudaMalloc(&p.t, size_t(p.blocks) * 3 * sizeof(unsigned long long));
  cudaMalloc(&p.big, p.n_big * sizeof(float4));
  cudaMemset(p.big, 0, p.n_big * sizeof(float4));
  cudaStreamCreateWithFlags(&p.s1, cudaStreamNonBlocking);
  cudaStreamCreateWithFlags(&p.s2, cudaStreamNonBlocking);
  for (bool loaded : {false, true}) {
    run<256>(p, loaded);
    run<1024>(p, loaded);
    run<2048>(p, loaded);
    run<4096>(p, loaded);
  }
  const cudaError_t e = cudaGetLastError();
  printf("%s\n", cudaGetErrorString(e));
  return e == cudaSuccess ? 0 : 1;
}

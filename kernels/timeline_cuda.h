#pragma once
// Kernel timeline of a decode step, a development aid for the speed work (the GPU machine has no
// Nsight Systems). With LLAMA_TP_TIMELINE=1 in the environment, the batch-1 GEMV and the decode
// attention kernels stamp %globaltimer per block at four points: entry, after the wait for the
// kernel before (programmatic dependent launch), when their input is ready (x staged; attention:
// the same as the wait) and at the block's end. `llama_tp bench` then prints, per kind of
// kernel, where one decode step's time goes (timeline_report). Off, the kernels test one
// uniform pointer per stamp and do nothing else.
#include <cuda_runtime.h>

#include <string>

#include "kernels/timeline.h"

namespace llama_tp::kernels {

// What one launch passes its kernel: where to stamp (null: off) and its node id (a graph
// captures it, so each node of a step keeps its own).
struct Timeline {
  TimelineStamp* stamps = nullptr;
  unsigned* count = nullptr;
  unsigned capacity = 0, node = 0;
};

bool timeline_on();  // LLAMA_TP_TIMELINE=1
// Allocates the stamp buffer; call outside any graph capture (CudaBackend's constructor).
void timeline_init();
// A launch's Timeline (empty when off): `name` groups the nodes in the report, `bytes` is what the
// kernel must read at least (for its GB/s).
Timeline timeline_node(const std::string& name, double bytes);
// Forget the stamps so far (synchronises the device).
void timeline_reset();
// The stamps since the reset, summarised per kind of node (format_timeline; synchronises).
std::string timeline_report();

#ifdef __CUDACC__
// Stamps `event` of this block; `slot` is taken at event 0. Event 3 waits for the whole block.
__device__ __forceinline__ void timeline_stamp(const Timeline& tl, unsigned& slot, int event) {
  if (!tl.stamps) return;
  if (event == 3) __syncthreads();
  if (threadIdx.x != 0) return;
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  if (event == 0) {
    slot = atomicAdd(tl.count, 1u) % tl.capacity;
    tl.stamps[slot].node = tl.node;
    tl.stamps[slot].block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    unsigned sm;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
    tl.stamps[slot].sm = sm;
  }
  tl.stamps[slot].t[event] = t;
}
#endif

}  // namespace llama_tp::kernels

#pragma once
// How ranks agree. A Communicator joins the ranks of one tensor-parallel group. runtime/ code
// only ever sees this interface; which implementation runs is chosen at start-up:
//   nccl   - device buffers, on the compute stream (production, one rank per GPU)
//   mpi    - host buffers (the CPU backend; also lets several ranks share one GPU in tests,
//            which NCCL refuses: device tensors are staged through the host)
//   single - world size 1, every collective a no-op
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace llama_tp {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;  // "nccl", "mpi", "single"

  // Element-wise sum across ranks, in place. Any dtype of f32/f16/bf16 on the device the
  // implementation supports (nccl: CUDA; mpi: CPU and CUDA via host staging; single: any).
  virtual void all_reduce_sum(Tensor& t) = 0;
  // Broadcast bytes of host memory from root to every rank.
  virtual void broadcast(void* data, size_t nbytes, int root) = 0;
  // Gathers each rank's host bytes to root, concatenated in rank order; counts may differ per
  // rank (recv_bytes[r] is what rank r sends). Every rank passes the same recv_bytes (one entry
  // per rank), so that all ranks agree on how the transfer is split. recv is only written on
  // root (other ranks may pass nullptr).
  virtual void gather(const void* send, size_t send_bytes, void* recv,
                      const std::vector<size_t>& recv_bytes, int root) = 0;
  virtual void barrier() = 0;
  // Blocks until every collective this communicator has enqueued is complete, and throws (never
  // hangs) if a peer failed. nccl enqueues all-reduces on the compute stream and returns at
  // once, so call this before the host reads their results; host collectives (mpi, single)
  // complete before they return, so for them this does nothing.
  virtual void synchronize() {}
};

// Throws unless all_reduce_sum can add tensors of this dtype (f32, f16, bf16).
void check_all_reduce_dtype(DType dtype);

}  // namespace llama_tp

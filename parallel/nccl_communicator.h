#pragma once
// NcclCommunicator: all-reduce with NCCL on device tensors, enqueued on the compute stream.
// Only in CUDA builds (LLAMA_TP_CUDA). broadcast, gather and barrier carry small host data
// (token ids, logits already copied to the host, start-up agreement), so they go through MPI on
// host memory; only the all-reduces inside each layer are on the hot path.
#ifdef LLAMA_TP_CUDA
#include <mpi.h>

#include "parallel/communicator.h"
#include "parallel/mpi_communicator.h"

struct ncclComm;     // = ncclComm_t, without pulling nccl.h into every includer
struct CUstream_st;  // = cudaStream_t

namespace llama_tp {

class NcclCommunicator final : public Communicator {
 public:
  // Collective over the ranks of `comm`; MPI must be active and each rank must already have
  // selected its GPU (cudaSetDevice(choose_gpu(...))). cuda_stream is a cudaStream_t (nullptr:
  // the default stream). synchronize() gives up after timeout_s seconds (0: waits as long as the
  // peers stay alive, since a slow peer may still be loading its weights).
  explicit NcclCommunicator(void* cuda_stream, MPI_Comm comm = MPI_COMM_WORLD, double timeout_s = 0);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }
  std::string name() const override { return "nccl"; }

  // Enqueues ncclAllReduce on the stream and returns; call synchronize() before the host reads.
  void all_reduce_sum(Tensor& t) override;
  void broadcast(void* data, size_t nbytes, int root) override { host_.broadcast(data, nbytes, root); }
  void gather(const void* send, size_t send_bytes, void* recv, const std::vector<size_t>& recv_bytes,
              int root) override {
    host_.gather(send, send_bytes, recv, recv_bytes, root);
  }
  void barrier() override { host_.barrier(); }
  // Polls the stream and NCCL's asynchronous error state; on an error (or the timeout) aborts
  // the NCCL communicator and throws, so a failed peer never leaves this rank hanging.
  void synchronize() override;

 private:
  void check_async_error();
  [[noreturn]] void abort_and_fail(const std::string& why);

  MpiCommunicator host_;
  ncclComm* comm_ = nullptr;
  CUstream_st* stream_ = nullptr;
  double timeout_s_;
};

}  // namespace llama_tp
#endif  // LLAMA_TP_CUDA

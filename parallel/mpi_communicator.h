#pragma once
// MpiCommunicator: collectives over MPI on host memory. Used by the CPU backend, and by the CUDA
// backend with --comm mpi (device tensors are staged through a host buffer, which lets several
// ranks share one GPU in tests). MPI must be active (see MpiSession).
#include <mpi.h>

#include <cstddef>
#include <vector>

#include "parallel/communicator.h"

namespace llama_tp {

class MpiCommunicator final : public Communicator {
 public:
  // MPI counts are ints, so transfers are split into messages of at most this many bytes.
  static constexpr size_t kDefaultMaxMessageBytes = size_t(1) << 30;

  // Works on a duplicate of `comm`, so its messages never mix with anyone else's.
  // max_message_bytes lets tests exercise the splitting with small buffers.
  explicit MpiCommunicator(MPI_Comm comm = MPI_COMM_WORLD, size_t max_message_bytes = kDefaultMaxMessageBytes);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "mpi"; }
  MPI_Comm comm() const { return comm_; }

  // f16/bf16 are summed in float32 by a user-defined MPI_Op, rounded once per pairwise step.
  void all_reduce_sum(Tensor& t) override;
  void broadcast(void* data, size_t nbytes, int root) override;
  // One MPI_Gatherv when the total fits in one message, else chunked point-to-point messages
  // (so totals above 2 GiB work).
  void gather(const void* send, size_t send_bytes, void* recv, const std::vector<size_t>& recv_bytes,
              int root) override;
  void barrier() override;

 private:
  void all_reduce_host(void* data, size_t count, DType dtype);
  void gather_in_chunks(const void* send, size_t send_bytes, void* recv, const std::vector<size_t>& recv_bytes,
                        int root);

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  size_t max_message_bytes_;
  std::vector<std::byte> staging_;  // host copy of device tensors
};

}  // namespace llama_tp

#pragma once
// SingleCommunicator: a world of one rank. Every collective is a no-op (gather copies the
// rank's bytes into recv), so the single-GPU path pays nothing for tensor parallelism.
#include "parallel/communicator.h"

namespace llama_tp {

class SingleCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "single"; }

  void all_reduce_sum(Tensor& t) override { check_all_reduce_dtype(t.dtype()); }
  void broadcast(void* data, size_t nbytes, int root) override;
  void gather(const void* send, size_t send_bytes, void* recv, const std::vector<size_t>& recv_bytes,
              int root) override;
  void barrier() override {}
};

}  // namespace llama_tp

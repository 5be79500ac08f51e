#include "parallel/single_communicator.h"

#include <cstring>

#include "runtime/error.h"

namespace llama_tp {

void SingleCommunicator::broadcast(void* data, size_t nbytes, int root) {
  LLAMA_TP_CHECK(root == 0, "broadcast root ", root, " is not a rank of a world of 1");
}

void SingleCommunicator::gather(const void* send, size_t send_bytes, void* recv,
                                const std::vector<size_t>& recv_bytes, int root) {
  LLAMA_TP_CHECK(root == 0, "gather root ", root, " is not a rank of a world of 1");
  LLAMA_TP_CHECK(recv_bytes.size() == 1 && recv_bytes[0] == send_bytes, "gather in a world of 1 needs recv_bytes == {",
                 send_bytes, "}");
  LLAMA_TP_CHECK(recv || send_bytes == 0, "gather: the root needs a receive buffer of ", send_bytes, " bytes");
  if (send_bytes && recv != send) std::memmove(recv, send, send_bytes);
}

}  // namespace llama_tp

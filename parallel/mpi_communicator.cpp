#include "parallel/mpi_communicator.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <numeric>

#include "parallel/mpi_check.h"
#include "parallel/runtime_env.h"
#include "runtime/error.h"

#ifdef LLAMA_TP_CUDA
#include <cuda_runtime.h>

#include "runtime/cuda_check.h"
#endif

namespace llama_tp {

namespace {

// MPI has no 16-bit float types: f16/bf16 travel as MPI_UINT16_T and these ops add them in
// float32. The op, not the datatype, says which format the bits are in.
template <float (*to_f32)(uint16_t), uint16_t (*from_f32)(float)>
void sum_16bit(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = from_f32(to_f32(a[i]) + to_f32(b[i]));
}

struct SixteenBitSumOps {
  MPI_Op f16 = MPI_OP_NULL;
  MPI_Op bf16 = MPI_OP_NULL;
  SixteenBitSumOps() {
    MPI_CHECK(MPI_Op_create(&sum_16bit<f16_to_f32, f32_to_f16>, /*commute=*/1, &f16));
    MPI_CHECK(MPI_Op_create(&sum_16bit<bf16_to_f32, f32_to_bf16>, /*commute=*/1, &bf16));
  }
};

// Created once per process on first use; MPI_Finalize frees them.
const SixteenBitSumOps& sixteen_bit_sum_ops() {
  static const SixteenBitSumOps ops;
  return ops;
}

int checked_int(size_t n) {
  LLAMA_TP_CHECK(n <= size_t(INT_MAX), "MPI message of ", n, " units exceeds MPI's int count limit");
  return int(n);
}

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm, size_t max_message_bytes) : max_message_bytes_(max_message_bytes) {
  LLAMA_TP_CHECK(mpi_is_active(), "MPI is not initialised: create an MpiSession before the mpi communicator");
  LLAMA_TP_CHECK(max_message_bytes >= 8 && max_message_bytes <= size_t(INT_MAX),
                 "max_message_bytes ", max_message_bytes, " must be between 8 and INT_MAX");
  MPI_CHECK(MPI_Comm_dup(comm, &comm_));
  MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  MPI_CHECK(MPI_Comm_size(comm_, &size_));
}

MpiCommunicator::~MpiCommunicator() {
  if (comm_ != MPI_COMM_NULL && mpi_is_active()) MPI_Comm_free(&comm_);
}

void MpiCommunicator::all_reduce_sum(Tensor& t) {
  DType dtype = t.dtype();
  check_all_reduce_dtype(dtype);
  size_t count = size_t(t.numel());
  if (count == 0) return;
  if (t.device() == Device::CPU) {
    all_reduce_host(t.raw(), count, dtype);
    return;
  }
#ifdef LLAMA_TP_CUDA
  // The producer may be on any stream, so wait for the whole device before reading.
  CUDA_CHECK(cudaDeviceSynchronize());
  staging_.resize(t.nbytes());
  CUDA_CHECK(cudaMemcpy(staging_.data(), t.raw(), t.nbytes(), cudaMemcpyDeviceToHost));
  all_reduce_host(staging_.data(), count, dtype);
  CUDA_CHECK(cudaMemcpy(t.raw(), staging_.data(), t.nbytes(), cudaMemcpyHostToDevice));
#else
  LLAMA_TP_FAIL("the mpi communicator got a CUDA tensor but this llama_tp was built without CUDA");
#endif
}

void MpiCommunicator::all_reduce_host(void* data, size_t count, DType dtype) {
  size_t element_bytes = dtype_size(dtype);
  MPI_Datatype type = dtype == DType::F32 ? MPI_FLOAT : MPI_UINT16_T;
  MPI_Op op = dtype == DType::F32    ? MPI_SUM
              : dtype == DType::F16 ? sixteen_bit_sum_ops().f16
                                    : sixteen_bit_sum_ops().bf16;
  size_t chunk = max_message_bytes_ / element_bytes;
  auto* bytes = static_cast<char*>(data);
  for (size_t done = 0; done < count; done += chunk) {
    size_t n = std::min(chunk, count - done);
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, bytes + done * element_bytes, checked_int(n), type, op, comm_));
  }
}

void MpiCommunicator::broadcast(void* data, size_t nbytes, int root) {
  LLAMA_TP_CHECK(root >= 0 && root < size_, "broadcast root ", root, " is not a rank of this world of ", size_);
  auto* bytes = static_cast<char*>(data);
  for (size_t done = 0; done < nbytes; done += max_message_bytes_) {
    size_t n = std::min(max_message_bytes_, nbytes - done);
    MPI_CHECK(MPI_Bcast(bytes + done, checked_int(n), MPI_BYTE, root, comm_));
  }
}

void MpiCommunicator::gather(const void* send, size_t send_bytes, void* recv, const std::vector<size_t>& recv_bytes,
                             int root) {
  LLAMA_TP_CHECK(root >= 0 && root < size_, "gather root ", root, " is not a rank of this world of ", size_);
  LLAMA_TP_CHECK(recv_bytes.size() == size_t(size_), "gather needs one byte count per rank on every rank: got ",
                 recv_bytes.size(), " for a world of ", size_);
  LLAMA_TP_CHECK(recv_bytes[rank_] == send_bytes, "gather: rank ", rank_, " sends ", send_bytes,
                 " bytes but recv_bytes says ", recv_bytes[rank_]);
  size_t total = std::accumulate(recv_bytes.begin(), recv_bytes.end(), size_t(0));
  LLAMA_TP_CHECK(rank_ != root || recv || total == 0, "gather: the root needs a receive buffer of ", total, " bytes");
  if (total > max_message_bytes_) {
    gather_in_chunks(send, send_bytes, recv, recv_bytes, root);
    return;
  }
  // Every count and displacement fits in an int because the total does.
  std::vector<int> counts(size_), displs(size_);
  for (int r = 0, offset = 0; r < size_; offset += counts[r], ++r) {
    counts[r] = int(recv_bytes[r]);
    displs[r] = offset;
  }
  MPI_CHECK(MPI_Gatherv(send, int(send_bytes), MPI_BYTE, recv, counts.data(), displs.data(), MPI_BYTE, root, comm_));
}

void MpiCommunicator::gather_in_chunks(const void* send, size_t send_bytes, void* recv,
                                       const std::vector<size_t>& recv_bytes, int root) {
  constexpr int kTag = 7;
  if (rank_ != root) {
    const auto* bytes = static_cast<const char*>(send);
    for (size_t done = 0; done < send_bytes; done += max_message_bytes_) {
      size_t n = std::min(max_message_bytes_, send_bytes - done);
      MPI_CHECK(MPI_Send(bytes + done, int(n), MPI_BYTE, root, kTag, comm_));
    }
    return;
  }
  auto* out = static_cast<char*>(recv);
  for (int r = 0; r < size_; ++r) {
    if (r == root) {
      if (send_bytes) std::memmove(out, send, send_bytes);
    } else {
      for (size_t done = 0; done < recv_bytes[r]; done += max_message_bytes_) {
        size_t n = std::min(max_message_bytes_, recv_bytes[r] - done);
        MPI_CHECK(MPI_Recv(out + done, int(n), MPI_BYTE, r, kTag, comm_, MPI_STATUS_IGNORE));
      }
    }
    out += recv_bytes[r];
  }
}

void MpiCommunicator::barrier() { MPI_CHECK(MPI_Barrier(comm_)); }

}  // namespace llama_tp

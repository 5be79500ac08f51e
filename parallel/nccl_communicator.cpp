// Compiled into every build; empty without CUDA (the header says why NCCL is CUDA-only).
#ifdef LLAMA_TP_CUDA
#include "parallel/nccl_communicator.h"

#include <cuda_runtime.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "parallel/nccl_check.h"
#include "runtime/cuda_check.h"

namespace llama_tp {

namespace {

ncclDataType_t nccl_type(DType dtype) {
  check_all_reduce_dtype(dtype);
  return dtype == DType::F32 ? ncclFloat32 : dtype == DType::F16 ? ncclFloat16 : ncclBfloat16;
}

}  // namespace

NcclCommunicator::NcclCommunicator(void* cuda_stream, MPI_Comm comm, double timeout_s)
    : host_(comm), stream_(static_cast<cudaStream_t>(cuda_stream)), timeout_s_(timeout_s) {
  // NVLink SHARP (NVLS) needs multicast objects that the machines we run on do not allow; keep
  // it off unless the user explicitly asks for it in the environment.
  setenv("NCCL_NVLS_ENABLE", "0", /*overwrite=*/0);

  // Rank 0 makes the id; MPI carries it to the others, which is all NCCL needs to rendezvous.
  ncclUniqueId id{};
  if (host_.rank() == 0) NCCL_CHECK(ncclGetUniqueId(&id));
  host_.broadcast(&id, sizeof(id), 0);
  ncclComm_t created = nullptr;
  NCCL_CHECK(ncclCommInitRank(&created, host_.size(), id, host_.rank()));
  comm_ = created;
}

NcclCommunicator::~NcclCommunicator() {
  if (comm_) ncclCommDestroy(comm_);
}

void NcclCommunicator::all_reduce_sum(Tensor& t) {
  LLAMA_TP_CHECK(comm_, "the NCCL communicator was aborted after an earlier error");
  LLAMA_TP_CHECK(t.device() == Device::CUDA, "the nccl communicator reduces CUDA tensors only; use --comm mpi for ",
                 device_name(t.device()), " tensors");
  ncclDataType_t type = nccl_type(t.dtype());
  if (t.numel() == 0) return;
  NCCL_CHECK(ncclAllReduce(t.raw(), t.raw(), size_t(t.numel()), type, ncclSum, comm_, stream_));
  check_async_error();
}

void NcclCommunicator::synchronize() {
  LLAMA_TP_CHECK(comm_, "the NCCL communicator was aborted after an earlier error");
  auto start = std::chrono::steady_clock::now();
  for (long polls = 0;; ++polls) {
    cudaError_t state = cudaStreamQuery(stream_);
    if (state == cudaSuccess) break;
    if (state != cudaErrorNotReady) abort_and_fail(std::string("CUDA error on the NCCL stream: ") + cudaGetErrorString(state));
    check_async_error();
    double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (timeout_s_ > 0 && waited > timeout_s_)
      abort_and_fail(detail::concat("an NCCL collective did not finish within ", timeout_s_,
                                    " s; a peer rank is stuck or gone"));
    // Spin briefly (all-reduces usually finish in microseconds), then back off to spare the CPU.
    if (polls < 1000) std::this_thread::yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  check_async_error();
}

void NcclCommunicator::check_async_error() {
  ncclResult_t async = ncclSuccess;
  NCCL_CHECK(ncclCommGetAsyncError(comm_, &async));
  if (async != ncclSuccess && async != ncclInProgress)
    abort_and_fail(detail::concat("NCCL reported an asynchronous error: ", ncclGetErrorString(async), " (",
                                  ncclGetLastError(comm_), ")"));
}

void NcclCommunicator::abort_and_fail(const std::string& why) {
  // Aborting frees the communicator and stops its kernels, so the stream cannot stay blocked.
  ncclComm_t comm = comm_;
  comm_ = nullptr;
  if (comm) ncclCommAbort(comm);
  LLAMA_TP_FAIL(why);
}

}  // namespace llama_tp
#endif  // LLAMA_TP_CUDA

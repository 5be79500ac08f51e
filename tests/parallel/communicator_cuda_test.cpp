// Device-tensor collectives: NCCL, and the mpi communicator's staging through the host. They
// skip (with the reason) in CPU builds, without a GPU, or with more ranks than GPUs for NCCL.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdint>
#include <string>

#include "parallel/mpi_communicator.h"
#include "parallel/runtime_env.h"
#include "runtime/error.h"

#ifdef LLAMA_TP_CUDA
#include <cuda_runtime.h>

#include "parallel/nccl_communicator.h"
#endif

namespace llama_tp {
namespace {

#ifdef LLAMA_TP_CUDA
// Every rank gets a GPU by its local rank; returns how many GPUs there are (0: none).
int bind_gpu() {
  if (!cuda_available()) return 0;
  RankInfo info = query_rank_info();
  cudaSetDevice(choose_gpu(info.local_rank, -1));
  int count = 0;
  cudaGetDeviceCount(&count);
  return count;
}

// Small integers, exact in every dtype once summed over a few ranks (see communicator_test.cpp).
Tensor device_values(size_t n, DType dtype, int rank) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = float(rank + 1) * float(int64_t(i % 17) - 8);
  Tensor host = Tensor::empty({int64_t(n)}, dtype);
  convert_from_f32(v.data(), dtype, host.raw(), n);
  return host.to(Device::CUDA);
}

void expect_summed(const Tensor& t, int world) {
  std::vector<float> got = t.to_floats();
  float factor = float(world * (world + 1) / 2);
  size_t wrong = 0;
  for (size_t i = 0; i < got.size(); ++i) wrong += got[i] != factor * float(int64_t(i % 17) - 8);
  EXPECT_EQ(wrong, 0u) << "of " << got.size() << " " << dtype_name(t.dtype()) << " elements";
}

void all_reduce_every_dtype_and_size(Communicator& comm) {
  for (DType dtype : {DType::F32, DType::F16, DType::BF16})
    for (size_t n : {size_t(1), size_t(7), size_t(1000), size_t(1) << 20, size_t(16) << 20}) {
      SCOPED_TRACE(std::string(comm.name()) + " " + dtype_name(dtype) + " x " + std::to_string(n));
      Tensor t = device_values(n, dtype, comm.rank());
      comm.all_reduce_sum(t);
      comm.synchronize();
      expect_summed(t, comm.size());
    }
}
#endif

TEST(NcclCommunicator, AllReduceSumsDeviceTensors) {
#ifndef LLAMA_TP_CUDA
  GTEST_SKIP() << "built without CUDA (LLAMA_TP_CUDA=OFF), so there is no NCCL communicator to test";
#else
  int gpus = bind_gpu();
  if (gpus == 0) GTEST_SKIP() << "no CUDA GPU is visible";
  int world = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (world > gpus) GTEST_SKIP() << world << " ranks but " << gpus << " GPU(s): NCCL needs one GPU per rank";
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  {
    NcclCommunicator comm(stream);
    EXPECT_EQ(comm.name(), "nccl");
    all_reduce_every_dtype_and_size(comm);
    uint32_t token = comm.rank() == 0 ? 42u : 0u;
    comm.broadcast(&token, sizeof(token), 0);
    EXPECT_EQ(token, 42u);
    comm.barrier();
  }
  cudaStreamDestroy(stream);
#endif
}

TEST(MpiCommunicator, AllReduceStagesDeviceTensorsThroughHost) {
#ifndef LLAMA_TP_CUDA
  GTEST_SKIP() << "built without CUDA (LLAMA_TP_CUDA=OFF), so there are no device tensors to stage";
#else
  if (bind_gpu() == 0) GTEST_SKIP() << "no CUDA GPU is visible";
  MpiCommunicator comm;
  all_reduce_every_dtype_and_size(comm);
#endif
}

TEST(MpiCommunicator, RefusesDeviceTensorsWithoutCuda) {
#ifdef LLAMA_TP_CUDA
  GTEST_SKIP() << "this build has CUDA";
#else
  MpiCommunicator comm;
  int dummy = 0;
  Tensor t = Tensor::view(&dummy, {1}, DType::F32, Device::CUDA);
  EXPECT_THROW(comm.all_reduce_sum(t), Error);
#endif
}

}  // namespace
}  // namespace llama_tp

#include "parallel/make_communicator.h"

#include <gtest/gtest.h>
#include <mpi.h>

#include <string>

#include "runtime/error.h"

namespace llama_tp {
namespace {

std::string error_of(const std::string& kind, Device device, int world) {
  try {
    resolve_communicator_kind(kind, device, world);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ResolveCommunicatorKind, AutoPicksByWorldAndDevice) {
  EXPECT_EQ(resolve_communicator_kind("auto", Device::CPU, 1), "single");
  EXPECT_EQ(resolve_communicator_kind("auto", Device::CPU, 4), "mpi");
  EXPECT_EQ(resolve_communicator_kind("mpi", Device::CPU, 1), "mpi");
#ifdef LLAMA_TP_CUDA
  EXPECT_EQ(resolve_communicator_kind("auto", Device::CUDA, 1), "single");
  EXPECT_EQ(resolve_communicator_kind("auto", Device::CUDA, 2), "nccl");
  EXPECT_EQ(resolve_communicator_kind("nccl", Device::CUDA, 1), "nccl");
  EXPECT_EQ(resolve_communicator_kind("mpi", Device::CUDA, 2), "mpi");
#endif
}

TEST(ResolveCommunicatorKind, RefusesWhatCannotWork) {
  EXPECT_EQ(error_of("gloo", Device::CPU, 2), "unknown communicator 'gloo'; choose auto, nccl, mpi or single");
  EXPECT_NE(error_of("single", Device::CPU, 2).find("--comm single runs one rank but mpirun started 2"),
            std::string::npos);
  EXPECT_NE(error_of("nccl", Device::CPU, 2).find("nccl"), std::string::npos);
#ifndef LLAMA_TP_CUDA
  EXPECT_NE(error_of("nccl", Device::CUDA, 2).find("needs a CUDA build"), std::string::npos);
  EXPECT_NE(error_of("auto", Device::CUDA, 1).find("built without CUDA"), std::string::npos);
#endif
}

TEST(MakeCommunicator, AutoOnCpuMatchesTheWorld) {
  int world = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  auto comm = make_communicator("auto", Device::CPU, nullptr);
  EXPECT_EQ(comm->name(), world == 1 ? "single" : "mpi");
  EXPECT_EQ(comm->size(), world);
  auto mpi = make_communicator("mpi", Device::CPU, nullptr);
  EXPECT_EQ(mpi->name(), "mpi");
  EXPECT_EQ(mpi->size(), world);
}

}  // namespace
}  // namespace llama_tp

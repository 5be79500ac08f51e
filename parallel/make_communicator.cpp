#include "parallel/make_communicator.h"

#include <mpi.h>

#include "parallel/mpi_check.h"
#include "parallel/mpi_communicator.h"
#include "parallel/runtime_env.h"
#include "parallel/single_communicator.h"
#include "runtime/error.h"

#ifdef LLAMA_TP_CUDA
#include "parallel/nccl_communicator.h"
#endif

namespace llama_tp {

std::string resolve_communicator_kind(const std::string& kind, Device device, int world_size) {
  LLAMA_TP_CHECK(kind == "auto" || kind == "nccl" || kind == "mpi" || kind == "single", "unknown communicator '",
                 kind, "'; choose auto, nccl, mpi or single");
#ifndef LLAMA_TP_CUDA
  LLAMA_TP_CHECK(kind != "nccl", "the nccl communicator needs a CUDA build of llama_tp (configure with ",
                 "-DLLAMA_TP_CUDA=ON); use --comm mpi on CPU");
  LLAMA_TP_CHECK(device != Device::CUDA, "CUDA tensors were requested but this llama_tp was built without CUDA");
#endif
  LLAMA_TP_CHECK(!(kind == "nccl" && device != Device::CUDA),
                 "the nccl communicator reduces GPU tensors; with the CPU backend use --comm mpi");
  LLAMA_TP_CHECK(!(kind == "single" && world_size > 1), "--comm single runs one rank but mpirun started ", world_size,
                 "; use --comm auto, nccl or mpi, or run without mpirun");
  if (kind != "auto") return kind;
  if (world_size == 1) return "single";
  return device == Device::CUDA ? "nccl" : "mpi";
}

std::unique_ptr<Communicator> make_communicator(const std::string& kind, Device device, void* cuda_stream) {
  bool mpi_active = mpi_is_active();
  int world_size = 1;
  if (mpi_active) MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_size));
  std::string chosen = resolve_communicator_kind(kind, device, world_size);
  if (chosen == "single") return std::make_unique<SingleCommunicator>();
  LLAMA_TP_CHECK(mpi_active, "the ", chosen, " communicator needs MPI: create an MpiSession first");
  if (chosen == "mpi") return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD);
#ifdef LLAMA_TP_CUDA
  return std::make_unique<NcclCommunicator>(cuda_stream, MPI_COMM_WORLD);
#else
  LLAMA_TP_FAIL("the nccl communicator needs a CUDA build of llama_tp");
#endif
}

}  // namespace llama_tp

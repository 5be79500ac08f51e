#pragma once
// Picks and builds the Communicator for this run over MPI_COMM_WORLD.
#include <memory>
#include <string>

#include "parallel/communicator.h"

namespace llama_tp {

// kind: "auto" (single for a world of 1, nccl for CUDA tensors, mpi for CPU tensors),
// "nccl", "mpi" or "single". device: where the tensors to reduce live. cuda_stream: the
// compute stream (a cudaStream_t, nullptr for the default stream) for nccl. MPI must be active
// for nccl and mpi; auto and single also work without MPI (a world of 1). Every combination
// that cannot work (nccl without CUDA or with CPU tensors, single with several ranks, ...)
// throws an Error saying what to use instead.
std::unique_ptr<Communicator> make_communicator(const std::string& kind, Device device, void* cuda_stream);

// The kind "auto" resolves to for this world size and device: "single", "nccl" or "mpi".
std::string resolve_communicator_kind(const std::string& kind, Device device, int world_size);

}  // namespace llama_tp

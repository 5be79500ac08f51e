#pragma once
// Who is who at start-up: MPI initialisation, this process's rank among all ranks and among the
// ranks on its node, a guard against launching with a different MPI than the build's, and the
// choice of GPU.
#include <string>

namespace llama_tp {

// Initialises MPI for the lifetime of the object (finalises on destruction, unless MPI was
// already initialised by someone else, in which case it leaves both to them). MPI_COMM_WORLD's
// error handler becomes MPI_ERRORS_RETURN so that MPI_CHECK turns failures into exceptions
// that main() reports before MPI_Abort, instead of MPI printing and aborting on its own.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

 private:
  bool owns_mpi_ = false;
};

// True between MPI_Init and MPI_Finalize.
bool mpi_is_active();

struct RankInfo {
  int rank = 0;         // in MPI_COMM_WORLD
  int world = 1;        // MPI_COMM_WORLD size
  int local_rank = 0;   // among the ranks on this node
  int local_world = 1;  // ranks on this node
  std::string describe() const;  // "rank 1 of 4 (local 1 of 4)"
};

// Reads the ranks from MPI (which must be active; the local rank comes from an
// MPI_COMM_TYPE_SHARED split, or OMPI_COMM_WORLD_LOCAL_RANK / MPI_LOCALRANKID if that fails),
// then checks the launcher (see check_launched_by_same_mpi).
RankInfo query_rank_info();

// The number of ranks the launcher's environment says it started (OMPI_COMM_WORLD_SIZE from
// Open MPI's mpirun, PMI_SIZE from MPICH's Hydra), or 0 when neither is set.
int launcher_world_size();

// Throws when the launcher started several ranks but MPI sees a world of one: the binary was
// started by a different MPI than it was built with, and each process would otherwise run the
// whole model alone.
void check_launched_by_same_mpi(int mpi_world_size);

// The GPU a rank should use: `override_gpu` when >= 0 (checked against device_count), else
// local_rank % device_count (several ranks on one GPU only work with the mpi communicator;
// NCCL refuses them). Throws when there is no GPU. Pure, for tests; choose_gpu asks CUDA.
int choose_gpu_index(int local_rank, int override_gpu, int device_count);

#ifdef LLAMA_TP_CUDA
// choose_gpu_index with the number of visible CUDA devices. Does not call cudaSetDevice.
int choose_gpu(int local_rank, int override_gpu);
#endif

}  // namespace llama_tp

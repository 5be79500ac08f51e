#include "parallel/runtime_env.h"

#include <cstdlib>
#include <string>

#include "parallel/mpi_check.h"
#include "runtime/error.h"

#ifdef LLAMA_TP_CUDA
#include <cuda_runtime.h>

#include "runtime/cuda_check.h"
#endif

namespace llama_tp {

namespace {

// The integer value of an environment variable, or `fallback` when unset or not a number.
int env_int(const char* name, int fallback) {
  const char* text = std::getenv(name);
  if (!text || !*text) return fallback;
  char* end = nullptr;
  long value = std::strtol(text, &end, 10);
  return (*end == '\0') ? int(value) : fallback;
}

// First line of MPI's library version, e.g. "Open MPI v4.1.4, package: ...".
std::string mpi_library_name() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int length = 0;
  if (MPI_Get_library_version(text, &length) != MPI_SUCCESS) return "unknown MPI";
  std::string name(text, size_t(length));
  return name.substr(0, name.find_first_of(",\n"));
}

}  // namespace

MpiSession::MpiSession(int* argc, char*** argv) {
  int initialized = 0;
  MPI_CHECK(MPI_Initialized(&initialized));
  if (!initialized) {
    MPI_CHECK(MPI_Init(argc, argv));
    owns_mpi_ = true;
  }
  MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
}

MpiSession::~MpiSession() {
  if (owns_mpi_ && mpi_is_active()) MPI_Finalize();
}

bool mpi_is_active() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

std::string RankInfo::describe() const {
  return detail::concat("rank ", rank, " of ", world, " (local ", local_rank, " of ", local_world, ")");
}

RankInfo query_rank_info() {
  LLAMA_TP_CHECK(mpi_is_active(), "MPI is not initialised: create an MpiSession before asking for ranks");
  RankInfo info;
  MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &info.rank));
  MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &info.world));
  check_launched_by_same_mpi(info.world);

  // Ranks sharing memory are the ranks of this node: that is what decides the GPU.
  MPI_Comm node = MPI_COMM_NULL;
  if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, info.rank, MPI_INFO_NULL, &node) ==
      MPI_SUCCESS) {
    MPI_CHECK(MPI_Comm_rank(node, &info.local_rank));
    MPI_CHECK(MPI_Comm_size(node, &info.local_world));
    MPI_CHECK(MPI_Comm_free(&node));
  } else {
    info.local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", env_int("MPI_LOCALRANKID", info.rank));
    info.local_world = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", env_int("MPI_LOCALNRANKS", info.world));
  }
  return info;
}

int launcher_world_size() {
  return env_int("OMPI_COMM_WORLD_SIZE", env_int("PMI_SIZE", 0));
}

void check_launched_by_same_mpi(int mpi_world_size) {
  int launched = launcher_world_size();
  if (launched > 1 && mpi_world_size == 1) {
    std::string built_with = mpi_is_active() ? mpi_library_name() : std::string("its own MPI");
    LLAMA_TP_FAIL("the launcher started ", launched, " ranks (OMPI_COMM_WORLD_SIZE / PMI_SIZE) but MPI sees only ",
                  "this one, so this binary was launched by a different MPI than the one it was built with (",
                  built_with, "); start it with that MPI's mpirun");
  }
}

int choose_gpu_index(int local_rank, int override_gpu, int device_count) {
  LLAMA_TP_CHECK(device_count > 0, "no CUDA GPU is visible to this rank (check CUDA_VISIBLE_DEVICES and the driver)");
  if (override_gpu >= 0) {
    LLAMA_TP_CHECK(override_gpu < device_count, "GPU ", override_gpu, " was requested but only ", device_count,
                   " GPU(s) are visible (0..", device_count - 1, ")");
    return override_gpu;
  }
  LLAMA_TP_CHECK(local_rank >= 0, "local rank ", local_rank, " is negative");
  return local_rank % device_count;
}

#ifdef LLAMA_TP_CUDA
int choose_gpu(int local_rank, int override_gpu) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error; choose_gpu_index reports it
    count = 0;
  }
  return choose_gpu_index(local_rank, override_gpu, count);
}
#endif

}  // namespace llama_tp

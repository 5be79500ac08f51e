#include "parallel/runtime_env.h"

#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "runtime/error.h"

namespace llama_tp {
namespace {

// Sets (or unsets, with nullopt) an environment variable for the lifetime of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) setenv(name, value->c_str(), 1);
    else unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(RankInfo, MatchesMpiAndThisNode) {
  RankInfo info = query_rank_info();
  int rank = -1, world = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  EXPECT_EQ(info.rank, rank);
  EXPECT_EQ(info.world, world);
  EXPECT_GE(info.local_rank, 0);
  EXPECT_LT(info.local_rank, info.local_world);
  EXPECT_LE(info.local_world, info.world);
  if (const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK")) EXPECT_EQ(info.local_rank, std::atoi(local));
  EXPECT_NE(info.describe().find("rank " + std::to_string(rank) + " of " + std::to_string(world)), std::string::npos);
}

TEST(LaunchCheck, RefusesManyLaunchedRanksThatMpiSeesAsOne) {
  ScopedEnv ompi("OMPI_COMM_WORLD_SIZE", "4");
  ScopedEnv pmi("PMI_SIZE", std::nullopt);
  EXPECT_EQ(launcher_world_size(), 4);
  try {
    check_launched_by_same_mpi(1);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("started 4 ranks"), std::string::npos) << message;
    EXPECT_NE(message.find("launched by a different MPI"), std::string::npos) << message;
  }
  EXPECT_NO_THROW(check_launched_by_same_mpi(4));
}

TEST(LaunchCheck, ReadsMpichsPmiSize) {
  ScopedEnv ompi("OMPI_COMM_WORLD_SIZE", std::nullopt);
  ScopedEnv pmi("PMI_SIZE", "2");
  EXPECT_EQ(launcher_world_size(), 2);
  EXPECT_THROW(check_launched_by_same_mpi(1), Error);
}

TEST(LaunchCheck, AcceptsRunsWithoutLauncher) {
  ScopedEnv ompi("OMPI_COMM_WORLD_SIZE", std::nullopt);
  ScopedEnv pmi("PMI_SIZE", std::nullopt);
  EXPECT_EQ(launcher_world_size(), 0);
  EXPECT_NO_THROW(check_launched_by_same_mpi(1));
}

TEST(ChooseGpu, LocalRankWrapsAndOverrideWins) {
  EXPECT_EQ(choose_gpu_index(0, -1, 4), 0);
  EXPECT_EQ(choose_gpu_index(3, -1, 4), 3);
  EXPECT_EQ(choose_gpu_index(5, -1, 4), 1);  // two ranks per GPU: only the mpi communicator allows it
  EXPECT_EQ(choose_gpu_index(3, 2, 4), 2);
  EXPECT_THROW(choose_gpu_index(0, 4, 4), Error);
  EXPECT_THROW(choose_gpu_index(0, -1, 0), Error);
}

}  // namespace
}  // namespace llama_tp

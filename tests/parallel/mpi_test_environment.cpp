// Makes test_parallel an MPI program without its own main(): gtest_main runs the tests, and this
// global Environment (registered by a static initializer) brackets them with MPI_Init and
// MPI_Finalize. Run alone it is a world of one; under mpirun every rank runs every test, and
// only rank 0 prints the usual output while the others print nothing but their failures.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "parallel/runtime_env.h"

namespace {

// Prints a rank's failures, prefixed with its number, and nothing else.
class FailuresOnlyPrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailuresOnlyPrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (result.failed())
      std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_, result.file_name() ? result.file_name() : "?",
                   result.line_number(), result.message());
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result()->Failed())
      std::fprintf(stderr, "[rank %d] FAILED %s.%s\n", rank_, info.test_suite_name(), info.name());
  }

 private:
  int rank_;
};

void quiet_this_rank(int rank) {
  auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
  if (!listeners.default_result_printer()) return;  // already quiet
  delete listeners.Release(listeners.default_result_printer());
  listeners.Append(new FailuresOnlyPrinter(rank));
}

// The rank the launcher gave this process, known before MPI_Init (-1 when not launched).
int launcher_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMI_RANK"})
    if (const char* value = std::getenv(name)) return std::atoi(value);
  return -1;
}

class MpiTestEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    session_ = std::make_unique<llama_tp::MpiSession>(nullptr, nullptr);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank != 0) quiet_this_rank(rank);
  }
  void TearDown() override { session_.reset(); }

 private:
  std::unique_ptr<llama_tp::MpiSession> session_;
};

// Quieting before RUN_ALL_TESTS also hides the banner that gtest prints before SetUp.
const bool registered = [] {
  ::testing::AddGlobalTestEnvironment(new MpiTestEnvironment);
  if (launcher_rank() > 0) quiet_this_rank(launcher_rank());
  return true;
}();

}  // namespace

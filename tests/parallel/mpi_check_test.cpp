#include "parallel/mpi_check.h"

#include <gtest/gtest.h>

#include <string>

namespace llama_tp {
namespace {

TEST(MpiCheck, ThrowsWithTheCallAndMpisErrorString) {
  // MPI_COMM_SELF returns errors instead of aborting only with MPI_ERRORS_RETURN.
  MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN));
  char byte = 0;
  std::string message;
  try {
    MPI_CHECK(MPI_Bcast(&byte, 1, MPI_BYTE, 5, MPI_COMM_SELF));  // root 5 of a world of 1
  } catch (const Error& e) {
    message = e.what();
  }
  MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_ARE_FATAL);
  EXPECT_NE(message.find("MPI error in MPI_Bcast(&byte, 1, MPI_BYTE, 5, MPI_COMM_SELF)"), std::string::npos)
      << message;
  EXPECT_NE(message.find("root"), std::string::npos) << message;  // MPI's own words, e.g. "invalid root"
}

TEST(MpiCheck, ErrorStringOfSuccess) { EXPECT_FALSE(mpi_error_string(MPI_SUCCESS).empty()); }

}  // namespace
}  // namespace llama_tp

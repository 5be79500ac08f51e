#pragma once
// MPI_CHECK wraps every MPI call: a failure becomes a llama_tp::Error naming the call and MPI's
// own error string. MPI only returns error codes on communicators whose error handler is
// MPI_ERRORS_RETURN (the default handler aborts), so every communicator here sets it.
#include <mpi.h>

#include <string>

#include "runtime/error.h"

namespace llama_tp {

// MPI's description of an error code, e.g. "MPI_ERR_ROOT: invalid root".
inline std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return "unknown MPI error " + std::to_string(code);
  return std::string(text, size_t(length));
}

}  // namespace llama_tp

#define MPI_CHECK(call)                                                                  \
  do {                                                                                   \
    int mpi_rc_ = (call);                                                                \
    if (mpi_rc_ != MPI_SUCCESS)                                                          \
      LLAMA_TP_FAIL("MPI error in ", #call, ": ", ::llama_tp::mpi_error_string(mpi_rc_)); \
  } while (0)

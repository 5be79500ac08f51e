#pragma once
// NCCL_CHECK wraps every NCCL call: a failure becomes a llama_tp::Error naming the call, NCCL's
// error string and NCCL's last detailed message.
#include <nccl.h>

#include "runtime/error.h"

#define NCCL_CHECK(call)                                                                          \
  do {                                                                                            \
    ncclResult_t nccl_rc_ = (call);                                                               \
    if (nccl_rc_ != ncclSuccess)                                                                  \
      LLAMA_TP_FAIL("NCCL error in ", #call, ": ", ncclGetErrorString(nccl_rc_), " (",            \
                    ncclGetLastError(nullptr), ")");                                              \
  } while (0)

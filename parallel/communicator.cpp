#include "parallel/communicator.h"

#include "runtime/error.h"

namespace llama_tp {

void check_all_reduce_dtype(DType dtype) {
  LLAMA_TP_CHECK(dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16,
                 "all_reduce_sum supports f32, f16 and bf16 tensors, not ", dtype_name(dtype));
}

}  // namespace llama_tp

// Defaults of the Backend interface for weight formats a backend does not implement itself.
#include "runtime/backend.h"

#include "runtime/error.h"

namespace llama_tp {

LinearWeight Backend::upload_linear(const Tensor& host, const QuantSpec& quant) {
  LLAMA_TP_CHECK(!quant.int8, "the ", name(), " backend cannot store int8 weights (use --quant none)");
  return LinearWeight(upload_weight(host));
}

void Backend::linear(Tensor& out, const Tensor& x, const LinearWeight& w) {
  LLAMA_TP_CHECK(!w.quantized(), "the ", name(), " backend has no int8 linear layer");
  linear(out, x, w.values);
}

}  // namespace llama_tp

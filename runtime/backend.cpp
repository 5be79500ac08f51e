// Defaults of the Backend interface: weight formats a backend does not implement itself, and
// fused ops composed of the unfused ones (the reference a fused kernel is tested against).
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

namespace {
// The normalized rows of a NormedInput in its h, by the unfused ops; returns h.
Tensor& normalize(Backend& b, const Backend::NormedInput& in) {
  if (in.delta.defined())
    b.add_rmsnorm(in.h, in.x_out, in.x, in.delta, in.weight, in.eps);
  else
    b.rmsnorm(in.h, in.x, in.weight, in.eps);
  return in.h;
}
}  // namespace

void Backend::norm_linear(Tensor& out, const NormedInput& in, const LinearWeight& w) {
  linear(out, normalize(*this, in), w);
}

void Backend::norm_linear_swiglu(Tensor& out, Tensor& gate_up, const NormedInput& in, const LinearWeight& w13) {
  const Tensor& h = normalize(*this, in);
  if (w13.quantized()) {
    linear(gate_up, h, w13);
    swiglu(out, gate_up);
  } else {
    linear_swiglu(out, gate_up, h, w13.values);
  }
}

void Backend::norm_linear_rope_kv(Tensor& qkv, Tensor& k_cache, Tensor& v_cache, const AttentionShape& shape,
                                  int pos0, const Tensor& inv_freq, const NormedInput& in, const LinearWeight& wqkv) {
  linear(qkv, normalize(*this, in), wqkv);
  rope_kv_append(qkv, k_cache, v_cache, shape, pos0, inv_freq);
}

}  // namespace llama_tp

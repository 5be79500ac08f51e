#include "runtime/linear_weight.h"

#include <algorithm>

#include "kernels/quant_scale.h"

namespace llama_tp {

int64_t QuantSpec::group_for(int64_t in_features) const {
  if (group <= 0 || group >= in_features) return std::max<int64_t>(in_features, 1);
  return group;
}

std::string QuantSpec::describe() const {
  if (!int8) return "none";
  return group > 0 ? "int8 (groups of " + std::to_string(group) + ")" : "int8 (per row)";
}

std::string LinearWeight::format() const {
  if (!quantized()) return dtype_name(values.dtype());
  return "i8/g" + std::to_string(group);
}

size_t linear_weight_bytes(int64_t out, int64_t in, DType float_dtype, const QuantSpec& quant) {
  if (!quant.int8) return size_t(out) * size_t(in) * dtype_size(float_dtype);
  return size_t(out) * size_t(in) + size_t(out) * size_t(quant_groups(in, quant.group_for(in))) * sizeof(kernels::QuantScale);
}

}  // namespace llama_tp

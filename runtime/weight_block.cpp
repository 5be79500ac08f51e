#include "runtime/weight_block.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <sstream>

#include "runtime/error.h"

namespace llama_tp {

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

int64_t checked_numel(const std::vector<int64_t>& shape, const std::string& what) {
  int64_t n = 1;
  for (int64_t d : shape) {
    LLAMA_TP_CHECK(d >= 0, what, " has a negative dimension in shape ", shape_to_string(shape), ".");
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
      LLAMA_TP_FAIL(what, " has shape ", shape_to_string(shape), ", too many elements to address.");
    n *= d;
  }
  return n;
}

int64_t block_rows(const std::vector<int64_t>& shape) { return shape.size() <= 1 ? 1 : shape[0]; }

int64_t block_cols(const std::vector<int64_t>& shape) {
  if (shape.empty()) return 1;
  if (shape.size() == 1) return shape[0];
  int64_t n = 1;
  for (size_t i = 1; i < shape.size(); ++i) n *= shape[i];
  return n;
}

void convert_elements(const void* src, DType from, void* dst, DType to, size_t n) {
  if (from == to) {
    std::memcpy(dst, src, n * dtype_size(from));
    return;
  }
  bool to_16 = to == DType::F16 || to == DType::BF16;
  LLAMA_TP_CHECK(to == DType::F32 || to_16, "cannot convert ", dtype_name(from), " weights to ",
                 dtype_name(to), "; ask for f32, f16 or bf16.");
  // Work in chunks through aligned scratch buffers: the source may sit at any byte offset
  // of a mapped file, and 16-bit to 16-bit conversions go through float32.
  constexpr size_t kChunk = 4096;
  alignas(8) uint8_t in[kChunk * 4];
  float mid[kChunk];
  const size_t in_size = dtype_size(from), out_size = dtype_size(to);
  auto s = static_cast<const uint8_t*>(src);
  auto d = static_cast<uint8_t*>(dst);
  for (size_t done = 0; done < n; done += kChunk) {
    size_t m = std::min(kChunk, n - done);
    std::memcpy(in, s + done * in_size, m * in_size);
    if (to == DType::F32) {
      convert_to_f32(in, from, mid, m);
      std::memcpy(d + done * 4, mid, m * 4);
    } else {
      if (from == DType::F32) {
        std::memcpy(mid, in, m * 4);
      } else {
        convert_to_f32(in, from, mid, m);
      }
      alignas(8) uint16_t out[kChunk];
      convert_from_f32(mid, to, out, m);
      std::memcpy(d + done * out_size, out, m * out_size);
    }
  }
}

Tensor read_stored_block(const StoredTensor& t, const std::string& name, const std::string& where,
                         int64_t row0, int64_t n_rows, int64_t col0, int64_t n_cols, DType out) {
  const int64_t rows = block_rows(t.shape), cols = block_cols(t.shape);
  bool rows_ok = row0 >= 0 && n_rows >= 0 && row0 <= rows && n_rows <= rows - row0;
  bool cols_ok = col0 >= 0 && n_cols >= 0 && col0 <= cols && n_cols <= cols - col0;
  LLAMA_TP_CHECK(rows_ok && cols_ok, "cannot read rows [", row0, ", ", row0 + n_rows, ") x columns [",
                 col0, ", ", col0 + n_cols, ") of tensor ", name, " in ", where, ": its shape is ",
                 shape_to_string(t.shape), " (", rows, " x ", cols, " as a matrix).");
  std::vector<int64_t> out_shape =
      t.shape.size() <= 1 ? std::vector<int64_t>{n_cols} : std::vector<int64_t>{n_rows, n_cols};
  Tensor result = Tensor::empty(out_shape, out);
  const size_t in_size = dtype_size(t.dtype), out_size = dtype_size(out);
  auto dst = result.data<uint8_t>();
  for (int64_t r = 0; r < n_rows; ++r) {
    int64_t stored_row = t.row_map ? t.row_map(row0 + r) : row0 + r;
    const uint8_t* src = t.data + (size_t(stored_row) * size_t(cols) + size_t(col0)) * in_size;
    convert_elements(src, t.dtype, dst + size_t(r) * size_t(n_cols) * out_size, out, size_t(n_cols));
  }
  return result;
}

}  // namespace llama_tp

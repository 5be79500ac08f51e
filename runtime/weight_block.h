#pragma once
// Shared by the WeightSource implementations: copying a block of rows x columns out of a
// tensor that lies in (mapped) memory, converting its dtype on the way.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace llama_tp {

// "[4, 64]"
std::string shape_to_string(const std::vector<int64_t>& shape);
// Element count; throws naming `what` if the product overflows int64.
int64_t checked_numel(const std::vector<int64_t>& shape, const std::string& what);

// A stored tensor seen as the matrix read_block works on: a 0-D or 1-D tensor is one row; an
// N-D tensor is [shape[0], product of the rest].
int64_t block_rows(const std::vector<int64_t>& shape);
int64_t block_cols(const std::vector<int64_t>& shape);

// Converts n elements from `from` to `to`: any dtype to itself, anything to F32, and F32, F16,
// BF16, I8, I32 to F16 or BF16. `src` need not be aligned.
void convert_elements(const void* src, DType from, void* dst, DType to, size_t n);

struct StoredTensor {
  const uint8_t* data = nullptr;  // first byte of the tensor, row-major
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  // Optional: which stored row holds logical row r (the llama2.c loader permutes q/k rows).
  std::function<int64_t(int64_t)> row_map;
};

// WeightSource::read_block over a StoredTensor: checks the block lies inside the tensor
// (errors name `name` and `where`) and copies only that block, converted to `out`.
Tensor read_stored_block(const StoredTensor& t, const std::string& name, const std::string& where,
                         int64_t row0, int64_t n_rows, int64_t col0, int64_t n_cols, DType out);

}  // namespace llama_tp

#pragma once
// Element types and host-side conversions between float32 and the 16-bit formats.
#include <cstdint>
#include <cstring>
#include <string>

namespace llama_tp {

enum class DType : uint8_t { F32, F16, BF16, I8, I32 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);      // "f32", "f16", "bf16", "i8", "i32"
DType parse_dtype(const std::string& s);  // accepts f32/float32, f16/float16/half, bf16/bfloat16

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest even, NaN kept NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Converts n elements of type `from` at src to float32.
void convert_to_f32(const void* src, DType from, float* dst, size_t n);
// Converts n float32 values to type `to` (F32, F16, BF16).
void convert_from_f32(const float* src, DType to, void* dst, size_t n);

}  // namespace llama_tp

// Shared basics of the native side: element types (ONNX's numbering), the error type that crosses
// into JS as a KilnError, the runtime tensor view, and half/bfloat16 conversion.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace kiln {

enum class DType : uint32_t {
  Undefined = 0,
  F32 = 1,
  U8 = 2,
  I8 = 3,
  U16 = 4,
  I16 = 5,
  I32 = 6,
  I64 = 7,
  String = 8,
  Bool = 9,
  F16 = 10,
  F64 = 11,
  U32 = 12,
  U64 = 13,
  BF16 = 16,
  // Small types (native/cpu/small_types.h): one byte per element, never packed. Float8/float4 hold
  // their bit code (F4E2M1 in the low 4 bits), U4/U2 their value, I4/I2 their sign-extended value.
  F8E4M3FN = 17,
  F8E4M3FNUZ = 18,
  F8E5M2 = 19,
  F8E5M2FNUZ = 20,
  U4 = 21,
  I4 = 22,
  F4E2M1 = 23,
  F8E8M0 = 24,
  U2 = 25,
  I2 = 26,
};

size_t dtype_size(DType t);  // 0 for types the runtime does not hold
const char* dtype_name(DType t);

using Shape = std::vector<int64_t>;
int64_t numel(const Shape& s);
std::string shape_str(const Shape& s);

// An error a user can cause (or a failed library call). `code` becomes the KilnError code in JS.
class Error : public std::runtime_error {
 public:
  Error(std::string code, const std::string& msg) : std::runtime_error(msg), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

[[noreturn]] inline void fail(const char* code, const std::string& msg) { throw Error(code, msg); }

// A tensor at run time: storage owned elsewhere (arena, constant section, caller buffer).
struct Tensor {
  void* data = nullptr;
  DType dtype = DType::Undefined;
  Shape shape;
  int64_t numel() const { return kiln::numel(shape); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  template <typename T>
  T* as() const { return static_cast<T*>(data); }
};

float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
inline float bf16_to_float(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t float_to_bf16(float f);

}  // namespace kiln

// The small element types: float8 (e4m3fn, e4m3fnuz, e5m2, e5m2fnuz, e8m0), float4e2m1, and the 4/2-bit
// integers (uint4, int4, uint2, int2). kiln holds each of them with one byte per element (only ONNX's
// wire format packs the sub-byte ones, and src/onnx/import.ts unpacks it): the float types as their bit
// code, the integers as their value (int4/int2 sign-extended). This file has the value conversions and
// the storage wrappers that let kernels dispatch on them like on the other types (Cast, Q/DQ).
//
// float → float8/float4 rounds to nearest even. Out of range finite values (and ±Inf) become the max
// finite value of the sign with `saturate`, else Inf (e5m2) or NaN (e4m3fn: its NaN of the sign; the
// fnuz types: 0x80, their one NaN). The fnuz types have no -0: a negative value that rounds to zero is
// +0. float4e2m1 has neither Inf nor NaN: it always saturates, and NaN becomes 0x8 (-0), as ONNX's
// reference does. float8e8m0 is an unsigned power-of-two scale 2^(code-127) (0xff NaN): the sign is
// dropped and the exponent rounds per E8M0Round (see to_e8m0).
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

#include "kernel_util.h"

namespace kiln {

// The value of a float8/float4 code (any bits above the type's width are ignored).
float small_float_to_float(DType t, uint8_t code);
// Round to nearest even, with the saturate rules above. Not for F8E8M0 (use to_e8m0).
uint8_t float_to_small_float(DType t, double v, bool saturate);

// float8e8m0 rounding of a value's exponent: Up (ONNX's default) goes to the next power of two when the
// value is not one; Down truncates; Nearest goes up when the mantissa is above 1.5, or exactly 1.5 for a
// normal float. Computed on the value as float32, as ONNX specifies.
enum class E8M0Round : int { Up = 0, Down = 1, Nearest = 2 };
uint8_t to_e8m0(double v, bool saturate, E8M0Round mode);
inline float e8m0_to_float(uint8_t code) {
  if (code == 0xff) return std::numeric_limits<float>::quiet_NaN();
  return std::ldexp(1.0f, static_cast<int>(code) - 127);
}

// Value range of the small integer types.
int small_int_min(DType t);
int small_int_max(DType t);
// v reduced modulo 2^bits into the type's range (Cast's integer wrap-around).
int small_int_wrap(DType t, int64_t v);

// Storage wrappers: one byte, with the type in the C++ type so dispatch can tell them apart.
template <DType D> struct minifloat { uint8_t bits; };  // float8 variants, float4e2m1, float8e8m0
template <DType D> struct subint {                      // int4/int2 as int8, uint4/uint2 as uint8
  std::conditional_t<D == DType::I4 || D == DType::I2, int8_t, uint8_t> v;
};

template <typename T> struct is_minifloat : std::false_type {};
template <DType D> struct is_minifloat<minifloat<D>> : std::true_type { static constexpr DType dtype = D; };
template <typename T> struct is_subint : std::false_type {};
template <DType D> struct is_subint<subint<D>> : std::true_type { static constexpr DType dtype = D; };

template <DType D> inline float load(const minifloat<D>& x) {
  if constexpr (D == DType::F8E8M0) return e8m0_to_float(x.bits);
  else return small_float_to_float(D, x.bits);
}
template <DType D> inline int32_t load(const subint<D>& x) { return x.v; }

// Calls fn.template operator()<T>() with T the storage type of a small type; other types go to `rest`.
template <typename F, typename Rest> void dispatch_small(DType t, F&& fn, Rest&& rest) {
  switch (t) {
    case DType::F8E4M3FN: return fn.template operator()<minifloat<DType::F8E4M3FN>>();
    case DType::F8E4M3FNUZ: return fn.template operator()<minifloat<DType::F8E4M3FNUZ>>();
    case DType::F8E5M2: return fn.template operator()<minifloat<DType::F8E5M2>>();
    case DType::F8E5M2FNUZ: return fn.template operator()<minifloat<DType::F8E5M2FNUZ>>();
    case DType::F4E2M1: return fn.template operator()<minifloat<DType::F4E2M1>>();
    case DType::F8E8M0: return fn.template operator()<minifloat<DType::F8E8M0>>();
    case DType::U4: return fn.template operator()<subint<DType::U4>>();
    case DType::I4: return fn.template operator()<subint<DType::I4>>();
    case DType::U2: return fn.template operator()<subint<DType::U2>>();
    case DType::I2: return fn.template operator()<subint<DType::I2>>();
    default: return rest();
  }
}
// Every type kiln holds (dispatch_all plus the small types).
template <typename F> void dispatch_all_small(DType t, const LayerInfo& L, F&& fn) {
  dispatch_small(t, fn, [&] { dispatch_all(t, L, fn); });
}
// Quantized types: the integers (dispatch_int) and the small types but float8e8m0 (a scale type).
template <typename F> void dispatch_quantized(DType t, const LayerInfo& L, F&& fn) {
  if (t == DType::F8E8M0) unsupported_dtype(L, t);
  dispatch_small(t, fn, [&] { dispatch_int(t, L, fn); });
}

}  // namespace kiln

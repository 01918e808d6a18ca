// The element-wise operations of the "cuda" backend, shared by the Unary/Binary kernels
// (elementwise.cu, the op a template constant) and the fused element-wise kernel (fused_elementwise.cu,
// the op a run-time value of its program): op lists and name parsing (the CPU's names, see
// native/cpu/unary_math.h and binary_math.h, whose semantics these match) and the device formulas.
#pragma once

#include <cmath>
#include <string>
#include <type_traits>
#include <utility>

#include "kern.cuh"
#include "unary_ops.h"

namespace kiln {
namespace cuk {

enum class UOp {
#define X(n) n,
  KILN_UNARY_OPS(X)
#undef X
  Count
};

inline bool parse_uop(const std::string& s, UOp& op) {
#define X(n) \
  if (s == #n) return op = UOp::n, true;
  KILN_UNARY_OPS(X)
#undef X
  return false;
}

inline bool uop_int_exact(UOp op) {
  return op == UOp::Abs || op == UOp::Neg || op == UOp::Sign || op == UOp::Relu || op == UOp::Clip || op == UOp::BitwiseNot;
}
inline bool uop_bool_result(UOp op) { return op == UOp::IsNaN || op == UOp::IsInf; }

__device__ __forceinline__ float sigmoidf_(float x) {
  if (x >= 0) return 1.f / (1.f + expf(-x));
  float e = expf(x);
  return e / (1.f + e);
}
__device__ __forceinline__ float softplusf_(float x) { return x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x)); }

// The float formula of op O (O a run-time value for the fused kernel; inlined with a constant, the
// switch folds away).
__device__ __forceinline__ float ufloat_rt(UOp O, float x, float a, float b, float g) {
  switch (O) {
    case UOp::Abs: return fabsf(x);
    case UOp::Neg: return -x;
    case UOp::Sign: return isnan(x) ? x : static_cast<float>((x > 0) - (x < 0));
    case UOp::Exp: return expf(x);
    case UOp::Log: return logf(x);
    case UOp::Sqrt: return sqrtf(x);
    case UOp::Reciprocal: return 1.f / x;
    case UOp::Floor: return floorf(x);
    case UOp::Ceil: return ceilf(x);
    case UOp::Round: return rintf(x);
    case UOp::Sin: return sinf(x);
    case UOp::Cos: return cosf(x);
    case UOp::Tan: return tanf(x);
    case UOp::Asin: return asinf(x);
    case UOp::Acos: return acosf(x);
    case UOp::Atan: return atanf(x);
    case UOp::Sinh: return sinhf(x);
    case UOp::Cosh: return coshf(x);
    case UOp::Asinh: return asinhf(x);
    case UOp::Acosh: return acoshf(x);
    case UOp::Atanh: return atanhf(x);
    case UOp::Erf: return erff(x);
    case UOp::Sigmoid: return sigmoidf_(x);
    case UOp::Tanh: return tanhf(x);
    case UOp::Relu: return x < 0 ? 0.f : x;
    case UOp::LeakyRelu: return x < 0 ? a * x : x;
    case UOp::Elu: return x < 0 ? a * (expf(x) - 1.f) : x;
    case UOp::Selu: return x <= 0 ? g * (a * expf(x) - a) : g * x;
    case UOp::Celu: return fmaxf(0.f, x) + fminf(0.f, a * (expf(x / a) - 1.f));
    case UOp::HardSigmoid: return fmaxf(0.f, fminf(1.f, a * x + b));
    case UOp::HardSwish: return x * fmaxf(0.f, fminf(1.f, x / 6.f + 0.5f));
    case UOp::Softplus: return softplusf_(x);
    case UOp::Softsign: return x / (1.f + fabsf(x));
    case UOp::Gelu: return 0.5f * x * (1.f + erff(x * 0.70710678118654752440f));
    case UOp::GeluTanh: return 0.5f * x * (1.f + tanhf(0.79788456080286535588f * (x + 0.044715f * x * x * x)));
    case UOp::Mish: return x * tanhf(softplusf_(x));
    case UOp::ThresholdedRelu: return x > a ? x : 0.f;
    case UOp::Shrink: return x < -a ? x + b : x > a ? x - b : 0.f;
    case UOp::Swish: return x * sigmoidf_(a * x);
    case UOp::Clip: {
      float v = x < a ? a : x;  // min before max, as the CPU: with min > max every value becomes max
      return v > b ? b : v;
    }
    default: return x;
  }
}
template <UOp O>
__device__ __forceinline__ float ufloat(float x, float a, float b, float g) { return ufloat_rt(O, x, a, b, g); }

enum class BOp { Add, Sub, Mul, Div, Pow, Mod, Max, Min, Mean, PRelu, Shl, Shr, BAnd, BOr, BXor, And, Or, Xor, Eq, Gt, Lt, Ge, Le, Count };

// Parses a native Binary op name ('BitShift' needs `right`); false for an unknown one.
inline bool parse_bop_name(const std::string& s, bool right, BOp& op) {
  static const std::pair<const char*, BOp> names[] = {
      {"Add", BOp::Add}, {"Sub", BOp::Sub}, {"Mul", BOp::Mul}, {"Div", BOp::Div}, {"Pow", BOp::Pow}, {"Mod", BOp::Mod},
      {"Max", BOp::Max}, {"Min", BOp::Min}, {"Mean", BOp::Mean}, {"PRelu", BOp::PRelu}, {"BitwiseAnd", BOp::BAnd},
      {"BitwiseOr", BOp::BOr}, {"BitwiseXor", BOp::BXor}, {"And", BOp::And}, {"Or", BOp::Or}, {"Xor", BOp::Xor},
      {"Equal", BOp::Eq}, {"Greater", BOp::Gt}, {"Less", BOp::Lt}, {"GreaterOrEqual", BOp::Ge}, {"LessOrEqual", BOp::Le}};
  if (s == "BitShift") return op = right ? BOp::Shr : BOp::Shl, true;
  for (auto& [n, o] : names)
    if (s == n) return op = o, true;
  return false;
}
__host__ __device__ constexpr bool is_cmp(BOp op) { return op == BOp::Eq || op == BOp::Gt || op == BOp::Lt || op == BOp::Ge || op == BOp::Le; }
__host__ __device__ constexpr bool is_logic(BOp op) { return op == BOp::And || op == BOp::Or || op == BOp::Xor; }
__host__ __device__ constexpr bool is_bits(BOp op) { return op == BOp::Shl || op == BOp::Shr || op == BOp::BAnd || op == BOp::BOr || op == BOp::BXor; }

// The float formula of op O (a run-time value for the fused kernel; a constant folds the switch).
__device__ __forceinline__ float bfloat_rt(BOp O, float a, float b, bool fmod_mode) {
  switch (O) {
    case BOp::Add: case BOp::Mean: return a + b;
    case BOp::Sub: return a - b;
    case BOp::Mul: return a * b;
    case BOp::Div: return a / b;
    case BOp::Pow: return powf(a, b);
    case BOp::Mod: {
      float r = fmodf(a, b);
      if (!fmod_mode && r != 0 && ((r < 0) != (b < 0))) r += b;
      return r;
    }
    case BOp::Max: return isnan(a) || isnan(b) ? NAN : (a < b ? b : a);
    case BOp::Min: return isnan(a) || isnan(b) ? NAN : (b < a ? b : a);
    case BOp::PRelu: return a < 0 ? a * b : a;
    default: return 0;
  }
}

// One step of the fold in the compute type C (float for float16/float32, the integer itself, bool).
template <BOp O, typename C>
__device__ __forceinline__ C bapply(C a, C b, bool fmod_mode) {
  if constexpr (std::is_same<C, float>::value) {
    return bfloat_rt(O, a, b, fmod_mode);
  } else if constexpr (std::is_same<C, bool>::value) {
    switch (O) {
      case BOp::And: return a && b;
      case BOp::Or: return a || b;
      case BOp::Xor: return a != b;
      default: return false;
    }
  } else {
    switch (O) {
      case BOp::Add: case BOp::Mean: return static_cast<C>(a + b);
      case BOp::Sub: return static_cast<C>(a - b);
      case BOp::Mul: return static_cast<C>(a * b);
      case BOp::Div: return b == 0 ? C(0) : static_cast<C>(a / b);
      case BOp::Pow: return static_cast<C>(pow(static_cast<double>(a), static_cast<double>(b)));
      case BOp::Mod: {
        if (b == 0) return 0;
        C r = static_cast<C>(a % b);
        if (!fmod_mode && r != 0 && ((r < 0) != (b < 0))) r = static_cast<C>(r + b);
        return r;
      }
      case BOp::Max: return a < b ? b : a;
      case BOp::Min: return b < a ? b : a;
      case BOp::PRelu: return a < 0 ? static_cast<C>(a * b) : a;
      case BOp::Shl: return b >= static_cast<C>(sizeof(C) * 8) ? C(0) : static_cast<C>(a << b);
      case BOp::Shr: return b >= static_cast<C>(sizeof(C) * 8) ? C(0) : static_cast<C>(a >> b);
      case BOp::BAnd: return static_cast<C>(a & b);
      case BOp::BOr: return static_cast<C>(a | b);
      case BOp::BXor: return static_cast<C>(a ^ b);
      default: return 0;
    }
  }
}
template <BOp O, typename C>
__device__ __forceinline__ bool bcompare(C a, C b) {
  switch (O) {
    case BOp::Eq: return a == b;
    case BOp::Gt: return a > b;
    case BOp::Lt: return a < b;
    case BOp::Ge: return a >= b;
    default: return a <= b;
  }
}

}  // namespace cuk
}  // namespace kiln

// The element-wise unary functions, shared by the Unary kernel (unary.cc) and the fused element-wise
// kernel (elementwise.cc): the op list, parsing of the native `op` attribute, and the floating-point
// formulas (C = float or double; inlined with a constant op, the switch folds away).
#pragma once

#include <algorithm>
#include <cmath>
#include <string>

#include "../common.h"
#include "../unary_ops.h"

namespace kiln {
namespace unary {

enum class Op {
#define X(n) n,
  KILN_UNARY_OPS(X)
#undef X
  Count
};

// Parses a native op name; throws INTERNAL naming the layer for an unknown one.
inline Op parse(const std::string& s, const std::string& layer) {
#define X(n) \
  if (s == #n) return Op::n;
  KILN_UNARY_OPS(X)
#undef X
  fail("INTERNAL", "layer '" + layer + "': unknown Unary op '" + s + "'");
}

template <typename C>
inline C sigmoid(C x) {
  if (x >= 0) return C(1) / (C(1) + std::exp(-x));
  C e = std::exp(x);
  return e / (C(1) + e);
}
template <typename C>
inline C softplus(C x) {
  // log(1 + e^x) without overflow
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

// The floating-point operations, C = float or double. Inlined with a constant `op`, the switch folds away.
template <typename C>
inline C eval_float(Op op, C x, C a, C b, C g) {
  switch (op) {
    case Op::Abs: return std::fabs(x);
    case Op::Neg: return -x;
    case Op::Sign: return std::isnan(x) ? x : C((x > 0) - (x < 0));
    case Op::Exp: return std::exp(x);
    case Op::Log: return std::log(x);
    case Op::Sqrt: return std::sqrt(x);
    case Op::Reciprocal: return C(1) / x;
    case Op::Floor: return std::floor(x);
    case Op::Ceil: return std::ceil(x);
    case Op::Round: return std::nearbyint(x);  // default rounding mode: half to even
    case Op::Sin: return std::sin(x);
    case Op::Cos: return std::cos(x);
    case Op::Tan: return std::tan(x);
    case Op::Asin: return std::asin(x);
    case Op::Acos: return std::acos(x);
    case Op::Atan: return std::atan(x);
    case Op::Sinh: return std::sinh(x);
    case Op::Cosh: return std::cosh(x);
    case Op::Asinh: return std::asinh(x);
    case Op::Acosh: return std::acosh(x);
    case Op::Atanh: return std::atanh(x);
    case Op::Erf: return std::erf(x);
    case Op::Sigmoid: return sigmoid(x);
    case Op::Tanh: return std::tanh(x);
    case Op::Relu: return x < 0 ? C(0) : x;
    case Op::LeakyRelu: return x < 0 ? a * x : x;
    case Op::Elu: return x < 0 ? a * (std::exp(x) - C(1)) : x;
    case Op::Selu: return x <= 0 ? g * (a * std::exp(x) - a) : g * x;
    case Op::Celu: return std::max(C(0), x) + std::min(C(0), a * (std::exp(x / a) - C(1)));
    case Op::HardSigmoid: return std::max(C(0), std::min(C(1), a * x + b));
    case Op::HardSwish: return x * std::max(C(0), std::min(C(1), x / C(6) + C(0.5)));
    case Op::Softplus: return softplus(x);
    case Op::Softsign: return x / (C(1) + std::fabs(x));
    case Op::Gelu: return C(0.5) * x * (C(1) + std::erf(x * C(0.70710678118654752440)));
    case Op::GeluTanh: {
      C k = C(0.79788456080286535588);  // sqrt(2/pi)
      return C(0.5) * x * (C(1) + std::tanh(k * (x + C(0.044715) * x * x * x)));
    }
    case Op::Mish: return x * std::tanh(softplus(x));
    case Op::ThresholdedRelu: return x > a ? x : C(0);
    case Op::Shrink: return x < -a ? x + b : x > a ? x - b : C(0);
    case Op::Swish: return x * sigmoid(a * x);
    case Op::Clip: {
      C v = x < a ? a : x;  // min before max: with min > max every value becomes max
      return v > b ? b : v;
    }
    default: return x;
  }
}

}  // namespace unary
}  // namespace kiln

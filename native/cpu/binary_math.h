// The element-wise binary operations, shared by the Binary kernel (binary.cc) and the fused element-wise
// kernel (elementwise.cc): the op list, parsing of the native `op` attribute, and the arithmetic per
// compute type (floating point, bool logic, exact integers without UB: x/0 and x%0 give 0).
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <utility>

#include "../common.h"

namespace kiln {
namespace binary {

enum class Op { Add, Sub, Mul, Div, Pow, Mod, Max, Min, Mean, PRelu, Shl, Shr, BAnd, BOr, BXor, And, Or, Xor, Eq, Gt, Lt, Ge, Le };

// Parses a native op name ('BitShift' needs `right`); throws INTERNAL naming the layer for an unknown one.
inline Op parse(const std::string& s, bool right, const std::string& layer) {
  static const std::pair<const char*, Op> names[] = {
      {"Add", Op::Add}, {"Sub", Op::Sub}, {"Mul", Op::Mul}, {"Div", Op::Div}, {"Pow", Op::Pow}, {"Mod", Op::Mod},
      {"Max", Op::Max}, {"Min", Op::Min}, {"Mean", Op::Mean}, {"PRelu", Op::PRelu}, {"BitwiseAnd", Op::BAnd},
      {"BitwiseOr", Op::BOr}, {"BitwiseXor", Op::BXor}, {"And", Op::And}, {"Or", Op::Or}, {"Xor", Op::Xor},
      {"Equal", Op::Eq}, {"Greater", Op::Gt}, {"Less", Op::Lt}, {"GreaterOrEqual", Op::Ge}, {"LessOrEqual", Op::Le}};
  if (s == "BitShift") return right ? Op::Shr : Op::Shl;
  for (auto& [n, op] : names)
    if (s == n) return op;
  fail("INTERNAL", "layer '" + layer + "': unknown Binary op '" + s + "'");
}

template <typename C>
inline C apply(Op op, C a, C b, bool fmod_mode) {
  if constexpr (std::is_floating_point_v<C>) {
    switch (op) {
      case Op::Add: case Op::Mean: return a + b;
      case Op::Sub: return a - b;
      case Op::Mul: return a * b;
      case Op::Div: return a / b;
      case Op::Pow: return static_cast<C>(std::pow(a, b));
      case Op::Mod: {
        C r = std::fmod(a, b);
        if (!fmod_mode && r != 0 && ((r < 0) != (b < 0))) r += b;
        return r;
      }
      case Op::Max: return std::isnan(a) || std::isnan(b) ? NAN : std::max(a, b);
      case Op::Min: return std::isnan(a) || std::isnan(b) ? NAN : std::min(a, b);
      case Op::PRelu: return a < 0 ? a * b : a;
      default: return 0;
    }
  } else if constexpr (std::is_same_v<C, bool>) {
    switch (op) {
      case Op::And: return a && b;
      case Op::Or: return a || b;
      case Op::Xor: return a != b;
      default: return false;
    }
  } else {
    switch (op) {
      case Op::Add: case Op::Mean: return static_cast<C>(a + b);
      case Op::Sub: return static_cast<C>(a - b);
      case Op::Mul: return static_cast<C>(a * b);
      case Op::Div: return b == 0 ? C(0) : static_cast<C>(a / b);  // no SIGFPE: x/0 is 0 for integers
      case Op::Pow: {
        double r = std::pow(static_cast<double>(a), static_cast<double>(b));
        return static_cast<C>(r);
      }
      case Op::Mod: {
        if (b == 0) return 0;
        C r = static_cast<C>(a % b);
        if constexpr (std::is_signed_v<C>)
          if (!fmod_mode && r != 0 && ((r < 0) != (b < 0))) r = static_cast<C>(r + b);
        return r;
      }
      case Op::Max: return std::max(a, b);
      case Op::Min: return std::min(a, b);
      case Op::PRelu: return a < 0 ? static_cast<C>(a * b) : a;
      case Op::Shl: return b >= static_cast<C>(sizeof(C) * 8) ? C(0) : static_cast<C>(a << b);
      case Op::Shr: return b >= static_cast<C>(sizeof(C) * 8) ? C(0) : static_cast<C>(a >> b);
      case Op::BAnd: return static_cast<C>(a & b);
      case Op::BOr: return static_cast<C>(a | b);
      case Op::BXor: return static_cast<C>(a ^ b);
      default: return 0;
    }
  }
}

}  // namespace binary
}  // namespace kiln

// Value conversions of the small element types (rules in small_types.h).
#include "small_types.h"

#include <array>
#include <cmath>
#include <cstring>
#include <limits>

namespace kiln {
namespace {

// A float8/float4 layout: exponent and mantissa bits, bias, and how it spends its top codes.
enum class Special { IEEE, FN, FNUZ, None };  // Inf+NaNs / one NaN per sign / 0x80 NaN / neither
struct Layout {
  int eb, mb, bias;
  Special special;
  int width() const { return 1 + eb + mb; }
  uint8_t sign_bit() const { return static_cast<uint8_t>(1u << (width() - 1)); }
  int top_field() const { return (1 << eb) - 1; }
  // The largest finite magnitude's code (sign bit clear).
  uint8_t max_code() const {
    int top = special == Special::IEEE ? top_field() - 1 : top_field();
    int mant = special == Special::FN ? (1 << mb) - 2 : (1 << mb) - 1;
    return static_cast<uint8_t>((top << mb) | mant);
  }
};

const Layout* layout(DType t) {
  static const Layout e4m3fn{4, 3, 7, Special::FN}, e4m3fnuz{4, 3, 8, Special::FNUZ}, e5m2{5, 2, 15, Special::IEEE},
      e5m2fnuz{5, 2, 16, Special::FNUZ}, e2m1{2, 1, 1, Special::None};
  switch (t) {
    case DType::F8E4M3FN: return &e4m3fn;
    case DType::F8E4M3FNUZ: return &e4m3fnuz;
    case DType::F8E5M2: return &e5m2;
    case DType::F8E5M2FNUZ: return &e5m2fnuz;
    case DType::F4E2M1: return &e2m1;
    default: return nullptr;
  }
}

// Decoding by the format's definition (the tables below are built from it).
double decode(const Layout& f, uint8_t code) {
  code &= static_cast<uint8_t>((1u << f.width()) - 1);
  bool neg = code & f.sign_bit();
  int field = (code >> f.mb) & f.top_field(), mant = code & ((1 << f.mb) - 1);
  if (f.special == Special::FNUZ && code == f.sign_bit()) return std::numeric_limits<double>::quiet_NaN();
  if (field == f.top_field()) {
    if (f.special == Special::IEEE) return mant ? std::numeric_limits<double>::quiet_NaN() : (neg ? -INFINITY : INFINITY);
    if (f.special == Special::FN && mant == (1 << f.mb) - 1) return std::numeric_limits<double>::quiet_NaN();
  }
  double mag = field == 0 ? std::ldexp(mant, 1 - f.bias - f.mb) : std::ldexp((1 << f.mb) + mant, field - f.bias - f.mb);
  return neg ? -mag : mag;
}

using Table = std::array<float, 256>;
const Table& table(DType t) {
  static const auto build = [](DType d) {
    Table tb{};
    for (int c = 0; c < 256; ++c) tb[c] = static_cast<float>(decode(*layout(d), static_cast<uint8_t>(c)));
    return tb;
  };
  static const Table e4m3fn = build(DType::F8E4M3FN), e4m3fnuz = build(DType::F8E4M3FNUZ), e5m2 = build(DType::F8E5M2),
                     e5m2fnuz = build(DType::F8E5M2FNUZ), e2m1 = build(DType::F4E2M1);
  switch (t) {
    case DType::F8E4M3FN: return e4m3fn;
    case DType::F8E4M3FNUZ: return e4m3fnuz;
    case DType::F8E5M2: return e5m2;
    case DType::F8E5M2FNUZ: return e5m2fnuz;
    default: return e2m1;
  }
}

uint8_t nan_code(const Layout& f, bool neg) {
  uint8_t s = neg ? f.sign_bit() : 0;
  switch (f.special) {
    case Special::IEEE: return static_cast<uint8_t>(s | (f.top_field() << f.mb) | (1 << (f.mb - 1)));  // quiet NaN
    case Special::FN: return static_cast<uint8_t>(s | (f.top_field() << f.mb) | ((1 << f.mb) - 1));
    case Special::FNUZ: return f.sign_bit();
    case Special::None: return f.sign_bit();  // no NaN: -0, as ONNX's reference
  }
  return 0;
}

// The code of an out-of-range value (|v| beyond the max finite, or Inf).
uint8_t overflow_code(const Layout& f, bool neg, bool saturate) {
  uint8_t s = neg ? f.sign_bit() : 0;
  if (saturate || f.special == Special::None) return static_cast<uint8_t>(s | f.max_code());
  if (f.special == Special::IEEE) return static_cast<uint8_t>(s | (f.top_field() << f.mb));  // Inf
  return nan_code(f, neg);
}

}  // namespace

float small_float_to_float(DType t, uint8_t code) { return table(t)[code & ((1u << layout(t)->width()) - 1)]; }

uint8_t float_to_small_float(DType t, double v, bool saturate) {
  const Layout& f = *layout(t);
  bool neg = std::signbit(v);
  if (std::isnan(v)) return nan_code(f, neg);
  double a = std::fabs(v);
  double maxv = decode(f, f.max_code());
  if (std::isinf(a)) return overflow_code(f, neg, saturate);
  uint8_t s = neg ? f.sign_bit() : 0;
  uint8_t zero = f.special == Special::FNUZ ? 0 : s;
  if (a == 0) return zero;
  // Round to nearest even at the quantum of a's binade (the subnormal one below the smallest normal);
  // the exponent is unbounded above, so a value that rounds past the max finite value overflows.
  int e;
  std::frexp(a, &e);
  e -= 1;  // a in [2^e, 2^(e+1))
  const int emin = 1 - f.bias;
  if (e < emin) e = emin;
  double r = std::ldexp(std::nearbyint(std::ldexp(a, f.mb - e)), e - f.mb);
  if (r > maxv) return overflow_code(f, neg, saturate);
  if (r == 0) return zero;
  std::frexp(r, &e);
  e -= 1;
  if (e < emin)  // subnormal: field 0
    return static_cast<uint8_t>(s | static_cast<int>(std::ldexp(r, f.bias - 1 + f.mb)));
  int mant = static_cast<int>(std::ldexp(r, f.mb - e)) - (1 << f.mb);
  return static_cast<uint8_t>(s | ((e + f.bias) << f.mb) | mant);
}

uint8_t to_e8m0(double v, bool saturate, E8M0Round mode) {
  float x = static_cast<float>(v);
  uint32_t b;
  std::memcpy(&b, &x, 4);
  uint32_t field = (b >> 23) & 0xff, frac = b & 0x7fffff;
  if (field == 0xff) return 0xff;  // NaN, ±Inf
  bool up = false;
  if (mode == E8M0Round::Up) up = frac != 0;
  else if (mode == E8M0Round::Nearest) up = (frac & 0x400000) && ((frac & 0x3fffff) || field > 0);
  if (up && !(saturate && field == 0xfe)) ++field;  // 0xfe + 1 is 0xff: NaN when not saturating
  return static_cast<uint8_t>(field);
}

int small_int_min(DType t) {
  switch (t) {
    case DType::I4: return -8;
    case DType::I2: return -2;
    default: return 0;
  }
}
int small_int_max(DType t) {
  switch (t) {
    case DType::I4: return 7;
    case DType::U4: return 15;
    case DType::I2: return 1;
    default: return 3;
  }
}

int small_int_wrap(DType t, int64_t v) {
  int bits = t == DType::I4 || t == DType::U4 ? 4 : 2;
  int u = static_cast<int>(static_cast<uint64_t>(v) & ((1u << bits) - 1));
  bool is_signed = t == DType::I4 || t == DType::I2;
  return is_signed && u >= (1 << (bits - 1)) ? u - (1 << bits) : u;
}

}  // namespace kiln

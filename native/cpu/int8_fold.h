// The requantizing int8 epilogue in folded form, shared by the CPU (qgemm_int8.h) and the CUDA kernels
// (cuda/int8_epilogue.cuh): a layer with an int8/uint8 output and no activation, ReLU or Clip computes
//   v = fma(float(acc), mult[c] / y_scale, bias[c] / y_scale + y_zp)
//   v = fma(residual, r_scale / y_scale, v)        (the residual's q - r_zp; a float32 one with 1 / y_scale)
//   y = round_half_even(min(max(v, lo), hi))
// where lo / hi are the output type's range narrowed by the activation (ReLU: y_zp; Clip: its bounds
// divided by y_scale plus y_zp), every constant rounded to float once and each fma rounded once. This is
// TensorRT's form and ONNX's own QLinearConv reference (acc * (x_scale * w_scale / y_scale)); it can
// differ from requantizing the float value (v / y_scale) by one step where that lands near a tie.
// The other epilogues (float32 outputs, other activations) stay as qgemm_int8.h states them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "sgemm.h"

namespace kiln::int8 {

struct Fold {
  bool on = false;      // the layer requantizes in folded form
  float res = 0;        // the residual's multiplier: r_scale / y_scale (float32 residual: 1 / y_scale)
  float lo = 0, hi = 0; // the clamp before rounding (zero point included)
};

// The folded form's scalars for a layer with output type out_q (0 float32, else int8 when out_i8, else
// uint8), output scale and zero point, activation `act` and a residual of scale r_scale (float32: r_float).
inline Fold fold_for(bool out_q, bool out_i8, float y_scale, int32_t y_zp, const Activation& act, bool r_float, float r_scale) {
  Fold f;
  if (!out_q || (act.kind != Activation::None && act.kind != Activation::Relu && act.kind != Activation::Clip)) return f;
  f.on = true;
  f.res = (r_float ? 1.f : r_scale) / y_scale;
  const float zp = static_cast<float>(y_zp);
  f.lo = out_i8 ? -128.f : 0.f;
  f.hi = out_i8 ? 127.f : 255.f;
  if (act.kind == Activation::Relu) f.lo = std::fmax(f.lo, zp);
  if (act.kind == Activation::Clip) {
    f.lo = std::fmax(f.lo, act.lo / y_scale + zp);
    f.hi = std::fmin(f.hi, act.hi / y_scale + zp);
  }
  return f;
}

// A channel's folded multiplier and bias (bias 0 for none).
inline float fold_mult(float mult, float y_scale) { return mult / y_scale; }
inline float fold_bias(float bias, float y_scale, int32_t y_zp) { return bias / y_scale + static_cast<float>(y_zp); }

// fl(a * b + c) rounded once, as fmaf, without an FMA instruction: the product of two floats is exact
// in double; the sum is rounded to odd there (TwoSum's error decides the last bit), and a value rounded
// to odd at 53 bits rounds to nearest at 24 bits as the exact one does.
inline float fma_f32(float a, float b, float c) {
  const double p = static_cast<double>(a) * static_cast<double>(b), q = static_cast<double>(c);
  double s = p + q;
  const double bv = s - p, err = (p - (s - bv)) + (q - bv);
  if (err != 0 && std::isfinite(s)) {
    uint64_t bits;
    std::memcpy(&bits, &s, sizeof bits);
    if ((bits & 1) == 0) bits += (err > 0) == (s > 0) ? 1 : static_cast<uint64_t>(-1);
    std::memcpy(&s, &bits, sizeof bits);
  }
  return static_cast<float>(s);
}

// The requantized integer of folded value v (NaN, from a float32 residual, becomes lo).
inline int32_t fold_round(const Fold& f, float v) { return static_cast<int32_t>(std::nearbyint(std::fmin(std::fmax(v, f.lo), f.hi))); }

}  // namespace kiln::int8

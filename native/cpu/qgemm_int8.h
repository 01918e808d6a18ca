// The int8 layer core shared by the Int8Conv (qconv_int8.cc) and Int8Gemm (qgemm_int8.cc) kernels.
//
// An int8 layer multiplies quantized activations (int8 or uint8, one scale and zero point per tensor)
// by int8 weights (symmetric: zero point 0, one scale per output channel or one per tensor) with exact
// int32 sums, then applies the float epilogue per output element:
//   v = act(acc * x_scale * w_scale[c] + bias[c] + residual[i])
// and stores v as float32, or requantized: y = saturate(round_half_even(v / y_scale) + y_zero_point) as
// int8 or uint8 -- except that layers with an int8/uint8 output and no activation, ReLU or Clip
// requantize in the folded form of int8_fold.h (acc * (mult / y_scale) + ..., TensorRT's). The residual is float32, or int8/uint8 read as (r - residual_zero_point) *
// residual_scale (a quantized residual: src/passes/qdq-fusion.ts). Attributes: x_scale, x_zero_point,
// w_scales (1 or channel count values), y_scale, y_zero_point (used when the output is int8/uint8),
// residual_scale, residual_zero_point (used when the residual is int8/uint8), and the epilogue
// activation (sgemm.h).
//
// The fast tactics pack activations minus their zero point and the weights as int16 rows padded to a
// multiple of 16, so that the AVX2 dot (vpmaddwd: int16 x int16 pairs summed into int32) needs no
// tail code and never saturates (|x - zp| <= 255, |w| <= 128).
#pragma once

#include <cstdint>
#include <vector>

#include "int8_fold.h"
#include "kernel_util.h"
#include "sgemm.h"

namespace kiln::int8 {

struct Params {
  float x_scale = 1;
  int32_t x_zp = 0;
  std::vector<float> mult;  // x_scale * w_scale[c], one per output channel
  Activation act;
  DType out = DType::F32;   // F32, I8 or U8
  float y_scale = 1;
  int32_t y_zp = 0;
  DType res = DType::F32;   // the residual's type (F32, I8 or U8) when there is one
  float r_scale = 1;
  int32_t r_zp = 0;
  Fold fold;                 // the folded form (int8_fold.h) when fold.on
  std::vector<float> fmult;  // mult[c] / y_scale when fold.on
  // The residual's value at element i before its scale: r for float32, q - r_zp for int8/uint8.
  inline float residual_raw(const void* r, int64_t i) const {
    if (res == DType::F32) return static_cast<const float*>(r)[i];
    return static_cast<float>((res == DType::I8 ? static_cast<int32_t>(static_cast<const int8_t*>(r)[i]) : static_cast<int32_t>(static_cast<const uint8_t*>(r)[i])) - r_zp);
  }
  // The residual's value at element i.
  inline float residual_at(const void* r, int64_t i) const {
    if (res == DType::F32) return static_cast<const float*>(r)[i];
    return residual_raw(r, i) * r_scale;
  }
};

// Reads and validates the attributes for `channels` output channels, the activation type of input 0,
// the residual's (input 3) type and the output type; throws naming the layer.
Params read_params(const LayerInfo& L, int64_t channels);

// The epilogue of one output element: acc of channel c at output index i (residual index too).
struct Store {
  const Params& p;
  const float* bias;      // nullptr: none
  const void* residual;  // nullptr: none (float32, int8 or uint8: p.res)
  void* out;
  inline void put(int64_t i, int64_t c, int32_t acc) const {
    if (p.fold.on) {
      float v = fma_f32(static_cast<float>(acc), p.fmult[c], bias ? fold_bias(bias[c], p.y_scale, p.y_zp) : static_cast<float>(p.y_zp));
      if (residual) v = fma_f32(p.residual_raw(residual, i), p.fold.res, v);
      const int32_t q = fold_round(p.fold, v);
      if (p.out == DType::I8) static_cast<int8_t*>(out)[i] = static_cast<int8_t>(q);
      else static_cast<uint8_t*>(out)[i] = static_cast<uint8_t>(q);
      return;
    }
    float v = static_cast<float>(acc) * p.mult[c];
    if (bias) v += bias[c];
    if (residual) v += p.residual_at(residual, i);
    v = p.act.apply(v);
    if (p.out == DType::F32) {
      static_cast<float*>(out)[i] = v;
      return;
    }
    float r = std::nearbyint(v / p.y_scale) + static_cast<float>(p.y_zp);
    if (std::isnan(r)) r = static_cast<float>(p.y_zp);
    if (p.out == DType::I8)
      static_cast<int8_t*>(out)[i] = static_cast<int8_t>(std::clamp(r, -128.f, 127.f));
    else
      static_cast<uint8_t*>(out)[i] = static_cast<uint8_t>(std::clamp(r, 0.f, 255.f));
  }
};

// The activation value at index i minus the zero point (x is int8 or uint8 per `t`).
inline int32_t centered(const void* x, DType t, int64_t i, int32_t zp) {
  return (t == DType::U8 ? static_cast<int32_t>(static_cast<const uint8_t*>(x)[i]) : static_cast<int32_t>(static_cast<const int8_t*>(x)[i])) - zp;
}

// K rounded up to the packed row length.
inline int64_t padded(int64_t K) { return (K + 15) / 16 * 16; }

// Packs rows x rows of K int8 weights (row stride K) into int16 rows of padded(K), zero-filled.
std::vector<int16_t> pack_weights(const int8_t* w, int64_t rows, int64_t K);

// out[j] = sum_k a[k] * w[j * ldw + k] for j < n (n <= 4), over Kp (a multiple of 16) int16 values.
void dot_rows(const int16_t* a, const int16_t* w, int64_t ldw, int64_t Kp, int n, int32_t* out);

// Slots of per-task scratch a fast tactic splits its work into (one per pool thread).
int64_t task_slots();

// Runs task(t) for t < T: inline for one task, else spread over the pool (task t uses scratch slot t).
template <typename F>
void run_tasks(RunContext& ctx, int64_t T, F&& task) {
  if (T == 1) return task(0);
  ctx.pool->parallel_for(T, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) task(t);
  });
}

}  // namespace kiln::int8

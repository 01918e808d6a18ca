// The int8 layers' per-element epilogue on the device (native/cuda/int8_kernels.h states it), written
// step by step as the CPU's Store::put (native/cpu/qgemm_int8.h) and Activation::apply (sgemm.h) so
// that float32 outputs round the same way and requantized outputs are equal: every multiply and add
// is an explicitly rounded intrinsic (nvcc would otherwise contract them into FMAs), the division is
// IEEE, rintf rounds half to even like std::nearbyint, and min/max keep std::min/std::max's operand
// order (which decides what NaN gives). exp/tanh/erf (sigmoid, tanh, gelu, silu) are CUDA's and may
// differ from the C library's in the last bit.
#pragma once

#include <cuda_runtime.h>

#include "cuda/int8_kernels.h"

namespace kiln {
namespace i8cu {

__device__ __forceinline__ float std_min(float a, float b) { return b < a ? b : a; }
__device__ __forceinline__ float std_max(float a, float b) { return a < b ? b : a; }

__device__ __forceinline__ float activate(const Epilogue& e, float v) {
  switch (e.act) {
    case Activation::Relu: return v < 0.f ? 0.f : v;
    case Activation::Clip: return v < e.lo ? e.lo : (v > e.hi ? e.hi : v);
    case Activation::Sigmoid: return __fdiv_rn(1.f, __fadd_rn(1.f, expf(-v)));
    case Activation::Tanh: return tanhf(v);
    case Activation::LeakyRelu: return v < 0.f ? __fmul_rn(e.alpha, v) : v;
    case Activation::HardSigmoid: return std_max(0.f, std_min(1.f, __fadd_rn(__fmul_rn(e.alpha, v), e.beta)));
    case Activation::HardSwish: return __fmul_rn(v, std_max(0.f, std_min(1.f, __fadd_rn(__fdiv_rn(v, 6.f), 0.5f))));
    case Activation::Gelu: return __fmul_rn(__fmul_rn(0.5f, v), __fadd_rn(1.f, erff(__fmul_rn(v, 0.70710678118654752440f))));
    case Activation::GeluTanh: {
      float cube = __fmul_rn(__fmul_rn(__fmul_rn(0.044715f, v), v), v);
      return __fmul_rn(__fmul_rn(0.5f, v), __fadd_rn(1.f, tanhf(__fmul_rn(0.79788456080286535588f, __fadd_rn(v, cube)))));
    }
    case Activation::Silu: return __fdiv_rn(v, __fadd_rn(1.f, expf(-v)));
    default: return v;
  }
}

// Output element i of channel c from its int32 sum.
__device__ __forceinline__ void put(const Epilogue& e, int64_t i, int c, int32_t acc) {
  if (e.corr) acc = static_cast<int32_t>(static_cast<uint32_t>(acc) - static_cast<uint32_t>(e.corr[c]));
  float v = __fmul_rn(__int2float_rn(acc), e.mult[c]);
  if (e.bias) v = __fadd_rn(v, e.bias[c]);
  if (e.residual) {
    float r;
    if (e.res_type == kOutF32) r = static_cast<const float*>(e.residual)[i];
    else {
      int q = e.res_type == kOutI8 ? static_cast<int>(static_cast<const int8_t*>(e.residual)[i]) : static_cast<int>(static_cast<const uint8_t*>(e.residual)[i]);
      r = __fmul_rn(__int2float_rn(q - static_cast<int>(e.r_zp)), e.r_scale);
    }
    v = __fadd_rn(v, r);
  }
  v = activate(e, v);
  if (e.out_type == kOutF32) {
    static_cast<float*>(e.out)[i] = v;
    return;
  }
  // 0 / y_scale is ±0: skip the division, whose IEEE slow path zeros can take (half of a ReLU's outputs)
  float r = __fadd_rn(rintf(v == 0.f ? v : __fdiv_rn(v, e.y_scale)), e.y_zp);
  if (isnan(r)) r = e.y_zp;
  if (e.out_type == kOutI8)
    static_cast<int8_t*>(e.out)[i] = static_cast<int8_t>(static_cast<int>(r < -128.f ? -128.f : (127.f < r ? 127.f : r)));
  else
    static_cast<uint8_t*>(e.out)[i] = static_cast<uint8_t>(static_cast<int>(r < 0.f ? 0.f : (255.f < r ? 255.f : r)));
}

}  // namespace i8cu
}  // namespace kiln

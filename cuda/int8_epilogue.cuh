// The int8 layers' per-element epilogue on the device (native/cuda/int8_kernels.h states it), written
// step by step as the CPU's Store::put (native/cpu/qgemm_int8.h) and Activation::apply (sgemm.h) so
// that float32 outputs round the same way and requantized outputs are equal: every multiply and add
// is an explicitly rounded intrinsic (nvcc would otherwise contract them into FMAs), the division is
// IEEE, rintf rounds half to even like std::nearbyint, and min/max keep std::min/std::max's operand
// order (which decides what NaN gives). exp/tanh/erf (sigmoid, tanh, gelu, silu) are CUDA's and may
// differ from the C library's in the last bit.
#pragma once

#include <cuda_runtime.h>

#include <type_traits>

#include "cuda/int8_kernels.h"

namespace kiln {
namespace i8cu {

__device__ __forceinline__ float std_min(float a, float b) { return b < a ? b : a; }
__device__ __forceinline__ float std_max(float a, float b) { return a < b ? b : a; }

// Layers with an int8/uint8 output and no activation, ReLU or Clip requantize in the folded form of
// native/cpu/int8_fold.h (e.fold): fused multiply-adds there, rounded once each as the CPU's fma_f32.

// The activations with transcendental functions, out of line: inlined at each of an epilogue's
// unrolled elements they made the kernels larger than the instruction cache.
static __device__ __noinline__ float activate_math(const Epilogue& e, float v) {
  switch (e.act) {
    case Activation::Sigmoid: return __fdiv_rn(1.f, __fadd_rn(1.f, expf(-v)));
    case Activation::Tanh: return tanhf(v);
    case Activation::Gelu: return __fmul_rn(__fmul_rn(0.5f, v), __fadd_rn(1.f, erff(__fmul_rn(v, 0.70710678118654752440f))));
    case Activation::GeluTanh: {
      float cube = __fmul_rn(__fmul_rn(__fmul_rn(0.044715f, v), v), v);
      return __fmul_rn(__fmul_rn(0.5f, v), __fadd_rn(1.f, tanhf(__fmul_rn(0.79788456080286535588f, __fadd_rn(v, cube)))));
    }
    case Activation::Silu: return __fdiv_rn(v, __fadd_rn(1.f, expf(-v)));
    default: return v;
  }
}

__device__ __forceinline__ float activate(const Epilogue& e, float v) {
  switch (e.act) {
    case Activation::None: return v;
    case Activation::Relu: return v < 0.f ? 0.f : v;
    case Activation::Clip: return v < e.lo ? e.lo : (v > e.hi ? e.hi : v);
    case Activation::LeakyRelu: return v < 0.f ? __fmul_rn(e.alpha, v) : v;
    case Activation::HardSigmoid: return std_max(0.f, std_min(1.f, __fadd_rn(__fmul_rn(e.alpha, v), e.beta)));
    case Activation::HardSwish: return __fmul_rn(v, std_max(0.f, std_min(1.f, __fadd_rn(__fdiv_rn(v, 6.f), 0.5f))));
    default: return activate_math(e, v);
  }
}

// A channel's constants, read once by kernels that put many elements of the channel.
struct Chan {
  float mult = 0, bias = 0;
  int32_t corr = 0;
};
__device__ __forceinline__ Chan channel(const Epilogue& e, int c) {
  Chan k;
  k.mult = __ldg(e.mult + c);
  if (e.bias) k.bias = __ldg(e.bias + c);
  if (e.corr) k.corr = __ldg(e.corr + c);
  return k;
}

// An int8/uint8 residual value q as the float it stands for.
__device__ __forceinline__ float dequant_residual(const Epilogue& e, int q) { return __fmul_rn(__int2float_rn(q - static_cast<int>(e.r_zp)), e.r_scale); }
__device__ __forceinline__ float residual_at(const Epilogue& e, int64_t i) {
  if (e.res_type == kOutF32) return static_cast<const float*>(e.residual)[i];
  return dequant_residual(e, e.res_type == kOutI8 ? static_cast<int>(static_cast<const int8_t*>(e.residual)[i]) : static_cast<int>(static_cast<const uint8_t*>(e.residual)[i]));
}

// The float result of sum acc in channel k with residual value r (read only when e.residual is set).
__device__ __forceinline__ float value(const Epilogue& e, const Chan& k, int32_t acc, float r) {
  if (e.corr) acc = static_cast<int32_t>(static_cast<uint32_t>(acc) - static_cast<uint32_t>(k.corr));
  float v = __fmul_rn(__int2float_rn(acc), k.mult);
  if (e.bias) v = __fadd_rn(v, k.bias);
  if (e.residual) v = __fadd_rn(v, r);
  return activate(e, v);
}

// A rounded, zero-point-shifted value r saturated to int8 (OUT kOutI8) or uint8.
template <int OUT>
__device__ __forceinline__ int saturate_as(float r) {
  if (OUT == kOutI8) return static_cast<int>(r < -128.f ? -128.f : (127.f < r ? 127.f : r));
  return static_cast<int>(r < 0.f ? 0.f : (255.f < r ? 255.f : r));
}

// v requantized for an int8 (OUT kOutI8) or uint8 output: the saturated integer.
template <int OUT>
__device__ __forceinline__ int requantize_as(const Epilogue& e, float v) {
  // 0 / y_scale is ±0: skip the division, whose IEEE slow path zeros can take (half of a ReLU's outputs)
  float r = __fadd_rn(rintf(v == 0.f ? v : __fdiv_rn(v, e.y_scale)), e.y_zp);
  if (isnan(r)) r = e.y_zp;
  return saturate_as<OUT>(r);
}
__device__ __forceinline__ int requantize(const Epilogue& e, float v) { return e.out_type == kOutI8 ? requantize_as<kOutI8>(e, v) : requantize_as<kOutU8>(e, v); }

// The folded form (e.fold; native/cpu/int8_fold.h): channel c's bias term, the residual before its
// scale, and the requantized integer of sum acc (corrected) with residual value r.
__device__ __forceinline__ float fold_bias_at(const Epilogue& e, int c) {
  if (e.fbias) return __ldg(e.fbias + c);
  return e.bias ? __fadd_rn(__fdiv_rn(__ldg(e.bias + c), e.y_scale), e.y_zp) : e.y_zp;
}
__device__ __forceinline__ float residual_raw(const Epilogue& e, int64_t i) {
  if (e.res_type == kOutF32) return static_cast<const float*>(e.residual)[i];
  const int q = e.res_type == kOutI8 ? static_cast<int>(static_cast<const int8_t*>(e.residual)[i]) : static_cast<int>(static_cast<const uint8_t*>(e.residual)[i]);
  return __int2float_rn(q - static_cast<int>(e.r_zp));
}
__device__ __forceinline__ int fold_q(const Epilogue& e, int c, int32_t acc, float r) {
  float v = __fmaf_rn(__int2float_rn(acc), __ldg(e.fmult + c), fold_bias_at(e, c));
  if (e.residual) v = __fmaf_rn(r, e.f_res, v);
  return static_cast<int>(rintf(fminf(fmaxf(v, e.f_lo), e.f_hi)));
}

// Output element i of channel c from its int32 sum.
__device__ __forceinline__ void put(const Epilogue& e, int64_t i, int c, int32_t acc) {
  if (e.fold) {
    if (e.corr) acc = static_cast<int32_t>(static_cast<uint32_t>(acc) - static_cast<uint32_t>(__ldg(e.corr + c)));
    const int q = fold_q(e, c, acc, e.residual ? residual_raw(e, i) : 0.f);
    if (e.out_type == kOutI8) static_cast<int8_t*>(e.out)[i] = static_cast<int8_t>(q);
    else static_cast<uint8_t*>(e.out)[i] = static_cast<uint8_t>(q);
    return;
  }
  const float v = value(e, channel(e, c), acc, e.residual ? residual_at(e, i) : 0.f);
  if (e.out_type == kOutF32) static_cast<float*>(e.out)[i] = v;
  else if (e.out_type == kOutI8) static_cast<int8_t*>(e.out)[i] = static_cast<int8_t>(requantize(e, v));
  else static_cast<uint8_t*>(e.out)[i] = static_cast<uint8_t>(requantize(e, v));
}

// Elements i .. i + 3 (channels c .. c + 3) at once: one vector load of the residual, one vector store.
// i must be a multiple of 4 and ep.out / ep.residual aligned to four of their elements (quad_ok).
__host__ __device__ inline bool quad_ok(const Epilogue& e) {
  const size_t out4 = e.out_type == kOutF32 ? 16 : 4, res4 = e.res_type == kOutF32 ? 16 : 4;
  return reinterpret_cast<uintptr_t>(e.out) % out4 == 0 && (!e.residual || reinterpret_cast<uintptr_t>(e.residual) % res4 == 0);
}
__device__ __forceinline__ void put_quad(const Epilogue& e, int64_t i, int c, const int4& a) {
  if (e.fold) {
    put(e, i, c, a.x), put(e, i + 1, c + 1, a.y), put(e, i + 2, c + 2, a.z), put(e, i + 3, c + 3, a.w);
    return;
  }
  float r[4] = {0.f, 0.f, 0.f, 0.f};
  if (e.residual) {
    if (e.res_type == kOutF32) {
      const float4 q = *reinterpret_cast<const float4*>(static_cast<const float*>(e.residual) + i);
      r[0] = q.x, r[1] = q.y, r[2] = q.z, r[3] = q.w;
    } else if (e.res_type == kOutI8) {
      const char4 q = *reinterpret_cast<const char4*>(static_cast<const int8_t*>(e.residual) + i);
      r[0] = dequant_residual(e, q.x), r[1] = dequant_residual(e, q.y), r[2] = dequant_residual(e, q.z), r[3] = dequant_residual(e, q.w);
    } else {
      const uchar4 q = *reinterpret_cast<const uchar4*>(static_cast<const uint8_t*>(e.residual) + i);
      r[0] = dequant_residual(e, q.x), r[1] = dequant_residual(e, q.y), r[2] = dequant_residual(e, q.z), r[3] = dequant_residual(e, q.w);
    }
  }
  const int32_t acc[4] = {a.x, a.y, a.z, a.w};
  float v[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) v[j] = value(e, channel(e, c + j), acc[j], r[j]);
  if (e.out_type == kOutF32) {
    *reinterpret_cast<float4*>(static_cast<float*>(e.out) + i) = make_float4(v[0], v[1], v[2], v[3]);
  } else {
    int q[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) q[j] = requantize(e, v[j]);
    if (e.out_type == kOutI8)
      *reinterpret_cast<char4*>(static_cast<int8_t*>(e.out) + i) = make_char4(static_cast<signed char>(q[0]), static_cast<signed char>(q[1]), static_cast<signed char>(q[2]), static_cast<signed char>(q[3]));
    else
      *reinterpret_cast<uchar4*>(static_cast<uint8_t*>(e.out) + i) =
          make_uchar4(static_cast<unsigned char>(q[0]), static_cast<unsigned char>(q[1]), static_cast<unsigned char>(q[2]), static_cast<unsigned char>(q[3]));
  }
}

constexpr int kNoResidual = -1;

// The common case of int8 layers compiled for its residual type and corrections: the folded form
// (e.fold), no residual or an int8/uint8 one (RES: kNoResidual, kOutI8, kOutU8), zero-point
// corrections or none (CORR: e.corr; the channels-last kernels never have them); four consecutive
// channels (constants read once) at a time, equal to put() for each of them.
//
// Rounding and saturation take no conversion instruction: v clamped to [f_lo, f_hi] (within
// [-128, 255]) plus 1.5 * 2^23 is the float 1.5 * 2^23 + round_half_even(v) exactly, whose low byte
// is the result's two's-complement byte; three byte permutes pack four of them.
//
// A residual byte b becomes the float b - r_zp in two steps: its bits below those of 2^23 (one byte
// permute) give 2^23 + b (for int8, b + 128: the bytes' sign bits flipped first), and subtracting
// 2^23 (+ 128) + r_zp is exact, as is the integer q - r_zp that residual_raw converts.
// v clamped to [lo, hi] (within [-128, 255]) and rounded half to even, as the bits of the float
// 1.5 * 2^23 + result: the low byte is the result's two's-complement byte (FastQuad below, and the
// stem and pointwise kernels' epilogues).
__device__ __forceinline__ uint32_t fold_bits(float v, float lo, float hi) { return __float_as_uint(__fadd_rn(fminf(fmaxf(v, lo), hi), 12582912.f)); }

template <int RES, bool CORR>
struct FastQuad {
  static constexpr int kRes = RES;
  float fm[4], fb[4], res_base, f_res, lo, hi;
  int32_t corr[4] = {0, 0, 0, 0};
  __device__ __forceinline__ FastQuad(const Epilogue& e, int c) {
    res_base = __fadd_rn(RES == kOutI8 ? 8388736.f : 8388608.f, e.r_zp);
    f_res = e.f_res, lo = e.f_lo, hi = e.f_hi;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      fm[j] = __ldg(e.fmult + c + j), fb[j] = fold_bias_at(e, c + j);
      if (CORR) corr[j] = __ldg(e.corr + c + j);
    }
  }
  // the four output bytes, lowest first, from the sums a of channels c .. c + 3 (the constructor's c)
  // and the residual's four bytes `res` (read when RES != kNoResidual)
  __device__ __forceinline__ uint32_t quad(const Epilogue&, const int4& a, uint32_t res) const {
    const int32_t acc[4] = {a.x, a.y, a.z, a.w};
    uint32_t t[4];
    if (RES == kOutI8) res ^= 0x80808080u;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int32_t sum = CORR ? static_cast<int32_t>(static_cast<uint32_t>(acc[j]) - static_cast<uint32_t>(corr[j])) : acc[j];
      float v = __fmaf_rn(__int2float_rn(sum), fm[j], fb[j]);
      if (RES != kNoResidual) v = __fmaf_rn(__fsub_rn(__uint_as_float(__byte_perm(res, 0x4B000000u, 0x7440u | j)), res_base), f_res, v);
      t[j] = fold_bits(v, lo, hi);
    }
    return __byte_perm(__byte_perm(t[0], t[1], 0x0040u), __byte_perm(t[2], t[3], 0x0040u), 0x5410u);
  }
};

// Which FastQuad fits e (an index for fast_quad_dispatch), or -1: the general put()/put_quad().
__host__ __device__ inline int fast_quad_kind(const Epilogue& e) {
  if (!e.fold || !quad_ok(e)) return -1;
  const int res = !e.residual ? 0 : e.res_type == kOutI8 ? 1 : e.res_type == kOutU8 ? 2 : -1;
  return res < 0 ? -1 : res + (e.corr ? 3 : 0);
}
// f(a null FastQuad<...>*, naming the type) for kind k (0 .. 5)
template <int RES, bool CORR>
using FastQuadTag = FastQuad<RES, CORR>*;
template <class F>
__device__ __forceinline__ void fast_quad_dispatch(int k, F&& f) {
  switch (k) {
    case 0: return f(FastQuadTag<kNoResidual, false>{});
    case 1: return f(FastQuadTag<kOutI8, false>{});
    case 2: return f(FastQuadTag<kOutU8, false>{});
    case 3: return f(FastQuadTag<kNoResidual, true>{});
    case 4: return f(FastQuadTag<kOutI8, true>{});
    default: return f(FastQuadTag<kOutU8, true>{});
  }
}

// The outputs of an int32 tile staged in shared memory by a channels-last kernel: tile rows [0, rows)
// (row stride ld) are output positions pbase.., columns [0, BN) channels m0.. of group grp, element
// (p, m) of Y at p * M + m. Every thread takes runs of 4 channels: with `fast` (fast_quad_kind) the
// same 4 channels over its rows (kThreads a multiple of BN / 4), FastQuad's constants read once, and
// an int8/uint8 residual read from `res_tile` when the kernel prefetched it to shared memory (its rows
// BN bytes apart, row r = output position pbase + r; mma_cl_kernel), else from ep.residual;
// without `fast`, put_quad (`quads`: quad_ok and Mg % 4 == 0) or put per element. Loads and stores
// along the channels coalesce; the loops are rolled (one copy of the epilogue's code; the fast loop
// four steps per turn, so that four steps' memory accesses are in flight: 2-7% faster than two on the
// layers of 256 channels or more, kbench-6).
template <int BN, int kThreads>
__device__ __forceinline__ void store_tile(const Epilogue& ep, const int32_t* tile, int ld, int rows, int pbase, int positions, const Geom& g, int grp, int m0,
                                           bool quads, int fast, const uint8_t* res_tile = nullptr) {
  const int tid = threadIdx.x;
  if (fast >= 0) {
    static_assert(kThreads % (BN / 4) == 0, "epilogue channels per thread");
    const int c = (tid % (BN / 4)) * 4, mg = m0 + c, m = grp * g.Mg + mg;
    if (mg >= g.Mg) return;
    fast_quad_dispatch(fast, [&](auto* tag) {
      using F = std::remove_pointer_t<decltype(tag)>;
      const F f(ep, m);
      const int end = min(rows, positions - pbase);
      auto each_row = [&](auto residual_word) {
#pragma unroll 4
        for (int r = tid / (BN / 4); r < end; r += kThreads / (BN / 4)) {
          const int64_t i = static_cast<int64_t>(pbase + r) * g.M + m;
          *reinterpret_cast<uint32_t*>(static_cast<uint8_t*>(ep.out) + i) = f.quad(ep, *reinterpret_cast<const int4*>(tile + r * ld + c), residual_word(r, i));
        }
      };
      if (F::kRes == kNoResidual) each_row([](int, int64_t) { return 0u; });
      else if (res_tile) each_row([&](int r, int64_t) { return *reinterpret_cast<const uint32_t*>(res_tile + r * BN + c); });
      else each_row([&](int, int64_t i) { return *reinterpret_cast<const uint32_t*>(static_cast<const uint8_t*>(ep.residual) + i); });
    });
    return;
  }
#pragma unroll 1
  for (int q = tid; q < rows * (BN / 4); q += kThreads) {
    const int r = q / (BN / 4), c = (q % (BN / 4)) * 4, pp = pbase + r, mg = m0 + c;
    if (pp >= positions || mg >= g.Mg) continue;
    const int m = grp * g.Mg + mg;
    const int64_t i = static_cast<int64_t>(pp) * g.M + m;
    const int4 a = *reinterpret_cast<const int4*>(tile + r * ld + c);
    if (quads) {
      put_quad(ep, i, m, a);
    } else {
      const int32_t v[4] = {a.x, a.y, a.z, a.w};
#pragma unroll 1
      for (int e = 0; e < 4 && mg + e < g.Mg; ++e) put(ep, i + e, m + e, v[e]);
    }
  }
}

}  // namespace i8cu
}  // namespace kiln

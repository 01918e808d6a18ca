// QuantizeLinear and DequantizeLinear for the "cuda" backend, matching native/cpu/quantize.cc for the
// types int8 engines move between float and int8 layers (and Q/DQ models carry):
// - 'cuda.quantize'   float32/float16 x -> int8/uint8 y = saturate(round_half_even(x / scale) + zp), the
//                     quotient in attribute `precision` (float32, or float16: rounded to it); NaN -> 0.
// - 'cuda.dequantize' int8/uint8/int32 x -> float32/float16 y = (x - zp) * scale, computed in float.
// One scale (mode 0) or one per index of `axis` (mode 1); scale float32 or float16; the zero point of x's
// (or y's) quantized type, or none. Blocked scales (mode 2) and the small/float8 types stay on the CPU's
// kernels. One thread per element, grid-stride; the scale index is (i / inner) % A. One float32 scale
// over a float32 tensor (an int8 engine's input): four elements per thread.
#include <limits>
#include <type_traits>

#include "kern.cuh"

namespace kiln {
namespace cuk {
namespace {

struct QParams {
  int64_t n = 0, A = 1, inner = 1;
  int mode = 0;
};

__device__ __forceinline__ int64_t scale_index(const QParams& p, int64_t i) { return p.mode == 0 ? 0 : (i / p.inner) % p.A; }

template <typename X, typename Q, typename S>
__global__ void quantize_kernel(const X* x, Q* y, const S* scale, const Q* zp, QParams p, bool half_quotient) {
  const float lo = static_cast<float>(std::numeric_limits<Q>::lowest());
  const float hi = static_cast<float>(std::numeric_limits<Q>::max());
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t s = scale_index(p, i);
    float q = __fdiv_rn(ld(x[i]), ld(scale[s]));
    if (half_quotient) q = __half2float(__float2half_rn(q));
    float r = rintf(q) + (zp ? static_cast<float>(zp[s]) : 0.f);
    y[i] = static_cast<Q>(isnan(r) ? 0.f : fminf(fmaxf(r, lo), hi));
  }
}

// One scale, float32 x: four elements per thread (one 16-byte load, one 4-byte store), 32-bit indices;
// the same arithmetic per element as quantize_kernel. n4 = n / 4 (n a multiple of 4, x 16-byte and y
// 4-byte aligned).
template <typename Q, typename S>
__global__ void quantize4_kernel(const float4* x, uint32_t* y, const S* scale, const Q* zp, uint32_t n4, bool half_quotient) {
  const float lo = static_cast<float>(std::numeric_limits<Q>::lowest());
  const float hi = static_cast<float>(std::numeric_limits<Q>::max());
  const float sc = ld(scale[0]), z = zp ? static_cast<float>(zp[0]) : 0.f;
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += gridDim.x * blockDim.x) {
    const float4 v = x[i];
    const float e[4] = {v.x, v.y, v.z, v.w};
    uint32_t packed = 0;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      float q = __fdiv_rn(e[k], sc);
      if (half_quotient) q = __half2float(__float2half_rn(q));
      const float r = rintf(q) + z;
      const Q b = static_cast<Q>(isnan(r) ? 0.f : fminf(fmaxf(r, lo), hi));
      packed |= static_cast<uint32_t>(static_cast<uint8_t>(b)) << (8 * k);
    }
    y[i] = packed;
  }
}

template <typename X, typename Y, typename S>
__global__ void dequantize_kernel(const X* x, Y* y, const S* scale, const X* zp, QParams p) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t s = scale_index(p, i);
    // (x - zp) is exact in double (int32 inputs), in float for the 8-bit types
    float d = sizeof(X) > 2 ? static_cast<float>(static_cast<double>(x[i]) - (zp ? static_cast<double>(zp[s]) : 0.0))
                            : static_cast<float>(x[i]) - (zp ? static_cast<float>(zp[s]) : 0.f);
    st(y[i], d * ld(scale[s]));
  }
}

template <typename F> bool dispatch_q8(DType t, F&& f) {
  switch (t) {
    case DType::I8: f(Tag<int8_t>{}); return true;
    case DType::U8: f(Tag<uint8_t>{}); return true;
    default: return false;
  }
}

bool is_float(DType t) { return t == DType::F32 || t == DType::F16; }

// The layer's granularity (modes 0 and 1) against the scale's and zero point's sizes.
bool params(const LayerInfo& L, QParams& p) {
  p.mode = static_cast<int>(L.op->i("mode"));
  const Shape& xs = L.in[0]->shape;
  p.n = L.in[0]->numel();
  int64_t want = 1;
  if (p.mode == 1) {
    int64_t axis = L.op->i("axis");
    if (axis < 0 || axis >= static_cast<int64_t>(xs.size())) return false;
    p.A = xs[axis];
    for (size_t d = axis + 1; d < xs.size(); ++d) p.inner *= xs[d];
    want = p.A;
  } else if (p.mode != 0) {
    return false;
  }
  if (L.in[1]->numel() != want || !is_float(L.in[1]->dtype)) return false;
  bool zp = L.in.size() > 2 && L.in[2];
  return !zp || L.in[2]->numel() == want;
}

class QuantizeCuda : public Tactic {
 public:
  const char* name() const override { return "cuda.quantize"; }
  bool can_implement(const LayerInfo& L) const override {
    QParams p;
    int64_t prec = L.op->i("precision");
    bool zp_ok = L.in.size() < 3 || !L.in[2] || L.in[2]->dtype == L.out[0]->dtype;
    return params(L, p) && is_float(L.in[0]->dtype) && (L.out[0]->dtype == DType::I8 || L.out[0]->dtype == DType::U8) && zp_ok &&
           (prec == static_cast<int64_t>(DType::F32) || prec == static_cast<int64_t>(DType::F16));
  }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    QParams p;
    params(L, p);
    if (p.n == 0) return;
    bool half_quotient = L.op->i("precision") == static_cast<int64_t>(DType::F16);
    cudaStream_t s = stream_of(ctx);
    const void* zp = L.in.size() > 2 && in[2].data ? in[2].data : nullptr;
    dispatch_float(in[0].dtype, [&](auto xt) {
      using X = typename decltype(xt)::type;
      dispatch_q8(out[0].dtype, [&](auto qt) {
        using Q = typename decltype(qt)::type;
        dispatch_float(in[1].dtype, [&](auto st_) {
          using S = typename decltype(st_)::type;
          const uintptr_t xa = reinterpret_cast<uintptr_t>(in[0].data), ya = reinterpret_cast<uintptr_t>(out[0].data);
          if (std::is_same<X, float>::value && p.mode == 0 && p.n % 4 == 0 && p.n / 4 < (int64_t(1) << 31) && xa % 16 == 0 && ya % 4 == 0) {
            const uint32_t n4 = static_cast<uint32_t>(p.n / 4);
            quantize4_kernel<Q, S><<<grid_for(n4), kThreads, 0, s>>>(static_cast<const float4*>(in[0].data), static_cast<uint32_t*>(out[0].data), in[1].as<S>(),
                                                                  static_cast<const Q*>(zp), n4, half_quotient);
          } else {
            quantize_kernel<X, Q, S><<<grid_for(p.n), kThreads, 0, s>>>(in[0].as<X>(), out[0].as<Q>(), in[1].as<S>(), static_cast<const Q*>(zp), p, half_quotient);
          }
        });
      });
    });
    check_launch(L, name());
  }
};

class DequantizeCuda : public Tactic {
 public:
  const char* name() const override { return "cuda.dequantize"; }
  bool can_implement(const LayerInfo& L) const override {
    QParams p;
    DType x = L.in[0]->dtype;
    bool zp_ok = L.in.size() < 3 || !L.in[2] || L.in[2]->dtype == x;
    return params(L, p) && (x == DType::I8 || x == DType::U8 || x == DType::I32) && is_float(L.out[0]->dtype) && zp_ok;
  }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    QParams p;
    params(L, p);
    if (p.n == 0) return;
    cudaStream_t s = stream_of(ctx);
    const void* zp = L.in.size() > 2 && in[2].data ? in[2].data : nullptr;
    auto go = [&](auto xt) {
      using X = typename decltype(xt)::type;
      dispatch_float(out[0].dtype, [&](auto yt) {
        using Y = typename decltype(yt)::type;
        dispatch_float(in[1].dtype, [&](auto st_) {
          using S = typename decltype(st_)::type;
          dequantize_kernel<X, Y, S><<<grid_for(p.n), kThreads, 0, s>>>(in[0].as<X>(), out[0].as<Y>(), in[1].as<S>(), static_cast<const X*>(zp), p);
        });
      });
    };
    if (in[0].dtype == DType::I32) go(Tag<int32_t>{});
    else dispatch_q8(in[0].dtype, go);
    check_launch(L, name());
  }
};

}  // namespace
}  // namespace cuk
KILN_REGISTER_TACTIC("cuda", "QuantizeLinear", cuk::QuantizeCuda);
KILN_REGISTER_TACTIC("cuda", "DequantizeLinear", cuk::DequantizeCuda);
}  // namespace kiln

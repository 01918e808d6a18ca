// Cast: element type conversion between every pair of the types kiln holds: float32, float16, bfloat16,
// float64, int8..64, uint8..64, bool, and the small types (float8 variants, float4e2m1, int4/uint4,
// int2/uint2; native/cpu/small_types.h). The target type is the output tensor's. Rules (numpy's on
// x86-64, defined here without undefined behaviour): integer→integer wraps modulo 2^bits (int4/int2
// too, as ONNX's reference); float→integer truncates toward zero, and NaN or a value out of range gives
// the x86 "integer indefinite" (INT32_MIN through a 32-bit conversion for 8/16/32-bit signed, 8/16-bit
// unsigned and the 4/2-bit targets, INT64_MIN through a 64-bit one for uint32/int64/uint64), reduced
// modulo the target width; anything→bool is `!= 0` (NaN is true); float16/bfloat16 round to nearest
// even from float; float8/float4 targets round to nearest even with attribute `saturate` (1 clamps out
// of range values to the max finite one), float8e8m0 per attribute `round_mode` (0 up, 1 down,
// 2 nearest). Variants: the reference (one loop) and a threaded one for large tensors.
#include <limits>

#include "small_types.h"

namespace kiln {
namespace {

template <typename To>
To float_to_int(double v) {
  constexpr double two63 = 9223372036854775808.0;
  if constexpr (sizeof(To) <= 2 || std::is_same_v<To, int32_t>) {
    int32_t r = (std::isnan(v) || v >= 2147483648.0 || v <= -2147483649.0) ? std::numeric_limits<int32_t>::min() : static_cast<int32_t>(v);
    return static_cast<To>(r);
  } else {
    if constexpr (std::is_same_v<To, uint64_t>)
      if (v >= two63 && v < 2 * two63) return static_cast<uint64_t>(v);
    int64_t r = (std::isnan(v) || v >= two63 || v < -two63) ? std::numeric_limits<int64_t>::min() : static_cast<int64_t>(v);
    return static_cast<To>(r);
  }
}

struct CastOpts {
  bool saturate = true;
  E8M0Round round = E8M0Round::Up;
};

template <typename To, typename From>
inline void convert(To& dst, const From& src, const CastOpts& o) {
  auto v = load(src);  // float for f16/bf16 and the small floats, int32 for int4/int2, the value otherwise
  using V = decltype(v);
  if constexpr (std::is_same_v<To, bool>) {
    dst = v != V(0);
  } else if constexpr (is_minifloat<To>::value) {
    constexpr DType D = is_minifloat<To>::dtype;
    if constexpr (D == DType::F8E8M0) dst.bits = to_e8m0(static_cast<double>(v), o.saturate, o.round);
    else dst.bits = float_to_small_float(D, static_cast<double>(v), o.saturate);
  } else if constexpr (is_subint<To>::value) {
    int64_t i = std::is_floating_point_v<V> ? float_to_int<int32_t>(static_cast<double>(v)) : static_cast<int64_t>(v);
    dst.v = static_cast<decltype(dst.v)>(small_int_wrap(is_subint<To>::dtype, i));
  } else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<V>) {
    dst = float_to_int<To>(static_cast<double>(v));
  } else if constexpr (std::is_same_v<To, f16> || std::is_same_v<To, bf16>) {
    store(dst, static_cast<float>(v));
  } else {
    dst = static_cast<To>(v);
  }
}

template <typename To, typename From>
void cast_range(const Tensor& in, Tensor& out, const CastOpts& o, int64_t b, int64_t e) {
  const From* x = in.as<From>();
  To* y = out.as<To>();
  for (int64_t i = b; i < e; ++i) convert<To, From>(y[i], x[i], o);
}

CastOpts opts(const LayerInfo& L) {
  CastOpts o;
  o.saturate = L.op->i("saturate", 1) != 0;
  int64_t r = L.op->i("round_mode", 0);
  if (r < 0 || r > 2) fail("INTERNAL", "layer '" + L.op->name + "': Cast round_mode " + std::to_string(r) + " is not 0, 1 or 2");
  o.round = static_cast<E8M0Round>(r);
  return o;
}

void check(const LayerInfo& L, const Tensor* in, const Tensor* out) {
  if (in[0].numel() != out[0].numel())
    fail("INTERNAL", "layer '" + L.op->name + "': Cast output has " + std::to_string(out[0].numel()) + " elements, input " +
                         std::to_string(in[0].numel()));
}

class CastRef : public Tactic {
 public:
  const char* name() const override { return "cpu.cast"; }
  bool reference() const override { return true; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext&) const override {
    check(L, in, out);
    CastOpts o = opts(L);
    dispatch_all_small(out[0].dtype, L, [&]<typename To>() {
      dispatch_all_small(in[0].dtype, L, [&]<typename From>() { cast_range<To, From>(in[0], out[0], o, 0, in[0].numel()); });
    });
  }
};

class CastThreaded : public Tactic {
 public:
  const char* name() const override { return "cpu.cast.threaded"; }
  bool can_implement(const LayerInfo& L) const override { return L.in[0]->numel() >= 65536; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    check(L, in, out);
    CastOpts o = opts(L);
    dispatch_all_small(out[0].dtype, L, [&]<typename To>() {
      dispatch_all_small(in[0].dtype, L, [&]<typename From>() {
        ctx.pool->parallel_for(in[0].numel(), 16384, [&](int64_t b, int64_t e) { cast_range<To, From>(in[0], out[0], o, b, e); });
      });
    });
  }
};

}  // namespace
KILN_REGISTER_TACTIC("cpu", "Cast", CastRef);
KILN_REGISTER_TACTIC("cpu", "Cast", CastThreaded);
}  // namespace kiln

// Linear quantization kernels.
//   QuantizeLinear    y = saturate(round_half_even(x / scale) + zp); the division runs in attribute
//                     `precision` (a float element type: float16/bfloat16 results are rounded to it).
//   DequantizeLinear  y = (x - zp) * scale, computed in float (double for a double output).
//   DynamicQuantizeLinear  uint8 y with the scale and zero point that map [min(0,x), max(0,x)] to [0,255].
// The scale (and zero point) index of an element follows attribute `mode`: 0 one scale, 1 one per index
// of `axis`, 2 one per block of `block` indices along `axis` (scale has x's rank). Variants: the
// reference for each kind, and a threaded QuantizeLinear/DequantizeLinear over the outer dims.
#include <algorithm>
#include <limits>

#include "kernel_util.h"

namespace kiln {
namespace {

// x viewed as [outer, A, inner] around `axis`; the scale index of (o, a, j).
struct Granularity {
  int mode = 0;
  int64_t outer = 1, A = 1, inner = 1, block = 1, SA = 1;
  int64_t index(int64_t o, int64_t a, int64_t j) const {
    if (mode == 0) return 0;
    if (mode == 1) return a;
    return (o * SA + a / block) * inner + j;
  }
};

Granularity granularity(const LayerInfo& L, const Shape& xs, int64_t scale_numel) {
  Granularity g;
  g.mode = static_cast<int>(L.op->i("mode"));
  int64_t axis = L.op->i("axis");
  g.block = L.op->i("block");
  if (g.mode != 0) {
    if (axis < 0 || axis >= static_cast<int64_t>(xs.size()) || g.block < 1)
      fail("INTERNAL", "layer '" + L.op->name + "': bad axis/block for input " + shape_str(xs));
    for (int64_t d = 0; d < axis; ++d) g.outer *= xs[d];
    g.A = xs[axis];
    for (size_t d = axis + 1; d < xs.size(); ++d) g.inner *= xs[d];
    g.SA = (g.A + g.block - 1) / g.block;
  } else {
    g.outer = numel(xs);  // [n, 1, 1]: every element its own row, so threads can split it
  }
  int64_t want = g.mode == 0 ? 1 : g.mode == 1 ? g.A : g.outer * g.SA * g.inner;
  if (scale_numel != want)
    fail("INVALID_INPUT", "layer '" + L.op->name + "': scale has " + std::to_string(scale_numel) + " elements, the input " +
                              shape_str(xs) + " needs " + std::to_string(want));
  return g;
}

void check_zp(const LayerInfo& L, const Tensor* in, int64_t scale_numel) {
  if (L.in.size() > 2 && in[2].data && in[2].numel() != scale_numel)
    fail("INVALID_INPUT", "layer '" + L.op->name + "': zero point has " + std::to_string(in[2].numel()) + " elements, scale " +
                              std::to_string(scale_numel));
}

// Values of a small tensor (scale, zero point) as double.
std::vector<double> as_doubles(const LayerInfo& L, const Tensor& t) {
  std::vector<double> v(t.numel());
  dispatch_numeric(t.dtype, L, [&]<typename T>() {
    const T* p = t.as<T>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(load(p[i]));
  });
  return v;
}

// Rounds a quotient to the precision of `prec` (float16/bfloat16 results are representable there).
inline double to_precision(double v, DType prec) {
  switch (prec) {
    case DType::F32: return static_cast<float>(v);
    case DType::F16: return half_to_float(float_to_half(static_cast<float>(v)));
    case DType::BF16: return bf16_to_float(float_to_bf16(static_cast<float>(v)));
    default: return v;
  }
}

template <typename Q>
inline Q saturate_q(double r) {
  if (std::isnan(r)) return Q(0);
  r = std::min<double>(std::max<double>(r, std::numeric_limits<Q>::lowest()), std::numeric_limits<Q>::max());
  return static_cast<Q>(r);
}

// Quantizes rows [o0, o1) of the [outer, A, inner] view.
struct QuantizeJob {
  const LayerInfo& L;
  const Tensor* in;
  Tensor* out;
  Granularity g;
  std::vector<double> scale, zp;
  DType prec;
  void run(int64_t o0, int64_t o1) const {
    dispatch_int(out[0].dtype, L, [&]<typename Q>() {
      dispatch_numeric(in[0].dtype, L, [&]<typename X>() {
        const X* x = in[0].as<X>();
        Q* y = out[0].as<Q>();
        for (int64_t o = o0; o < o1; ++o)
          for (int64_t a = 0; a < g.A; ++a)
            for (int64_t j = 0; j < g.inner; ++j) {
              int64_t i = (o * g.A + a) * g.inner + j;
              int64_t s = g.index(o, a, j);
              double q = to_precision(static_cast<double>(load(x[i])) / scale[s], prec);
              y[i] = saturate_q<Q>(std::nearbyint(q) + (zp.empty() ? 0.0 : zp[s]));
            }
      });
    });
  }
};

struct DequantizeJob {
  const LayerInfo& L;
  const Tensor* in;
  Tensor* out;
  Granularity g;
  std::vector<double> scale, zp;
  void run(int64_t o0, int64_t o1) const {
    dispatch_float(out[0].dtype, L, [&]<typename Y>() {
      using C = compute_t<Y>;
      dispatch_int(in[0].dtype, L, [&]<typename X>() {
        const X* x = in[0].as<X>();
        Y* y = out[0].as<Y>();
        for (int64_t o = o0; o < o1; ++o)
          for (int64_t a = 0; a < g.A; ++a)
            for (int64_t j = 0; j < g.inner; ++j) {
              int64_t i = (o * g.A + a) * g.inner + j;
              int64_t s = g.index(o, a, j);
              // (x - zp) is exact in double; the product rounds to the output's precision
              C d = static_cast<C>(static_cast<double>(x[i]) - (zp.empty() ? 0.0 : zp[s]));
              store(y[i], d * static_cast<C>(scale[s]));
            }
      });
    });
  }
};

template <bool Quantize>
class QuantRef : public Tactic {
 public:
  explicit QuantRef(bool threaded) : threaded_(threaded) {}
  const char* name() const override {
    if (Quantize) return threaded_ ? "cpu.quantize.threaded" : "cpu.quantize";
    return threaded_ ? "cpu.dequantize.threaded" : "cpu.dequantize";
  }
  bool reference() const override { return !threaded_; }
  bool can_implement(const LayerInfo& L) const override { return !threaded_ || L.in[0]->numel() >= 16384; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    if (in[0].numel() != out[0].numel()) fail("INTERNAL", "layer '" + L.op->name + "': output and input sizes differ");
    int64_t sn = in[1].numel();
    Granularity g = granularity(L, in[0].shape, sn);
    check_zp(L, in, sn);
    std::vector<double> scale = as_doubles(L, in[1]);
    std::vector<double> zp = L.in.size() > 2 && in[2].data ? as_doubles(L, in[2]) : std::vector<double>{};
    // threads split the outer dim (a per-axis scale on axis 0 leaves one row: no split)
    auto body = [&](auto& job) {
      if (!threaded_ || g.outer < 2) return job.run(0, g.outer);
      ctx.pool->parallel_for(g.outer, grain_for(g.A * g.inner), [&](int64_t b, int64_t e) { job.run(b, e); });
    };
    if constexpr (Quantize) {
      // validate dtypes before any parallel work: dispatch throws on an unsupported one
      dispatch_int(out[0].dtype, L, []<typename>() {});
      dispatch_numeric(in[0].dtype, L, []<typename>() {});
      QuantizeJob job{L, in, out, g, std::move(scale), std::move(zp), static_cast<DType>(L.op->i("precision"))};
      body(job);
    } else {
      dispatch_float(out[0].dtype, L, []<typename>() {});
      dispatch_int(in[0].dtype, L, []<typename>() {});
      DequantizeJob job{L, in, out, g, std::move(scale), std::move(zp)};
      body(job);
    }
  }

 private:
  bool threaded_;
};

class DynamicQuantizeRef : public Tactic {
 public:
  const char* name() const override { return "cpu.dynamic_quantize"; }
  bool reference() const override { return true; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext&) const override {
    if (in[0].dtype != DType::F32) unsupported_dtype(L, in[0].dtype);
    const float* x = in[0].as<float>();
    int64_t n = in[0].numel();
    float lo = 0, hi = 0;  // the range always holds 0
    for (int64_t i = 0; i < n; ++i) {
      if (std::isnan(x[i])) continue;
      lo = std::min(lo, x[i]);
      hi = std::max(hi, x[i]);
    }
    float scale = (hi - lo) / 255.0f;
    uint8_t zp = scale == 0 ? 0 : saturate_q<uint8_t>(std::nearbyint(static_cast<double>(0.0f - lo / scale)));
    if (out[0].data) {
      uint8_t* y = out[0].as<uint8_t>();
      for (int64_t i = 0; i < n; ++i)
        y[i] = scale == 0 ? zp : saturate_q<uint8_t>(std::nearbyint(static_cast<double>(x[i] / scale)) + zp);
    }
    if (out[1].data) *out[1].as<float>() = scale;
    if (out[2].data) *out[2].as<uint8_t>() = zp;
  }
};

}  // namespace
KILN_REGISTER_TACTIC_EXPR("cpu", "QuantizeLinear", std::make_unique<QuantRef<true>>(false));
KILN_REGISTER_TACTIC_EXPR("cpu", "QuantizeLinear", std::make_unique<QuantRef<true>>(true));
KILN_REGISTER_TACTIC_EXPR("cpu", "DequantizeLinear", std::make_unique<QuantRef<false>>(false));
KILN_REGISTER_TACTIC_EXPR("cpu", "DequantizeLinear", std::make_unique<QuantRef<false>>(true));
KILN_REGISTER_TACTIC("cpu", "DynamicQuantizeLinear", DynamicQuantizeRef);
}  // namespace kiln

// Linear quantization kernels.
//   QuantizeLinear    y = saturate(round_half_even(x / scale) + zp); the division runs in attribute
//                     `precision` (a float element type: float16/bfloat16 results are rounded to it).
//                     Integer targets (int4/uint4/int2/uint2 too) clamp to their range; float8/float4
//                     targets take x / scale + zp rounded to nearest even, attribute `saturate` (1)
//                     clamping out of range values to the max finite one (native/cpu/small_types.h).
//   DequantizeLinear  y = (x - zp) * scale, computed in float (double for a double output); x of any
//                     quantized type (integers, int4/int2, float8, float4e2m1).
//   DynamicQuantizeLinear  uint8 y with the scale and zero point that map [min(0,x), max(0,x)] to [0,255].
//   QMatMul, QConv    integer matmul / N-d convolution (MatMulInteger, QLinearMatMul, ConvInteger,
//                     QLinearConv), reference kernels only.
// The scale (and zero point) index of an element follows attribute `mode`: 0 one scale, 1 one per index
// of `axis`, 2 one per block of `block` indices along `axis` (scale has x's rank). Variants: the
// reference for each kind, and a threaded QuantizeLinear/DequantizeLinear over the outer dims.
#include <algorithm>
#include <limits>

#include "small_types.h"

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
  // f(i, s) for the elements i of outer rows [o0, o1), s the index of their scale / zero point
  template <typename F>
  void each(int64_t o0, int64_t o1, F&& f) const {
    for (int64_t o = o0; o < o1; ++o)
      for (int64_t a = 0; a < A; ++a)
        for (int64_t j = 0; j < inner; ++j) f((o * A + a) * inner + j, index(o, a, j));
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
  auto read = [&]<typename T>() {
    const T* p = t.as<T>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(load(p[i]));
  };
  dispatch_small(t.dtype, read, [&] { dispatch_numeric(t.dtype, L, read); });
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
  bool saturate;
  // One quantized value from the (precision-rounded) quotient q and the zero point.
  template <typename Q>
  static void put(Q& y, double q, double zp, bool saturate) {
    if constexpr (is_minifloat<Q>::value) {
      y.bits = float_to_small_float(is_minifloat<Q>::dtype, q + zp, saturate);
    } else if constexpr (is_subint<Q>::value) {
      constexpr DType D = is_subint<Q>::dtype;
      double r = std::nearbyint(q) + zp;
      y.v = static_cast<decltype(y.v)>(std::isnan(r) ? 0 : std::clamp<double>(r, small_int_min(D), small_int_max(D)));
    } else {
      y = saturate_q<Q>(std::nearbyint(q) + zp);
    }
  }
  void run(int64_t o0, int64_t o1) const {
    dispatch_quantized(out[0].dtype, L, [&]<typename Q>() {
      dispatch_numeric(in[0].dtype, L, [&]<typename X>() {
        const X* x = in[0].as<X>();
        Q* y = out[0].as<Q>();
        g.each(o0, o1, [&](int64_t i, int64_t s) {
          double q = to_precision(static_cast<double>(load(x[i])) / scale[s], prec);
          put<Q>(y[i], q, zp.empty() ? 0.0 : zp[s], saturate);
        });
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
      dispatch_quantized(in[0].dtype, L, [&]<typename X>() {
        const X* x = in[0].as<X>();
        Y* y = out[0].as<Y>();
        g.each(o0, o1, [&](int64_t i, int64_t s) {
          // (x - zp) is exact in double; the product rounds to the output's precision
          C d = static_cast<C>(static_cast<double>(load(x[i])) - (zp.empty() ? 0.0 : zp[s]));
          store(y[i], d * static_cast<C>(scale[s]));
        });
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
      dispatch_quantized(out[0].dtype, L, []<typename>() {});
      dispatch_numeric(in[0].dtype, L, []<typename>() {});
      QuantizeJob job{L, in, out, g, std::move(scale), std::move(zp), static_cast<DType>(L.op->i("precision")),
                      L.op->i("saturate", 1) != 0};
      body(job);
    } else {
      dispatch_float(out[0].dtype, L, []<typename>() {});
      dispatch_quantized(in[0].dtype, L, []<typename>() {});
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

// ---- QMatMul and QConv: integer matmul / convolution, reference kernels. ----
// Inputs: [A|x, B|w, a_zp, b_zp, a_scale, b_scale, y_scale, y_zp(, bias)], absent ones omitted. The
// accumulator is exact (int64, stored as int32 like the ONNX int32 result); with `requant` the output is
// saturate(round_half_even(acc * a_scale * b_scale / y_scale) + y_zp).

const Tensor* opt(const LayerInfo& L, const Tensor* in, size_t i) { return i < L.in.size() && in[i].data ? &in[i] : nullptr; }

// Integer tensor values as int32.
std::vector<int32_t> as_int32(const LayerInfo& L, const Tensor& t) {
  std::vector<int32_t> v(t.numel());
  dispatch_int(t.dtype, L, [&]<typename T>() {
    const T* p = t.as<T>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int32_t>(p[i]);
  });
  return v;
}

// A small per-tensor-or-per-index parameter: one value, or `n` values.
struct Param {
  std::vector<double> v;
  double at(int64_t i) const { return v.size() == 1 ? v[0] : v[i]; }
};
Param param(const LayerInfo& L, const Tensor* in, size_t i, int64_t n, double dflt, const char* what) {
  const Tensor* t = opt(L, in, i);
  if (!t) return Param{{dflt}};
  if (t->numel() != 1 && t->numel() != n)
    fail("INVALID_INPUT", "layer '" + L.op->name + "': " + what + " has " + std::to_string(t->numel()) + " elements, expected 1 or " +
                              std::to_string(n));
  return Param{as_doubles(L, *t)};
}

// Writes acc (index i, row scale index ai, column scale index bi) to the output.
struct Output {
  const LayerInfo& L;
  Tensor& out;
  bool requant;
  Param as, bs, ys, yzp;
  void check() const {
    if (requant) dispatch_int(out.dtype, L, []<typename>() {});
    else if (out.dtype != DType::I32) unsupported_dtype(L, out.dtype);
  }
  void put(int64_t i, int64_t acc, int64_t ai, int64_t bi) const {
    if (!requant) {
      out.as<int32_t>()[i] = static_cast<int32_t>(acc);
      return;
    }
    double r = std::nearbyint(static_cast<double>(acc) * (as.at(ai) * bs.at(bi) / ys.at(0))) + yzp.at(0);
    dispatch_int(out.dtype, L, [&]<typename Q>() { out.as<Q>()[i] = saturate_q<Q>(r); });
  }
};

class QMatMulRef : public Tactic {
 public:
  const char* name() const override { return "cpu.qmatmul"; }
  bool reference() const override { return true; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext&) const override {
    Shape a = in[0].shape, b = in[1].shape;
    if (a.empty() || b.empty()) fail("INVALID_INPUT", "layer '" + L.op->name + "': matmul operands need rank >= 1");
    if (a.size() == 1) a.insert(a.begin(), 1);
    if (b.size() == 1) b.push_back(1);
    int64_t M = a[a.size() - 2], K = a.back(), N = b.back();
    if (b[b.size() - 2] != K) fail("INVALID_INPUT", "layer '" + L.op->name + "': inner dims differ");
    Shape ba(a.begin(), a.end() - 2), bb(b.begin(), b.end() - 2), bo;
    size_t rank = std::max(ba.size(), bb.size());
    for (size_t d = 0; d < rank; ++d) {
      int64_t x = d + ba.size() >= rank ? ba[d + ba.size() - rank] : 1, y = d + bb.size() >= rank ? bb[d + bb.size() - rank] : 1;
      if (x != y && x != 1 && y != 1) fail("INVALID_INPUT", "layer '" + L.op->name + "': batch dims do not broadcast");
      bo.push_back(std::max(x, y));
    }
    if (out[0].numel() != numel(bo) * M * N) fail("INTERNAL", "layer '" + L.op->name + "': output size mismatch");
    std::vector<int32_t> A = as_int32(L, in[0]), B = as_int32(L, in[1]);
    Param azp = param(L, in, 2, M, 0, "a_zero_point"), bzp = param(L, in, 3, N, 0, "b_zero_point");
    bool rq = L.op->i("requant") != 0;
    Output o{L, out[0], rq, param(L, in, 4, M, 1, "a_scale"), param(L, in, 5, N, 1, "b_scale"), param(L, in, 6, 1, 1, "y_scale"),
             param(L, in, 7, 1, 0, "y_zero_point")};
    o.check();
    std::vector<int64_t> sa = broadcast_strides(ba, bo), sb = broadcast_strides(bb, bo);
    MultiIndex<2> it(bo);
    it.strides[0] = &sa;
    it.strides[1] = &sb;
    it.seek(0);
    int64_t nb = numel(bo);
    for (int64_t bi = 0; bi < nb; ++bi, it.next()) {
      const int32_t* pa = A.data() + it.off[0] * M * K;
      const int32_t* pb = B.data() + it.off[1] * K * N;
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
          int64_t acc = 0;
          for (int64_t k = 0; k < K; ++k)
            acc += static_cast<int64_t>(pa[m * K + k] - static_cast<int64_t>(azp.at(m))) * (pb[k * N + n] - static_cast<int64_t>(bzp.at(n)));
          o.put((bi * M + m) * N + n, acc, m, n);
        }
    }
  }
};

class QConvRef : public Tactic {
 public:
  const char* name() const override { return "cpu.qconv"; }
  bool reference() const override { return true; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext&) const override {
    const Shape& xs = in[0].shape;
    const Shape& ws = in[1].shape;
    const Shape& os = out[0].shape;
    size_t nsp = xs.size() - 2;
    const auto& strides = L.op->ints("strides");
    const auto& dil = L.op->ints("dilations");
    const auto& pads = L.op->ints("pads");
    int64_t group = L.op->i("group");
    if (xs.size() < 3 || ws.size() != xs.size() || os.size() != xs.size() || strides.size() != nsp || dil.size() != nsp ||
        pads.size() != 2 * nsp || group < 1 || ws[0] % group || ws[1] * group != xs[1] || os[1] != ws[0])
      fail("INVALID_INPUT", "layer '" + L.op->name + "': QConv shapes/attributes do not fit: x " + shape_str(xs) + ", w " + shape_str(ws));
    int64_t OC = ws[0], ICg = ws[1], OCg = OC / group;
    std::vector<int32_t> X = as_int32(L, in[0]), W = as_int32(L, in[1]);
    Param xzp = param(L, in, 2, 1, 0, "x_zero_point"), wzp = param(L, in, 3, OC, 0, "w_zero_point");
    const Tensor* bias = opt(L, in, 8);
    if (bias && bias->numel() != OC) fail("INVALID_INPUT", "layer '" + L.op->name + "': bias must have " + std::to_string(OC) + " elements");
    std::vector<int32_t> B = bias ? as_int32(L, *bias) : std::vector<int32_t>(OC, 0);
    Output o{L, out[0], L.op->i("requant") != 0, param(L, in, 4, 1, 1, "x_scale"), param(L, in, 5, OC, 1, "w_scale"),
             param(L, in, 6, 1, 1, "y_scale"), param(L, in, 7, 1, 0, "y_zero_point")};
    o.check();
    Shape ksp(ws.begin() + 2, ws.end()), osp(os.begin() + 2, os.end()), isp(xs.begin() + 2, xs.end());
    int64_t kn = numel(ksp), on = numel(osp), inn = numel(isp);
    std::vector<int64_t> opos(nsp), kpos(nsp);
    for (int64_t n = 0; n < xs[0]; ++n)
      for (int64_t oc = 0; oc < OC; ++oc) {
        int64_t g = oc / OCg;
        for (int64_t op = 0; op < on; ++op) {
          for (int64_t d = nsp, r = op; d-- > 0;) opos[d] = r % osp[d], r /= osp[d];
          int64_t acc = B[oc];
          for (int64_t kp = 0; kp < kn; ++kp) {
            int64_t ioff = 0;
            bool inside = true;
            for (int64_t d = nsp, r = kp; d-- > 0;) {
              int64_t k = r % ksp[d];
              r /= ksp[d];
              int64_t c = opos[d] * strides[d] - pads[d] + k * dil[d];
              if (c < 0 || c >= isp[d]) inside = false;
              kpos[d] = c;
            }
            if (!inside) continue;  // padding holds the zero point: contributes 0
            for (size_t d = 0; d < nsp; ++d) ioff = ioff * isp[d] + kpos[d];
            for (int64_t ic = 0; ic < ICg; ++ic) {
              int64_t xv = X[((n * xs[1]) + g * ICg + ic) * inn + ioff] - static_cast<int64_t>(xzp.at(0));
              int64_t wv = W[(oc * ICg + ic) * kn + kp] - static_cast<int64_t>(wzp.at(oc));
              acc += xv * wv;
            }
          }
          o.put((n * OC + oc) * on + op, acc, 0, oc);
        }
      }
  }
};

}  // namespace
KILN_REGISTER_TACTIC_EXPR("cpu", "QuantizeLinear", std::make_unique<QuantRef<true>>(false));
KILN_REGISTER_TACTIC_EXPR("cpu", "QuantizeLinear", std::make_unique<QuantRef<true>>(true));
KILN_REGISTER_TACTIC_EXPR("cpu", "DequantizeLinear", std::make_unique<QuantRef<false>>(false));
KILN_REGISTER_TACTIC_EXPR("cpu", "DequantizeLinear", std::make_unique<QuantRef<false>>(true));
KILN_REGISTER_TACTIC("cpu", "DynamicQuantizeLinear", DynamicQuantizeRef);
KILN_REGISTER_TACTIC("cpu", "QMatMul", QMatMulRef);
KILN_REGISTER_TACTIC("cpu", "QConv", QConvRef);
}  // namespace kiln

// Small generators and index-pattern kernels, each a plain loop (they mostly run at compile time,
// folding constants). Variants:
// - Fill (value): every element = value (ConstantOfShape, Dropout's all-true mask).
// - Range (start, delta): out[i] = start + i * delta.
// - EyeLike (k): ones on the k-th diagonal of a 2-D output, zeros elsewhere.
// - Trilu (upper, k; or k from the optional scalar input 1): keeps the upper/lower triangle of the
//   last two dims, zeroes the rest.
// - OneHot (axis, depth): inputs indices and values [off, on]; indices in [-depth, depth) select the
//   'on' position, others give an all-'off' row.
// - CumSum (axis, exclusive, reverse).
// - ReverseSequence (batch_axis, time_axis): reverses the first sequence_lens[b] steps of each batch.
#include <algorithm>
#include <cmath>

#include "kernel_util.h"

namespace kiln {
namespace {

std::string where(const LayerInfo& L) { return "layer '" + L.op->name + "' (" + L.op->kind + ")"; }

// Splits `shape` around `axis` into outer × n × inner.
struct Axis3 {
  int64_t outer = 1, n = 1, inner = 1;
};
Axis3 around(const Shape& s, int64_t axis) {
  Axis3 a;
  for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d) (d < axis ? a.outer : d == axis ? a.n : a.inner) *= s[d];
  return a;
}

int64_t scalar_int(const LayerInfo& L, const Tensor& t) {
  if (t.numel() != 1) fail("INVALID_INPUT", where(L) + ": expected a scalar, got shape " + shape_str(t.shape));
  if (t.dtype == DType::I64) return t.as<int64_t>()[0];
  if (t.dtype == DType::I32) return t.as<int32_t>()[0];
  unsupported_dtype(L, t.dtype);
}

class FillRef : public Tactic {
 public:
  const char* name() const override { return "cpu.fill"; }
  bool reference() const override { return true; }
  void run(const LayerInfo& L, LayerState*, const Tensor*, Tensor* out, RunContext&) const override {
    double v = L.op->f("value");
    dispatch_all(out[0].dtype, L, [&]<typename T>() {
      T x;
      if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) x = static_cast<T>(L.op->has("ivalue") ? L.op->i("ivalue") : static_cast<int64_t>(v));
      else store(x, v);
      std::fill_n(out[0].as<T>(), out[0].numel(), x);
    });
  }
};

class RangeRef : public Tactic {
 public:
  const char* name() const override { return "cpu.range"; }
  bool reference() const override { return true; }
  void run(const LayerInfo& L, LayerState*, const Tensor*, Tensor* out, RunContext&) const override {
    double start = L.op->f("start"), delta = L.op->f("delta");
    dispatch_numeric(out[0].dtype, L, [&]<typename T>() {
      T* o = out[0].as<T>();
      using C = compute_t<T>;
      // accumulate in the output's own type, as the ONNX definition (a loop adding delta) does
      C acc = static_cast<C>(start), d = static_cast<C>(delta);
      for (int64_t i = 0; i < out[0].numel(); ++i) {
        store(o[i], acc);
        acc = static_cast<C>(acc + d);
      }
    });
  }
};

class EyeLikeRef : public Tactic {
 public:
  const char* name() const override { return "cpu.eye_like"; }
  bool reference() const override { return true; }
  void run(const LayerInfo& L, LayerState*, const Tensor*, Tensor* out, RunContext&) const override {
    int64_t k = L.op->i("k");
    const Shape& s = out[0].shape;
    if (s.size() != 2) fail("INTERNAL", where(L) + ": output must be 2-D");
    dispatch_all(out[0].dtype, L, [&]<typename T>() {
      T* o = out[0].as<T>();
      T zero{}, one{};
      store(zero, 0);
      store(one, 1);
      for (int64_t i = 0; i < s[0]; ++i)
        for (int64_t j = 0; j < s[1]; ++j) o[i * s[1] + j] = j - i == k ? one : zero;
    });
  }
};

class TriluRef : public Tactic {
 public:
  const char* name() const override { return "cpu.trilu"; }
  bool reference() const override { return true; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext&) const override {
    bool upper = L.op->i("upper") != 0;
    int64_t k = L.in.size() > 1 && in[1].data ? scalar_int(L, in[1]) : L.op->i("k");
    const Shape& s = in[0].shape;
    if (s.size() < 2) fail("INVALID_INPUT", where(L) + ": input must have rank >= 2, got " + shape_str(s));
    int64_t rows = s[s.size() - 2], cols = s.back();
    int64_t mats = rows * cols != 0 ? in[0].numel() / (rows * cols) : 0;
    dispatch_all(in[0].dtype, L, [&]<typename T>() {
      const T* x = in[0].as<T>();
      T* o = out[0].as<T>();
      T zero{};
      store(zero, 0);
      for (int64_t m = 0; m < mats; ++m)
        for (int64_t i = 0; i < rows; ++i)
          for (int64_t j = 0; j < cols; ++j) {
            int64_t p = (m * rows + i) * cols + j;
            bool keep = upper ? j - i >= k : j - i <= k;
            o[p] = keep ? x[p] : zero;
          }
    });
  }
};

class OneHotRef : public Tactic {
 public:
  const char* name() const override { return "cpu.one_hot"; }
  bool reference() const override { return true; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext&) const override {
    int64_t axis = L.op->i("axis"), depth = L.op->i("depth");
    if (in[1].numel() != 2) fail("INVALID_INPUT", where(L) + ": 'values' must hold 2 elements [off, on], got " + std::to_string(in[1].numel()));
    std::vector<int64_t> idx(static_cast<size_t>(in[0].numel()));
    dispatch_numeric(in[0].dtype, L, [&]<typename I>() {
      const I* p = in[0].as<I>();
      for (size_t i = 0; i < idx.size(); ++i) {
        double x = static_cast<double>(load(p[i]));
        int64_t v = std::isfinite(x) ? static_cast<int64_t>(x) : depth;
        if (v < 0) v += depth;
        idx[i] = v >= 0 && v < depth ? v : -1;
      }
    });
    Axis3 a = around(out[0].shape, axis);
    dispatch_all(out[0].dtype, L, [&]<typename T>() {
      const T* vals = in[1].as<T>();
      T* o = out[0].as<T>();
      std::fill_n(o, out[0].numel(), vals[0]);
      for (int64_t b = 0; b < a.outer; ++b)
        for (int64_t i = 0; i < a.inner; ++i) {
          int64_t v = idx[b * a.inner + i];
          if (v >= 0) o[(b * a.n + v) * a.inner + i] = vals[1];
        }
    });
  }
};

class CumSumRef : public Tactic {
 public:
  const char* name() const override { return "cpu.cumsum"; }
  bool reference() const override { return true; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext&) const override {
    Axis3 a = around(in[0].shape, L.op->i("axis"));
    bool exclusive = L.op->i("exclusive") != 0, reverse = L.op->i("reverse") != 0;
    dispatch_numeric(in[0].dtype, L, [&]<typename T>() {
      using C = compute_t<T>;
      const T* x = in[0].as<T>();
      T* o = out[0].as<T>();
      for (int64_t b = 0; b < a.outer; ++b)
        for (int64_t i = 0; i < a.inner; ++i) {
          C acc = 0;
          for (int64_t t = 0; t < a.n; ++t) {
            int64_t j = reverse ? a.n - 1 - t : t;
            int64_t p = (b * a.n + j) * a.inner + i;
            C v = load(x[p]);
            if (exclusive) {
              store(o[p], acc);
              acc = static_cast<C>(acc + v);
            } else {
              acc = static_cast<C>(acc + v);
              store(o[p], acc);
            }
          }
        }
    });
  }
};

class ReverseSequenceRef : public Tactic {
 public:
  const char* name() const override { return "cpu.reverse_sequence"; }
  bool reference() const override { return true; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext&) const override {
    const Shape& s = in[0].shape;
    int64_t ba = L.op->i("batch_axis"), ta = L.op->i("time_axis");
    int64_t nb = s[ba], nt = s[ta];
    if (in[1].numel() != nb)
      fail("INVALID_INPUT", where(L) + ": sequence_lens has " + std::to_string(in[1].numel()) + " entries for a batch of " + std::to_string(nb));
    std::vector<int64_t> lens(static_cast<size_t>(nb));
    for (int64_t b = 0; b < nb; ++b) {
      lens[b] = in[1].dtype == DType::I32 ? in[1].as<int32_t>()[b] : in[1].as<int64_t>()[b];
      if (lens[b] < 0 || lens[b] > nt)
        fail("INVALID_INPUT", where(L) + ": sequence_lens[" + std::to_string(b) + "] = " + std::to_string(lens[b]) + " is out of range [0, " +
                                  std::to_string(nt) + "]");
    }
    std::vector<int64_t> st = strides_of(s), idx(s.size(), 0);
    size_t es = dtype_size(in[0].dtype);
    const uint8_t* x = static_cast<const uint8_t*>(in[0].data);
    uint8_t* o = static_cast<uint8_t*>(out[0].data);
    int64_t n = in[0].numel();
    for (int64_t p = 0; p < n; ++p) {
      int64_t lin = p, src = 0;
      for (int64_t d = static_cast<int64_t>(s.size()) - 1; d >= 0; --d) {
        idx[d] = lin % s[d];
        lin /= s[d];
      }
      int64_t t = idx[ta], len = lens[idx[ba]];
      for (size_t d = 0; d < s.size(); ++d) src += (static_cast<int64_t>(d) == ta && t < len ? len - 1 - t : idx[d]) * st[d];
      std::memcpy(o + p * es, x + src * es, es);
    }
  }
};

}  // namespace
KILN_REGISTER_TACTIC("cpu", "Fill", FillRef);
KILN_REGISTER_TACTIC("cpu", "Range", RangeRef);
KILN_REGISTER_TACTIC("cpu", "EyeLike", EyeLikeRef);
KILN_REGISTER_TACTIC("cpu", "Trilu", TriluRef);
KILN_REGISTER_TACTIC("cpu", "OneHot", OneHotRef);
KILN_REGISTER_TACTIC("cpu", "CumSum", CumSumRef);
KILN_REGISTER_TACTIC("cpu", "ReverseSequence", ReverseSequenceRef);
}  // namespace kiln

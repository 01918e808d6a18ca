// Unary: element-wise functions of one tensor (abs, exp, the trigonometric family, activations, Clip,
// IsNaN/IsInf, Not, BitwiseNot). The operation is attribute `op`; its parameters are `alpha`, `beta`,
// `gamma`. Clip's bounds are alpha/beta unless inputs 1/2 (scalars) are present at run time.
// Variants: the reference (one loop, the operation chosen per element; every element type ONNX allows:
// float types compute in float, double in double, integer types exactly or through double) and a
// threaded float32/float64 tactic with the operation hoisted out of the loop, so each loop body is
// one inlined function (the simple ones vectorize).
#include <algorithm>
#include <limits>
#include <utility>

#include "kernel_util.h"
#include "unary_math.h"

namespace kiln {
namespace {

using namespace unary;

Op parse_op(const LayerInfo& L) { return unary::parse(L.op->s("op"), L.op->name); }

// Ops defined on integers exactly; the other numeric ops on integer inputs (Erf, Shrink) go through double.
bool int_exact(Op op) {
  return op == Op::Abs || op == Op::Neg || op == Op::Sign || op == Op::Relu || op == Op::Clip || op == Op::BitwiseNot;
}
bool bool_result(Op op) { return op == Op::IsNaN || op == Op::IsInf; }

struct Params {
  double alpha = 0, beta = 0, gamma = 0;
  bool has_min = false, has_max = false;  // Clip
};

template <typename C>
inline bool eval_bool(Op op, C x, const Params& p) {
  if (op == Op::IsNaN) return std::isnan(x);
  return std::isinf(x) && ((x < 0 && p.alpha != 0) || (x > 0 && p.beta != 0));
}

template <typename T>
inline T neg_wrap(T x) {
  using U = std::make_unsigned_t<T>;
  return static_cast<T>(static_cast<U>(U(0) - static_cast<U>(x)));
}

// Integer ops that are exact on T. Clip's bounds come already converted to T.
template <typename T>
inline T eval_int(Op op, T x, T lo, T hi) {
  switch (op) {
    // negation through the unsigned type: wraps (the minimum stays itself) instead of overflowing
    case Op::Abs:
      if constexpr (std::is_signed_v<T>) return x < 0 ? neg_wrap(x) : x;
      else return x;
    case Op::Neg: return neg_wrap(x);
    case Op::Sign: return static_cast<T>((x > T(0)) - (x < T(0)));
    case Op::Relu: return x < T(0) ? T(0) : x;
    case Op::BitwiseNot: return static_cast<T>(~x);
    case Op::Clip: {
      T v = x < lo ? lo : x;
      return v > hi ? hi : v;
    }
    default: return x;
  }
}

// A double bound (±inf for none) as T, saturating.
template <typename T>
T clamp_to(double v) {
  if (std::isnan(v)) return T(0);
  if (v <= static_cast<double>(std::numeric_limits<T>::lowest())) return std::numeric_limits<T>::lowest();
  if (v >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
  return static_cast<T>(v);
}

struct State : LayerState {
  Op op{};
  Params p;
};

// Clip's bounds for this run: inputs 1/2 when present, else alpha/beta when hasMin/hasMax, else none.
template <typename T>
void clip_bounds(const Tensor* in, size_t nin, T& lo, T& hi, const Params& p) {
  double a = p.has_min ? p.alpha : -INFINITY, b = p.has_max ? p.beta : INFINITY;
  if constexpr (std::is_integral_v<T>) {
    lo = clamp_to<T>(a);
    hi = clamp_to<T>(b);
  } else {
    store(lo, a);
    store(hi, b);
  }
  if (nin > 1 && in[1].data && in[1].numel() >= 1) lo = in[1].as<T>()[0];
  if (nin > 2 && in[2].data && in[2].numel() >= 1) hi = in[2].as<T>()[0];
}

void check_layer(const LayerInfo& L, const Tensor* in, const Tensor* out) {
  if (in[0].numel() != out[0].numel())
    fail("INTERNAL", "layer '" + L.op->name + "': Unary output has " + std::to_string(out[0].numel()) + " elements, input " +
                         std::to_string(in[0].numel()));
  for (size_t k = 1; k < L.in.size() && k < 3; ++k)
    if (in[k].data && in[k].numel() != 1)
      fail("INVALID_INPUT", "layer '" + L.op->name + "': Clip bound input " + std::to_string(k) + " must hold one element, has " +
                                std::to_string(in[k].numel()));
}

std::unique_ptr<LayerState> prepare_state(const LayerInfo& L) {
  auto st = std::make_unique<State>();
  st->op = parse_op(L);
  st->p.alpha = L.op->f("alpha");
  st->p.beta = L.op->f("beta");
  st->p.gamma = L.op->f("gamma");
  if (st->op == Op::Clip) {
    st->p.has_min = L.op->i("hasMin") != 0;
    st->p.has_max = L.op->i("hasMax") != 0;
  }
  return st;
}

class UnaryRef : public Tactic {
 public:
  const char* name() const override { return "cpu.unary"; }
  bool reference() const override { return true; }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = prepare_state(L);
    Op op = static_cast<State*>(st.get())->op;
    DType t = L.in[0]->dtype;
    bool is_float = t == DType::F32 || t == DType::F64 || t == DType::F16 || t == DType::BF16;
    bool ok = op == Op::Not ? t == DType::Bool
              : op == Op::BitwiseNot ? !is_float && t != DType::Bool
              : bool_result(op) ? is_float
                                : t != DType::Bool;
    if (!ok) fail("UNSUPPORTED", "layer '" + L.op->name + "': Unary op '" + L.op->s("op") + "' does not take " + dtype_name(t));
    return st;
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext&) const override {
    const State& st = *static_cast<State*>(s);
    check_layer(L, in, out);
    const Op op = st.op;
    const Params& p = st.p;
    int64_t n = in[0].numel();
    if (op == Op::Not) {
      const bool* x = in[0].as<bool>();
      bool* y = out[0].as<bool>();
      for (int64_t i = 0; i < n; ++i) y[i] = !x[i];
      return;
    }
    if (bool_result(op)) {
      dispatch_float(in[0].dtype, L, [&]<typename T>() {
        const T* x = in[0].as<T>();
        bool* y = out[0].as<bool>();
        for (int64_t i = 0; i < n; ++i) y[i] = eval_bool<compute_t<T>>(op, load(x[i]), p);
      });
      return;
    }
    dispatch_numeric(in[0].dtype, L, [&]<typename T>() {
      const T* x = in[0].as<T>();
      T* y = out[0].as<T>();
      T lo{}, hi{};
      clip_bounds<T>(in, L.in.size(), lo, hi, p);
      if constexpr (std::is_integral_v<T>) {
        if (int_exact(op)) {
          for (int64_t i = 0; i < n; ++i) y[i] = eval_int<T>(op, x[i], lo, hi);
        } else {
          for (int64_t i = 0; i < n; ++i) {
            double r = eval_float<double>(op, static_cast<double>(x[i]), p.alpha, p.beta, p.gamma);
            y[i] = clamp_to<T>(std::trunc(r));
          }
        }
      } else {
        using C = compute_t<T>;
        C a = static_cast<C>(p.alpha), b = static_cast<C>(p.beta), g = static_cast<C>(p.gamma);
        if (op == Op::Clip) a = load(lo), b = load(hi);
        for (int64_t i = 0; i < n; ++i) store(y[i], eval_float<C>(op, load(x[i]), a, b, g));
      }
    });
  }
};

// Calls f.template operator()<O>() with O the compile-time constant equal to `op`.
template <typename F, size_t... I>
void with_op_impl(Op op, F&& f, std::index_sequence<I...>) {
  (void)((op == static_cast<Op>(I) ? (f.template operator()<static_cast<Op>(I)>(), true) : false) || ...);
}
template <typename F>
void with_op(Op op, F&& f) {
  with_op_impl(op, std::forward<F>(f), std::make_index_sequence<static_cast<size_t>(Op::Count)>{});
}

class UnaryThreaded : public Tactic {
 public:
  const char* name() const override { return "cpu.unary.threaded"; }
  bool can_implement(const LayerInfo& L) const override {
    DType t = L.in[0]->dtype;
    Op op = parse_op(L);
    return (t == DType::F32 || t == DType::F64) && !bool_result(op) && op != Op::Not && op != Op::BitwiseNot;
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override { return prepare_state(L); }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const State& st = *static_cast<State*>(s);
    check_layer(L, in, out);
    int64_t n = in[0].numel();
    auto go = [&]<typename C>() {
      const C* x = in[0].as<C>();
      C* y = out[0].as<C>();
      C a = static_cast<C>(st.p.alpha), b = static_cast<C>(st.p.beta), g = static_cast<C>(st.p.gamma);
      if (st.op == Op::Clip) clip_bounds<C>(in, L.in.size(), a, b, st.p);
      with_op(st.op, [&]<Op O>() {
        ctx.pool->parallel_for(n, 16384, [&](int64_t b0, int64_t e) {
          for (int64_t i = b0; i < e; ++i) y[i] = eval_float<C>(O, x[i], a, b, g);
        });
      });
    };
    if (in[0].dtype == DType::F32) go.template operator()<float>();
    else go.template operator()<double>();
  }
};

}  // namespace
KILN_REGISTER_TACTIC("cpu", "Unary", UnaryRef);
KILN_REGISTER_TACTIC("cpu", "Unary", UnaryThreaded);
}  // namespace kiln

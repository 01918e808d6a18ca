// Softmax family along one axis of the input viewed as [outer, n, inner] (TS computes the view: the
// opset < 13 ops coerce the input to 2-D at `axis`, which is the view [outer, prod(dims[axis:]), 1]).
// Kind 'Softmax', attr `op`: 'Softmax', 'LogSoftmax' or 'Hardmax' (1 at the first maximum, 0
// elsewhere). Variants: the reference (serial, one group at a time) and 'cpu.softmax.rows', threaded
// over groups, for the common inner == 1 case (contiguous rows).
#include <algorithm>
#include <limits>

#include "kernel_util.h"

namespace kiln {
namespace {

enum class Op { Softmax, LogSoftmax, Hardmax };

struct State : LayerState {
  Op op;
  int64_t outer, n, inner;
};

std::unique_ptr<LayerState> make_state(const LayerInfo& L) {
  auto st = std::make_unique<State>();
  const std::string& s = L.op->s("op");
  if (s == "Softmax") st->op = Op::Softmax;
  else if (s == "LogSoftmax") st->op = Op::LogSoftmax;
  else if (s == "Hardmax") st->op = Op::Hardmax;
  else fail("INTERNAL", "layer '" + L.op->name + "': unknown Softmax op '" + s + "'");
  st->outer = L.op->i("outer");
  st->n = L.op->i("n");
  st->inner = L.op->i("inner");
  if (st->outer * st->n * st->inner != L.in[0]->numel())
    fail("INTERNAL", "layer '" + L.op->name + "': view [outer, n, inner] does not match " + shape_str(L.in[0]->shape));
  return st;
}

// One group: n elements at stride `step`.
template <typename T>
void group(Op op, const T* x, T* y, int64_t n, int64_t step) {
  using C = compute_t<T>;
  if (n == 0) return;
  double m = -std::numeric_limits<double>::infinity();
  int64_t arg = 0;
  for (int64_t i = 0; i < n; ++i) {
    double v = static_cast<double>(load(x[i * step]));
    if (i == 0 || v > m) {
      m = v;
      arg = i;
    }
  }
  if (op == Op::Hardmax) {
    for (int64_t i = 0; i < n; ++i) store(y[i * step], static_cast<C>(i == arg ? 1 : 0));
    return;
  }
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(load(x[i * step])) - m);
  if (op == Op::Softmax) {
    for (int64_t i = 0; i < n; ++i) store(y[i * step], std::exp(static_cast<double>(load(x[i * step])) - m) / sum);
  } else {
    double ls = std::log(sum);
    for (int64_t i = 0; i < n; ++i) store(y[i * step], static_cast<double>(load(x[i * step])) - m - ls);
  }
}

class SoftmaxRef : public Tactic {
 public:
  const char* name() const override { return "cpu.softmax"; }
  bool reference() const override { return true; }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override { return make_state(L); }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext&) const override {
    const State& st = *static_cast<State*>(s);
    dispatch_float(in[0].dtype, L, [&]<typename T>() {
      const T* x = in[0].as<T>();
      T* y = out[0].as<T>();
      for (int64_t o = 0; o < st.outer; ++o)
        for (int64_t j = 0; j < st.inner; ++j) {
          int64_t off = o * st.n * st.inner + j;
          group<T>(st.op, x + off, y + off, st.n, st.inner);
        }
    });
  }
};

// Contiguous rows (inner == 1), threaded over rows, float accumulation for float32.
class SoftmaxRows : public Tactic {
 public:
  const char* name() const override { return "cpu.softmax.rows"; }
  bool can_implement(const LayerInfo& L) const override { return L.op->i("inner") == 1; }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override { return make_state(L); }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const State& st = *static_cast<State*>(s);
    int64_t n = st.n;
    if (n == 0 || st.outer == 0) return;
    dispatch_float(in[0].dtype, L, [&]<typename T>() {
      const T* x = in[0].as<T>();
      T* y = out[0].as<T>();
      ctx.pool->parallel_for(st.outer, grain_for(n * 4), [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; ++o) {
          if constexpr (std::is_same_v<T, float>) {
            if (st.op != Op::Hardmax) {
              const float* xr = x + o * n;
              float* yr = y + o * n;
              float m = xr[0];
              for (int64_t i = 1; i < n; ++i) m = xr[i] > m ? xr[i] : m;
              float sum = 0;
              if (st.op == Op::Softmax) {
                for (int64_t i = 0; i < n; ++i) sum += (yr[i] = std::exp(xr[i] - m));
                float inv = 1.0f / sum;
                for (int64_t i = 0; i < n; ++i) yr[i] *= inv;
              } else {
                for (int64_t i = 0; i < n; ++i) sum += std::exp(xr[i] - m);
                float ls = m + std::log(sum);
                for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] - ls;
              }
              continue;
            }
          }
          group<T>(st.op, x + o * n, y + o * n, n, 1);
        }
      });
    });
  }
};

}  // namespace
KILN_REGISTER_TACTIC("cpu", "Softmax", SoftmaxRef);
KILN_REGISTER_TACTIC("cpu", "Softmax", SoftmaxRows);
}  // namespace kiln

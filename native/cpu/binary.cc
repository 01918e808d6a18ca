// Binary: element-wise ops over two or more inputs with numpy broadcasting (Add, Sub, Mul, Div, Pow,
// Mod, Max, Min, Mean, PRelu, bit ops, logic ops, comparisons). With more than two inputs the op folds
// left to right (Mean divides at the end). Variants: a contiguous same-shape path, a scalar-operand
// path, and a general strided walk; inputs of mixed element types (Pow's exponent) go through double.
#include <algorithm>

#include "binary_math.h"
#include "kernel_util.h"

namespace kiln {
namespace {

using namespace binary;

Op parse_op(const LayerInfo& L) { return binary::parse(L.op->s("op"), L.op->i("right", 0) != 0, L.op->name); }

bool is_compare(Op op) { return op == Op::Eq || op == Op::Gt || op == Op::Lt || op == Op::Ge || op == Op::Le; }

template <typename C>
inline bool compare(Op op, C a, C b) {
  switch (op) {
    case Op::Eq: return a == b;
    case Op::Gt: return a > b;
    case Op::Lt: return a < b;
    case Op::Ge: return a >= b;
    default: return a <= b;
  }
}

struct State : LayerState {
  Op op;
  bool fmod_mode;
  std::vector<std::vector<int64_t>> strides;  // per input, broadcast to the output
  std::vector<bool> full;                     // input has the output's shape (contiguous)
  std::vector<bool> scalar;                   // input has one element
  bool mixed = false;                         // inputs of different element types
};

// out = f(a, b) over the output index space, one pair at a time.
template <typename T, typename R, typename F>
void pairwise(const Tensor& a, const Tensor& b, Tensor& out, const State& st, int ai, int bi, RunContext& ctx, F f) {
  const T* pa = a.as<T>();
  const T* pb = b.as<T>();
  R* po = out.as<R>();
  int64_t n = out.numel();
  if ((st.full[ai] || st.scalar[ai]) && (st.full[bi] || st.scalar[bi])) {
    int64_t sa = st.scalar[ai] && !st.full[ai] ? 0 : 1, sb = st.scalar[bi] && !st.full[bi] ? 0 : 1;
    ctx.pool->parallel_for(n, 16384, [&](int64_t b0, int64_t e) {
      for (int64_t i = b0; i < e; ++i) f(po[i], pa[i * sa], pb[i * sb]);
    });
    return;
  }
  const Shape& shape = out.shape;
  int64_t inner = shape.empty() ? 1 : shape.back();
  int64_t rows = inner ? n / inner : 0;
  ctx.pool->parallel_for(rows, grain_for(inner), [&](int64_t r0, int64_t r1) {
    MultiIndex<2> it(shape);
    it.strides[0] = &st.strides[ai];
    it.strides[1] = &st.strides[bi];
    it.seek(r0 * inner);
    int64_t ia = st.strides[ai].empty() ? 0 : st.strides[ai].back(), ib = st.strides[bi].empty() ? 0 : st.strides[bi].back();
    for (int64_t r = r0; r < r1; ++r) {
      const T* ra = pa + it.off[0];
      const T* rb = pb + it.off[1];
      R* ro = po + r * inner;
      for (int64_t j = 0; j < inner; ++j) f(ro[j], ra[j * ia], rb[j * ib]);
      if (shape.size() >= 2) {
        // advance to the next row: move the walker by `inner` elements at once
        it.idx.back() = inner - 1;
        it.off[0] += (inner - 1) * ia;
        it.off[1] += (inner - 1) * ib;
        it.next();
      }
    }
  });
}

class BinaryRef : public Tactic {
 public:
  const char* name() const override { return "cpu.binary"; }
  bool reference() const override { return true; }
  bool can_implement(const LayerInfo& L) const override { return L.in.size() >= 2; }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = std::make_unique<State>();
    st->op = parse_op(L);
    st->fmod_mode = L.op->i("fmod", 0) != 0;
    const Shape& os = L.out[0]->shape;
    for (auto* t : L.in) {
      st->strides.push_back(broadcast_strides(t->shape, os));
      st->full.push_back(t->shape == os);
      st->scalar.push_back(t->numel() == 1);
      st->mixed |= t->dtype != L.in[0]->dtype;
    }
    // the accumulator (the output) is read back as the left operand of later steps
    st->strides.push_back(strides_of(os));
    st->full.push_back(true);
    st->scalar.push_back(false);
    return st;
  }
  size_t workspace(const LayerInfo& L) const override {
    // comparisons of more than two inputs never occur; a mixed-type op needs a double scratch copy
    return 0;
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const State& st = *static_cast<State*>(s);
    Tensor& o = out[0];
    int nin = static_cast<int>(L.in.size());
    int acc = nin;  // index of the accumulator's stride entry
    if (st.mixed) return run_mixed(L, st, in, o, ctx);
    DType t = in[0].dtype;
    if (is_compare(st.op)) {
      dispatch_all(t, L, [&]<typename T>() {
        pairwise<T, bool>(in[0], in[1], o, st, 0, 1, ctx, [&](bool& r, const T& x, const T& y) {
          r = compare<compute_t<T>>(st.op, load(x), load(y));
        });
      });
      return;
    }
    dispatch_all(t, L, [&]<typename T>() {
      using C = compute_t<T>;
      Op op = st.op;
      bool fm = st.fmod_mode;
      pairwise<T, T>(in[0], in[1], o, st, 0, 1, ctx, [&](T& r, const T& x, const T& y) { store(r, apply<C>(op, load(x), load(y), fm)); });
      for (int k = 2; k < nin; ++k)
        pairwise<T, T>(o, in[k], o, st, acc, k, ctx, [&](T& r, const T& x, const T& y) { store(r, apply<C>(op, load(x), load(y), fm)); });
      if (op == Op::Mean) {
        T* p = o.as<T>();
        int64_t n = o.numel();
        for (int64_t i = 0; i < n; ++i) store(p[i], load(p[i]) / static_cast<C>(nin));
      }
    });
  }

 private:
  // Inputs of different types (Pow with an integer exponent, say): each element through double.
  void run_mixed(const LayerInfo& L, const State& st, const Tensor* in, Tensor& o, RunContext& ctx) const {
    int nin = static_cast<int>(L.in.size());
    std::vector<std::vector<double>> vals(nin);
    for (int k = 0; k < nin; ++k) {
      vals[k].resize(in[k].numel());
      dispatch_all(in[k].dtype, L, [&]<typename T>() {
        const T* p = in[k].as<T>();
        for (int64_t i = 0; i < in[k].numel(); ++i) vals[k][i] = static_cast<double>(load(p[i]));
      });
    }
    int64_t n = o.numel();
    MultiIndex<2> it(o.shape);
    it.strides[0] = &st.strides[0];
    it.strides[1] = &st.strides[1];
    it.seek(0);
    dispatch_all(o.dtype, L, [&]<typename T>() {
      T* po = o.as<T>();
      for (int64_t i = 0; i < n; ++i, it.next()) {
        double r = apply<double>(st.op, vals[0][it.off[0]], vals[1][it.off[1]], st.fmod_mode);
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) po[i] = static_cast<T>(std::llround(r));
        else store(po[i], r);
      }
    });
  }
};

}  // namespace
KILN_REGISTER_TACTIC("cpu", "Binary", BinaryRef);
}  // namespace kiln

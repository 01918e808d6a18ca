// Reductions. Kind 'Reduce' (attr `op`: Sum, Mean, Max, Min, Prod, L1, L2, LogSum, LogSumExp,
// SumSquare; attr `axes`: the reduced axes of the input, sorted, unique, non-empty) and kind
// 'ArgReduce' (ArgMax/ArgMin: attrs `op` 'max'|'min', `axis`, `select_last`; int64 output).
// keepdims only changes the output's shape, not its element order, so the kernels never see it.
// Variants: the reference walks every output's reduction group with an odometer over the reduced
// axes; 'cpu.reduce.block' applies when the reduced axes are one contiguous block of the shape (after
// dropping size-1 dims), views the input as [outer, R, inner] and runs threaded.
// Empty reductions give the identity of the op: 0 for sums, 1 for Prod, the lowest/highest value for
// Max/Min, -inf for LogSum/LogSumExp, NaN (floats) or 0 (integers) for Mean.
#include <algorithm>
#include <limits>

#include "kernel_util.h"

namespace kiln {
namespace {

enum class Op { Sum, Mean, Max, Min, Prod, L1, L2, LogSum, LogSumExp, SumSquare };

Op parse_op(const LayerInfo& L) {
  const std::string& s = L.op->s("op");
  static const std::pair<const char*, Op> names[] = {
      {"Sum", Op::Sum}, {"Mean", Op::Mean}, {"Max", Op::Max}, {"Min", Op::Min}, {"Prod", Op::Prod},
      {"L1", Op::L1}, {"L2", Op::L2}, {"LogSum", Op::LogSum}, {"LogSumExp", Op::LogSumExp}, {"SumSquare", Op::SumSquare}};
  for (auto& [n, op] : names)
    if (s == n) return op;
  fail("INTERNAL", "layer '" + L.op->name + "': unknown Reduce op '" + s + "'");
}

// The accumulator type of element type T: double for floating types, 64-bit integers otherwise.
template <typename C>
using acc_t = std::conditional_t<std::is_floating_point_v<C>, double,
                                 std::conditional_t<std::is_signed_v<C> || std::is_same_v<C, bool>, int64_t, uint64_t>>;

// Reduces one group. `each(f)` calls f(x) with every element (as compute_t<T>) of the group.
template <typename T, typename Each>
inline void reduce_group(Op op, int64_t count, const Each& each, T& out) {
  using C = compute_t<T>;
  using A = acc_t<C>;
  constexpr bool fl = std::is_floating_point_v<C>;
  switch (op) {
    case Op::Sum: case Op::Mean: {
      A a = 0;
      each([&](C x) { a += static_cast<A>(x); });
      if (op == Op::Mean) {
        if (count == 0) return store(out, fl ? std::numeric_limits<double>::quiet_NaN() : 0.0);
        a = a / static_cast<A>(count);
      }
      return store(out, a);
    }
    case Op::Prod: {
      A a = 1;
      each([&](C x) { a *= static_cast<A>(x); });
      return store(out, a);
    }
    case Op::Max: case Op::Min: {
      bool mx = op == Op::Max;
      C a = fl ? (mx ? -std::numeric_limits<C>::infinity() : std::numeric_limits<C>::infinity())
               : (mx ? std::numeric_limits<C>::lowest() : std::numeric_limits<C>::max());
      bool nan = false;
      each([&](C x) {
        if constexpr (fl) nan |= std::isnan(x);
        if (mx ? x > a : x < a) a = x;
      });
      if constexpr (fl)
        if (nan) a = std::numeric_limits<C>::quiet_NaN();
      return store(out, a);
    }
    case Op::L1: {
      A a = 0;
      each([&](C x) {
        if constexpr (std::is_unsigned_v<C>) a += x;
        else a += static_cast<A>(x < 0 ? -x : x);
      });
      return store(out, a);
    }
    case Op::SumSquare: case Op::L2: {
      A a = 0;
      each([&](C x) { a += static_cast<A>(x) * static_cast<A>(x); });
      if (op == Op::L2) return store(out, std::sqrt(static_cast<double>(a)));
      return store(out, a);
    }
    case Op::LogSum: {
      double a = 0;
      each([&](C x) { a += static_cast<double>(x); });
      return store(out, std::log(a));
    }
    case Op::LogSumExp: {
      double m = -std::numeric_limits<double>::infinity();
      each([&](C x) { m = std::max(m, static_cast<double>(x)); });
      if (std::isinf(m)) return store(out, m);  // empty, or an infinite element
      double a = 0;
      each([&](C x) { a += std::exp(static_cast<double>(x) - m); });
      return store(out, m + std::log(a));
    }
  }
}

struct Dims {
  std::vector<int64_t> kdim, kstride, rdim, rstride;  // kept and reduced axes of the input
  int64_t rcount = 1;
};

Dims split_axes(const LayerInfo& L) {
  const Shape& s = L.in[0]->shape;
  std::vector<int64_t> st = strides_of(s);
  std::vector<bool> red(s.size(), false);
  for (int64_t a : L.op->ints("axes")) {
    if (a < 0 || a >= static_cast<int64_t>(s.size()))
      fail("INTERNAL", "layer '" + L.op->name + "': reduce axis " + std::to_string(a) + " out of range for " + shape_str(s));
    red[a] = true;
  }
  Dims d;
  for (size_t k = 0; k < s.size(); ++k) {
    if (red[k]) {
      d.rdim.push_back(s[k]);
      d.rstride.push_back(st[k]);
      d.rcount *= s[k];
    } else {
      d.kdim.push_back(s[k]);
      d.kstride.push_back(st[k]);
    }
  }
  return d;
}

struct ReduceState : LayerState {
  Op op;
  Dims d;
  int64_t outer = 1, r = 1, inner = 1;  // block view (cpu.reduce.block)
};

class ReduceRef : public Tactic {
 public:
  const char* name() const override { return "cpu.reduce"; }
  bool reference() const override { return true; }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = std::make_unique<ReduceState>();
    st->op = parse_op(L);
    st->d = split_axes(L);
    return st;
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext&) const override {
    const ReduceState& st = *static_cast<ReduceState*>(s);
    const Dims& d = st.d;
    int64_t nout = out[0].numel();
    int nr = static_cast<int>(d.rdim.size()), nk = static_cast<int>(d.kdim.size());
    dispatch_all(in[0].dtype, L, [&]<typename T>() {
      const T* p = in[0].as<T>();
      T* po = out[0].as<T>();
      std::vector<int64_t> idx(nr);
      for (int64_t o = 0; o < nout; ++o) {
        int64_t base = 0, t = o;
        for (int k = nk - 1; k >= 0; --k) {
          base += (t % d.kdim[k]) * d.kstride[k];
          t /= d.kdim[k];
        }
        auto each = [&](auto f) {
          if (d.rcount == 0) return;
          std::fill(idx.begin(), idx.end(), 0);
          int64_t off = base;
          for (int64_t i = 0; i < d.rcount; ++i) {
            f(load(p[off]));
            for (int k = nr - 1; k >= 0; --k) {
              if (++idx[k] < d.rdim[k]) {
                off += d.rstride[k];
                break;
              }
              off -= (d.rdim[k] - 1) * d.rstride[k];
              idx[k] = 0;
            }
          }
        };
        reduce_group(st.op, d.rcount, each, po[o]);
      }
    });
  }
};

class ReduceBlock : public Tactic {
 public:
  const char* name() const override { return "cpu.reduce.block"; }
  // The reduced axes (ignoring size-1 dims) form one contiguous run of the shape.
  static bool block(const LayerInfo& L, int64_t& outer, int64_t& r, int64_t& inner) {
    const Shape& s = L.in[0]->shape;
    std::vector<bool> red(s.size(), false);
    for (int64_t a : L.op->ints("axes"))
      if (a >= 0 && a < static_cast<int64_t>(s.size())) red[a] = true;
    int phase = 0;  // 0: before the block, 1: in it, 2: after it
    outer = r = inner = 1;
    for (size_t k = 0; k < s.size(); ++k) {
      if (s[k] == 1) continue;
      if (red[k]) {
        if (phase == 2) return false;
        phase = 1;
        r *= s[k];
      } else {
        if (phase == 1) phase = 2;
        (phase == 0 ? outer : inner) *= s[k];
      }
    }
    return true;
  }
  bool can_implement(const LayerInfo& L) const override {
    int64_t o, r, i;
    return block(L, o, r, i);
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = std::make_unique<ReduceState>();
    st->op = parse_op(L);
    block(L, st->outer, st->r, st->inner);
    return st;
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const ReduceState& st = *static_cast<ReduceState*>(s);
    int64_t nout = out[0].numel(), R = st.r, inner = st.inner;
    if (nout == 0) return;
    dispatch_all(in[0].dtype, L, [&]<typename T>() {
      const T* p = in[0].as<T>();
      T* po = out[0].as<T>();
      ctx.pool->parallel_for(nout, grain_for(R), [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; ++o) {
          const T* g = p + (o / inner) * R * inner + (o % inner);
          auto each = [&](auto f) {
            for (int64_t i = 0; i < R; ++i) f(load(g[i * inner]));
          };
          reduce_group(st.op, R, each, po[o]);
        }
      });
    });
  }
};

// ArgMax / ArgMin over one axis: the input as [outer, n, inner].
struct ArgState : LayerState {
  bool max, last;
  int64_t outer = 1, n = 1, inner = 1;
};

class ArgReduceRef : public Tactic {
 public:
  const char* name() const override { return "cpu.argreduce"; }
  bool reference() const override { return true; }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = std::make_unique<ArgState>();
    st->max = L.op->s("op") == "max";
    st->last = L.op->i("select_last") != 0;
    const Shape& s = L.in[0]->shape;
    int64_t axis = L.op->i("axis");
    if (axis < 0 || axis >= static_cast<int64_t>(s.size()))
      fail("INTERNAL", "layer '" + L.op->name + "': axis out of range for " + shape_str(s));
    for (int64_t k = 0; k < static_cast<int64_t>(s.size()); ++k) (k < axis ? st->outer : k == axis ? st->n : st->inner) *= s[k];
    if (st->n == 0 && st->outer * st->inner > 0)
      fail("INVALID_INPUT", "layer '" + L.op->name + "': cannot take the arg" + (st->max ? "max" : "min") + " of an empty axis");
    return st;
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const ArgState& st = *static_cast<ArgState*>(s);
    int64_t nout = st.outer * st.inner, n = st.n, inner = st.inner;
    if (nout == 0) return;
    dispatch_all(in[0].dtype, L, [&]<typename T>() {
      using C = compute_t<T>;
      const T* p = in[0].as<T>();
      int64_t* po = out[0].as<int64_t>();
      ctx.pool->parallel_for(nout, grain_for(n), [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; ++o) {
          const T* g = p + (o / inner) * n * inner + (o % inner);
          C best = load(g[0]);
          int64_t bi = 0;
          for (int64_t i = 1; i < n; ++i) {
            C x = load(g[i * inner]);
            bool better = st.max ? (st.last ? x >= best : x > best) : (st.last ? x <= best : x < best);
            if (better) {
              best = x;
              bi = i;
            }
          }
          po[o] = bi;
        }
      });
    });
  }
};

}  // namespace
KILN_REGISTER_TACTIC("cpu", "Reduce", ReduceRef);
KILN_REGISTER_TACTIC("cpu", "Reduce", ReduceBlock);
KILN_REGISTER_TACTIC("cpu", "ArgReduce", ArgReduceRef);
}  // namespace kiln

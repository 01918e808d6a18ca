// Reductions for the "cuda" backend, matching native/cpu/reduce.cc. Kind 'Reduce' (op Sum, Mean, Max,
// Min, Prod, L1, L2, LogSum, LogSumExp, SumSquare over `axes`) on float32/float16 (accumulated in
// double, as the CPU does) and int32/int64 (accumulated in int64); empty reductions give the CPU's
// identities. Variants, both always applicable and timed against each other at build:
// - 'cuda.reduce.block': one block per output, its threads strided over the group (block reductions).
//   Best for few outputs with large groups.
// - 'cuda.reduce.thread': one thread per output walking its group serially; coalesced when the
//   reduced axes are outer to the kept ones, and best for many outputs with small groups.
// Kind 'ArgReduce' (cuda.argreduce): ArgMax/ArgMin with select_last, one thread per output, int64 out.
// Kept and reduced axes: up to 8 each after dropping size-1 dims.
#include <cfloat>
#include <climits>

#include "kern.cuh"

namespace kiln {
namespace cuk {
namespace {

enum class ROp { Sum, Mean, Max, Min, Prod, L1, L2, LogSum, LogSumExp, SumSquare };

bool parse_rop(const std::string& s, ROp& op) {
  static const std::pair<const char*, ROp> names[] = {
      {"Sum", ROp::Sum}, {"Mean", ROp::Mean}, {"Max", ROp::Max}, {"Min", ROp::Min}, {"Prod", ROp::Prod},
      {"L1", ROp::L1}, {"L2", ROp::L2}, {"LogSum", ROp::LogSum}, {"LogSumExp", ROp::LogSumExp}, {"SumSquare", ROp::SumSquare}};
  for (auto& [n, o] : names)
    if (s == n) return op = o, true;
  return false;
}

struct RParams {
  int op;
  int nk, nr;
  int64_t kdim[kMaxRank], kst[kMaxRank], rdim[kMaxRank], rst[kMaxRank];
  int64_t nout, count;
};

bool make_rparams(const LayerInfo& L, RParams& p) {
  ROp op;
  if (!parse_rop(L.op->s("op"), op)) return false;
  p.op = static_cast<int>(op);
  const Shape& s = L.in[0]->shape;
  std::vector<int64_t> st(s.size());
  int64_t acc = 1;
  for (int d = static_cast<int>(s.size()) - 1; d >= 0; --d) st[d] = acc, acc *= s[d];
  std::vector<bool> red(s.size(), false);
  for (int64_t a : L.op->ints("axes")) {
    if (a < 0 || a >= static_cast<int64_t>(s.size())) return false;
    red[a] = true;
  }
  p.nk = p.nr = 0;
  p.nout = p.count = 1;
  for (size_t k = 0; k < s.size(); ++k) {
    if (red[k]) p.count *= s[k];
    else p.nout *= s[k];
    if (s[k] == 1) continue;
    if (red[k]) {
      if (p.nr == kMaxRank) return false;
      p.rdim[p.nr] = s[k], p.rst[p.nr] = st[k], ++p.nr;
    } else {
      if (p.nk == kMaxRank) return false;
      p.kdim[p.nk] = s[k], p.kst[p.nk] = st[k], ++p.nk;
    }
  }
  return p.nout == L.out[0]->numel();
}

// The accumulator: double for float types, int64 for integers.
template <typename T> using acc_t = typename std::conditional<std::is_integral<T>::value, long long, double>::type;

template <typename T, ROp O> struct Red {
  using A = acc_t<T>;
  static constexpr bool fl = !std::is_integral<T>::value;
  __device__ static A init() {
    if (O == ROp::Prod) return A(1);
    if constexpr (fl) {
      if (O == ROp::Max) return A(-INFINITY);
      if (O == ROp::Min) return A(INFINITY);
    } else {
      if (O == ROp::Max) return sizeof(T) == 4 ? A(INT32_MIN) : A(LLONG_MIN);  // int32 / int64 only
      if (O == ROp::Min) return sizeof(T) == 4 ? A(INT32_MAX) : A(LLONG_MAX);
    }
    return A(0);
  }
  // The element's contribution (LogSumExp: exp(x - m) around the maximum m).
  __device__ static A map(A x, A m) {
    switch (O) {
      case ROp::L1: return x < 0 ? -x : x;
      case ROp::L2: case ROp::SumSquare: return x * x;
      case ROp::LogSumExp: return A(exp(static_cast<double>(x) - static_cast<double>(m)));
      default: return x;
    }
  }
  __device__ static A combine(A a, A b) {
    switch (O) {
      case ROp::Prod: return a * b;
      case ROp::Max: case ROp::Min:
        if constexpr (fl)
          if (isnan(static_cast<double>(a)) || isnan(static_cast<double>(b))) return A(NAN);
        return (O == ROp::Max ? a < b : b < a) ? b : a;
      default: return a + b;
    }
  }
  __device__ static void finish(A a, A m, int64_t count, T& out) {
    switch (O) {
      case ROp::Mean:
        if (count == 0) return st(out, fl ? NAN : 0.0);
        return st(out, a / static_cast<A>(count));
      case ROp::L2: return st(out, sqrt(static_cast<double>(a)));
      case ROp::LogSum: return st(out, log(static_cast<double>(a)));
      case ROp::LogSumExp:
        if (isinf(static_cast<double>(m))) return st(out, static_cast<double>(m));
        return st(out, static_cast<double>(m) + log(static_cast<double>(a)));
      default: return st(out, a);
    }
  }
};

struct MaxD {
  __device__ double operator()(double a, double b) const { return a < b ? b : a; }
};
template <typename A, typename T, ROp O> struct CombineF {
  __device__ A operator()(A a, A b) const { return Red<T, O>::combine(a, b); }
};

__device__ __forceinline__ int64_t out_base(const RParams& p, int64_t o) { return decompose(o, p.nk, p.kdim, p.kst); }

template <typename T, ROp O>
__global__ void reduce_block(const T* __restrict__ x, T* __restrict__ y, RParams p) {
  using A = acc_t<T>;
  using R = Red<T, O>;
  __shared__ A sm[32];
  __shared__ double smd[32];
  for (int64_t o = blockIdx.x; o < p.nout; o += gridDim.x) {
    int64_t base = out_base(p, o);
    auto at = [&](int64_t e) { return static_cast<A>(ld(x[base + decompose(e, p.nr, p.rdim, p.rst)])); };
    A m = 0;
    if (O == ROp::LogSumExp) {
      double mm = -INFINITY;
      for (int64_t e = threadIdx.x; e < p.count; e += blockDim.x) mm = fmax(mm, static_cast<double>(at(e)));
      m = static_cast<A>(block_reduce(mm, MaxD{}, smd));
      if (isinf(static_cast<double>(m))) {
        if (threadIdx.x == 0) R::finish(0, m, p.count, y[o]);
        continue;
      }
    }
    A a = R::init();
    for (int64_t e = threadIdx.x; e < p.count; e += blockDim.x) a = R::combine(a, R::map(at(e), m));
    a = block_reduce(a, CombineF<A, T, O>{}, sm);
    if (threadIdx.x == 0) R::finish(a, m, p.count, y[o]);
  }
}

template <typename T, ROp O>
__global__ void reduce_thread(const T* __restrict__ x, T* __restrict__ y, RParams p) {
  using A = acc_t<T>;
  using R = Red<T, O>;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < p.nout; o += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t base = out_base(p, o);
    auto at = [&](int64_t e) { return static_cast<A>(ld(x[base + decompose(e, p.nr, p.rdim, p.rst)])); };
    A m = 0;
    if (O == ROp::LogSumExp) {
      double mm = -INFINITY;
      for (int64_t e = 0; e < p.count; ++e) mm = fmax(mm, static_cast<double>(at(e)));
      m = static_cast<A>(mm);
      if (isinf(mm)) {
        R::finish(0, m, p.count, y[o]);
        continue;
      }
    }
    A a = R::init();
    for (int64_t e = 0; e < p.count; ++e) a = R::combine(a, R::map(at(e), m));
    R::finish(a, m, p.count, y[o]);
  }
}

template <bool kBlock>
class ReduceCuda : public Tactic {
 public:
  const char* name() const override { return kBlock ? "cuda.reduce.block" : "cuda.reduce.thread"; }
  bool can_implement(const LayerInfo& L) const override {
    RParams p;
    auto nop = [](auto) {};
    if (!make_rparams(L, p) || L.out[0]->dtype != L.in[0]->dtype || !dispatch_numeric(L.in[0]->dtype, nop)) return false;
    // integer LogSumExp sums exp() in double on the CPU: left to it
    return !(static_cast<ROp>(p.op) == ROp::LogSumExp && (L.in[0]->dtype == DType::I32 || L.in[0]->dtype == DType::I64));
  }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    RParams p;
    if (!make_rparams(L, p)) fail("INTERNAL", where(L) + ": " + name() + " cannot run this layer");
    if (p.nout == 0) return;
    cudaStream_t s = stream_of(ctx);
    dispatch_numeric(in[0].dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      auto go = [&](auto oc) {
        constexpr ROp O = decltype(oc)::value;
        if (kBlock) {
          unsigned blocks = static_cast<unsigned>(p.nout < 65535 * 16 ? p.nout : 65535 * 16);
          reduce_block<T, O><<<blocks, block_for(p.count), 0, s>>>(in[0].as<T>(), out[0].as<T>(), p);
        } else {
          reduce_thread<T, O><<<grid_for(p.nout, 128), 128, 0, s>>>(in[0].as<T>(), out[0].as<T>(), p);
        }
      };
      switch (static_cast<ROp>(p.op)) {
#define KILN_R(n) \
  case ROp::n: go(std::integral_constant<ROp, ROp::n>{}); break;
        KILN_R(Sum) KILN_R(Mean) KILN_R(Max) KILN_R(Min) KILN_R(Prod) KILN_R(L1) KILN_R(L2) KILN_R(LogSum) KILN_R(LogSumExp) KILN_R(SumSquare)
#undef KILN_R
      }
    });
    check_launch(L, name());
  }
};

// ---- ArgMax / ArgMin ------------------------------------------------------------------------------
template <typename T>
__global__ void argreduce_kernel(const T* __restrict__ x, int64_t* __restrict__ y, int64_t nout, int64_t n, int64_t inner, bool mx, bool last) {
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < nout; o += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const T* g = x + (o / inner) * n * inner + (o % inner);
    auto best = ld(g[0]);
    int64_t bi = 0;
    for (int64_t i = 1; i < n; ++i) {
      auto v = ld(g[i * inner]);
      bool better = mx ? (last ? v >= best : v > best) : (last ? v <= best : v < best);
      if (better) best = v, bi = i;
    }
    y[o] = bi;
  }
}

class ArgReduceCuda : public Tactic {
 public:
  const char* name() const override { return "cuda.argreduce"; }
  bool can_implement(const LayerInfo& L) const override {
    auto nop = [](auto) {};
    int64_t axis = L.op->i("axis");
    const Shape& s = L.in[0]->shape;
    if (axis < 0 || axis >= static_cast<int64_t>(s.size())) return false;
    if (s[axis] == 0 && L.out[0]->numel() > 0) return false;  // the CPU reports the empty axis
    return L.out[0]->dtype == DType::I64 && dispatch_numeric(L.in[0]->dtype, nop);
  }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const Shape& s = in[0].shape;
    int64_t axis = L.op->i("axis"), outer = 1, n = 1, inner = 1;
    for (int64_t k = 0; k < static_cast<int64_t>(s.size()); ++k) (k < axis ? outer : k == axis ? n : inner) *= s[k];
    int64_t nout = outer * inner;
    if (nout == 0) return;
    bool mx = L.op->s("op") == "max", last = L.op->i("select_last") != 0;
    dispatch_numeric(in[0].dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      argreduce_kernel<T><<<grid_for(nout, 128), 128, 0, stream_of(ctx)>>>(in[0].as<T>(), out[0].as<int64_t>(), nout, n, inner, mx, last);
    });
    check_launch(L, name());
  }
};

}  // namespace
}  // namespace cuk
KILN_REGISTER_TACTIC("cuda", "Reduce", cuk::ReduceCuda<true>);
KILN_REGISTER_TACTIC("cuda", "Reduce", cuk::ReduceCuda<false>);
KILN_REGISTER_TACTIC("cuda", "ArgReduce", cuk::ArgReduceCuda);
}  // namespace kiln

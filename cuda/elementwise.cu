// Element-wise kernels for the "cuda" backend, matching native/cpu/{unary,binary,where,cast,copy}.cc.
// Variants (each a template over the element type and, for Unary/Binary, the operation):
// - 'Unary' (cuda.unary): every op of the CPU list on float32/float16 (computed in float; alpha, beta,
//   gamma as attributes), the integer-exact ops (Abs, Neg, Sign, Relu, Clip, BitwiseNot) on int32/int64,
//   IsNaN/IsInf → bool, Not on bool. Clip's bounds may be run-time scalar inputs: the kernel reads them
//   on the device. Integer inputs to float-only ops (Erf, Shrink on ints) are left to the CPU.
// - 'Binary' (cuda.binary): the n-ary fold of the CPU kernel (Mean divides at the end, float16
//   rounding after each step as the CPU stores it), comparisons → bool, logic ops on bool, bit ops and
//   shifts on integers; float32/float16/int32/int64/bool. Inputs of different element types go to the CPU.
// - 'Where' (cuda.where): by element size, any type.
// - 'Cast' (cuda.cast): every pair of float32, float16, float64, int8, uint8, int32, int64, bool with
//   the CPU's rules (wrapping integers, truncation, the x86 "integer indefinite" for NaN/out of range).
// - 'Copy' (cuda.copy): cudaMemcpyAsync.
// Each launch has two paths: flat (every operand has the output's shape or one element), with 16-byte
// vector loads and stores when every full operand is aligned; and strided (numpy broadcasting over the
// merged index space, 32-bit index arithmetic when it fits).
#include <cmath>
#include <limits>
#include <utility>

#include "elementwise_ops.cuh"
#include "kern.cuh"

namespace kiln {
namespace cuk {
namespace {

// ---- the generic n-ary element-wise launcher ---------------------------------------------------
constexpr int kMaxIn = 8;

// Operands: pointers (by element type fixed by the functor), scalar flags, broadcast strides.
struct Operands {
  const void* p[kMaxIn] = {};
  bool scalar[kMaxIn] = {};
  int n = 0;
};

// Flat path: element i of every operand is p[i] (or p[0] for a scalar). F::apply<V>(in pointers,
// scalar flags, out, i, count) does count ≤ V consecutive elements; V > 1 means vector access.
template <int V, typename F>
__global__ void flat_kernel(F f, Operands ops, void* out, int64_t n) {
  int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t * V < n; t += step) {
    int64_t i = t * V;
    int64_t cnt = n - i < V ? n - i : V;
    f.template flat<V>(ops, out, i, static_cast<int>(cnt));
  }
}

template <typename I, int N, typename F>
__global__ void strided_kernel(F f, Operands ops, void* out, Strided<N> sp, int64_t n) {
  I step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < static_cast<I>(n); i += step) {
    I off[N];
    offsets<I, N>(sp, i, off);
    f.template strided<I, N>(ops, out, i, off);
  }
}

// Shared host side: the flat/strided decision and the launches. `out_shape` is the output's; `shapes`
// the operands'. `vbytes` is the widest element among operands and output (the vector width).
struct Geometry {
  bool flat = true;
  std::vector<bool> scalar, full;
  std::vector<std::vector<int64_t>> strides;
};

Geometry geometry(const Shape& out, const std::vector<Shape>& shapes) {
  Geometry g;
  for (const Shape& s : shapes) {
    bool full = s == out || numel(s) == numel(out) && bcast_strides(s, out) == bcast_strides(out, out);
    bool sc = numel(s) == 1;
    g.full.push_back(full);
    g.scalar.push_back(sc && !full);
    g.flat = g.flat && (full || sc);
    g.strides.push_back(bcast_strides(s, out));
  }
  return g;
}

template <int N> bool strided_fits(const Shape& out, const Geometry& g) {
  Strided<N> sp;
  std::vector<std::vector<int64_t>> st(g.strides);
  st.resize(N, std::vector<int64_t>(out.size(), 0));
  return make_strided<N>(out, st, sp);
}

// VB: the widest element size among operands and output, so a vector access moves 16 bytes of it.
// kStrided = false for same-shape families (Unary, Cast): no broadcast kernels are instantiated.
template <int N, int VB, bool kStrided, typename F>
void launch(const LayerInfo& L, F f, const std::vector<const Tensor*>& ins, Tensor& out, cudaStream_t s) {
  constexpr int V = 16 / VB > 1 ? 16 / VB : 1;
  int64_t n = out.numel();
  if (n == 0) return;
  std::vector<Shape> shapes;
  for (auto* t : ins) shapes.push_back(t->shape);
  Geometry g = geometry(out.shape, shapes);
  Operands ops;
  ops.n = static_cast<int>(ins.size());
  for (size_t k = 0; k < ins.size(); ++k) {
    ops.p[k] = ins[k]->data;
    ops.scalar[k] = g.scalar[k];
  }
  if (g.flat) {
    bool vec = V > 1 && aligned(out.data, V * dtype_size(out.dtype));
    for (size_t k = 0; k < ins.size() && vec; ++k) vec = g.scalar[k] || aligned(ins[k]->data, V * dtype_size(ins[k]->dtype));
    if (vec) flat_kernel<V><<<grid_for((n + V - 1) / V), kThreads, 0, s>>>(f, ops, out.data, n);
    else flat_kernel<1><<<grid_for(n), kThreads, 0, s>>>(f, ops, out.data, n);
    return check_launch(L, "elementwise.flat");
  }
  if constexpr (kStrided) {
    Strided<N> sp;
    std::vector<std::vector<int64_t>> st(g.strides);
    st.resize(N, std::vector<int64_t>(out.shape.size(), 0));
    if (!make_strided<N>(out.shape, st, sp)) fail("INTERNAL", where(L) + ": broadcast rank over " + std::to_string(kMaxRank));
    if (fits32(sp, n)) strided_kernel<uint32_t, N><<<grid_for(n), kThreads, 0, s>>>(f, ops, out.data, sp, n);
    else strided_kernel<int64_t, N><<<grid_for(n), kThreads, 0, s>>>(f, ops, out.data, sp, n);
    check_launch(L, "elementwise.strided");
  } else {
    fail("INTERNAL", where(L) + ": operands do not have the output's shape");
  }
}

// Loads V consecutive elements of operand k at i (all V copies of element 0 for a scalar).
template <typename T, int V>
__device__ __forceinline__ void load_v(const Operands& ops, int k, int64_t i, int cnt, T (&r)[V]) {
  const T* p = static_cast<const T*>(ops.p[k]);
  if (ops.scalar[k]) {
    T s = p[0];
#pragma unroll
    for (int j = 0; j < V; ++j) r[j] = s;
  } else if (V > 1 && cnt == V) {
    Vec<T, V> v = *reinterpret_cast<const Vec<T, V>*>(p + i);
#pragma unroll
    for (int j = 0; j < V; ++j) r[j] = v.v[j];
  } else {
    for (int j = 0; j < cnt; ++j) r[j] = p[i + j];
  }
}
template <typename T, int V>
__device__ __forceinline__ void store_v(void* out, int64_t i, int cnt, const T (&r)[V]) {
  T* p = static_cast<T*>(out);
  if (V > 1 && cnt == V) {
    Vec<T, V> v;
#pragma unroll
    for (int j = 0; j < V; ++j) v.v[j] = r[j];
    *reinterpret_cast<Vec<T, V>*>(p + i) = v;
  } else {
    for (int j = 0; j < cnt; ++j) p[i + j] = r[j];
  }
}

// =================================================================================================
// Unary
// =================================================================================================

template <typename T>
__device__ __forceinline__ T neg_wrap(T x) {
  using U = typename std::make_unsigned<T>::type;
  return static_cast<T>(static_cast<U>(U(0) - static_cast<U>(x)));
}

template <UOp O, typename T>
__device__ __forceinline__ T uint_(T x, T lo, T hi) {
  switch (O) {
    case UOp::Abs: return x < 0 ? neg_wrap(x) : x;
    case UOp::Neg: return neg_wrap(x);
    case UOp::Sign: return static_cast<T>((x > T(0)) - (x < T(0)));
    case UOp::Relu: return x < T(0) ? T(0) : x;
    case UOp::BitwiseNot: return static_cast<T>(~x);
    case UOp::Clip: {
      T v = x < lo ? lo : x;
      return v > hi ? hi : v;
    }
    default: return x;
  }
}

// Parameters of one Unary launch. Clip: lo/hi (already in T's value set) unless lo_p/hi_p (device
// scalars of type T, inputs 1/2 present at run time) are set.
template <typename T> struct UParams {
  comp_t<T> a, b, g;
  T lo, hi;
  const T* lo_p;
  const T* hi_p;
  bool det_neg, det_pos;
};

template <UOp O, typename T, typename R>
struct UnaryF {
  UParams<T> p;
  __device__ __forceinline__ R one(T x, comp_t<T> a, comp_t<T> b, T lo, T hi) const {
    if constexpr (O == UOp::Not) {
      return !x;
    } else if constexpr (O == UOp::IsNaN) {
      return isnan(ld(x));
    } else if constexpr (O == UOp::IsInf) {
      float v = ld(x);
      return isinf(v) && ((v < 0 && p.det_neg) || (v > 0 && p.det_pos));
    } else if constexpr (std::is_integral<T>::value) {
      return uint_<O, T>(x, lo, hi);
    } else {
      R r;
      st(r, ufloat<O>(ld(x), a, b, p.g));
      return r;
    }
  }
  __device__ __forceinline__ void bounds(comp_t<T>& a, comp_t<T>& b, T& lo, T& hi) const {
    a = p.a, b = p.b, lo = p.lo, hi = p.hi;
    if constexpr (O == UOp::Clip) {
      if (p.lo_p) lo = *p.lo_p;
      if (p.hi_p) hi = *p.hi_p;
      if constexpr (!std::is_integral<T>::value) a = ld(lo), b = ld(hi);
    }
  }
  template <int V> __device__ __forceinline__ void flat(const Operands& ops, void* out, int64_t i, int cnt) const {
    comp_t<T> a, b;
    T lo, hi;
    bounds(a, b, lo, hi);
    T x[V];
    R y[V];
    load_v<T, V>(ops, 0, i, cnt, x);
#pragma unroll
    for (int j = 0; j < V; ++j) y[j] = one(x[j], a, b, lo, hi);
    store_v<R, V>(out, i, cnt, y);
  }
  template <typename I, int N> __device__ __forceinline__ void strided(const Operands& ops, void* out, I i, const I (&off)[N]) const {
    comp_t<T> a, b;
    T lo, hi;
    bounds(a, b, lo, hi);
    static_cast<R*>(out)[i] = one(static_cast<const T*>(ops.p[0])[off[0]], a, b, lo, hi);
  }
};

template <typename F, size_t... I>
void with_uop_impl(UOp op, F&& f, std::index_sequence<I...>) {
  (void)((op == static_cast<UOp>(I) ? (f(std::integral_constant<UOp, static_cast<UOp>(I)>{}), true) : false) || ...);
}
template <typename F> void with_uop(UOp op, F&& f) {
  with_uop_impl(op, std::forward<F>(f), std::make_index_sequence<static_cast<size_t>(UOp::Count)>{});
}

template <typename T> T host_bound(double v, bool has, bool upper) {
  if constexpr (std::is_integral<T>::value) {
    if (!has) return upper ? std::numeric_limits<T>::max() : std::numeric_limits<T>::lowest();
    if (std::isnan(v)) return T(0);
    if (v <= static_cast<double>(std::numeric_limits<T>::lowest())) return std::numeric_limits<T>::lowest();
    if (v >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
    return static_cast<T>(v);
  } else if constexpr (std::is_same<T, __half>::value) {
    return __float2half_rn(static_cast<float>(has ? v : upper ? INFINITY : -INFINITY));
  } else {
    return static_cast<T>(has ? v : upper ? INFINITY : -INFINITY);
  }
}

class UnaryCuda : public Tactic {
 public:
  const char* name() const override { return "cuda.unary"; }
  bool can_implement(const LayerInfo& L) const override {
    UOp op;
    if (!parse_uop(L.op->s("op"), op) || L.in.empty() || !L.in[0] || L.in[0]->numel() != L.out[0]->numel()) return false;
    DType t = L.in[0]->dtype;
    bool fl = t == DType::F32 || t == DType::F16, in = t == DType::I32 || t == DType::I64;
    if (op == UOp::Not) return t == DType::Bool;
    if (op == UOp::BitwiseNot) return in;
    if (uop_bool_result(op)) return fl;
    if (op == UOp::Clip)
      for (size_t k = 1; k < L.in.size() && k < 3; ++k)
        if (L.in[k] && (L.in[k]->dtype != t || L.in[k]->numel() != 1)) return false;
    return fl || (in && uop_int_exact(op));
  }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    UOp op;
    parse_uop(L.op->s("op"), op);
    double al = L.op->f("alpha"), be = L.op->f("beta"), ga = L.op->f("gamma");
    bool has_min = op == UOp::Clip && L.op->i("hasMin", 0) != 0, has_max = op == UOp::Clip && L.op->i("hasMax", 0) != 0;
    cudaStream_t s = stream_of(ctx);
    std::vector<const Tensor*> ins{&in[0]};
    if (op == UOp::Not) {
      UParams<bool> p{};
      launch<1, 1, false>(L, UnaryF<UOp::Not, bool, bool>{p}, ins, out[0], s);
      return;
    }
    auto go = [&](auto tag) {
      using T = typename decltype(tag)::type;
      UParams<T> p{};
      p.a = static_cast<comp_t<T>>(al), p.b = static_cast<comp_t<T>>(be), p.g = static_cast<comp_t<T>>(ga);
      p.det_neg = al != 0, p.det_pos = be != 0;
      if (op == UOp::Clip) {
        p.lo = host_bound<T>(al, has_min, false);
        p.hi = host_bound<T>(be, has_max, true);
        if (L.in.size() > 1 && L.in[1] && in[1].data) p.lo_p = in[1].as<T>();
        if (L.in.size() > 2 && L.in[2] && in[2].data) p.hi_p = in[2].as<T>();
      }
      with_uop(op, [&](auto oc) {
        constexpr UOp O = decltype(oc)::value;
        if constexpr (O == UOp::Not) {
        } else if constexpr (O == UOp::IsNaN || O == UOp::IsInf) {
          if constexpr (!std::is_integral<T>::value) launch<1, sizeof(T), false>(L, UnaryF<O, T, bool>{p}, ins, out[0], s);
        } else if constexpr (std::is_integral<T>::value) {
          if constexpr (O == UOp::Abs || O == UOp::Neg || O == UOp::Sign || O == UOp::Relu || O == UOp::Clip || O == UOp::BitwiseNot)
            launch<1, sizeof(T), false>(L, UnaryF<O, T, T>{p}, ins, out[0], s);
        } else if constexpr (O != UOp::BitwiseNot) {
          launch<1, sizeof(T), false>(L, UnaryF<O, T, T>{p}, ins, out[0], s);
        }
      });
    };
    if (!dispatch_numeric(in[0].dtype, go)) fail("INTERNAL", where(L) + ": cuda.unary got " + dtype_name(in[0].dtype));
  }
};

// =================================================================================================
// Binary
// =================================================================================================
bool parse_bop(const LayerInfo& L, BOp& op) { return parse_bop_name(L.op->s("op"), L.op->i("right", 0) != 0, op); }

// The fold over nin ≤ N operands of T into R (bool for comparisons). Loops over operands unroll to N
// with a guard, so the per-operand arrays stay in registers.
template <BOp O, typename T, typename R, int N>
struct BinaryF {
  int nin;
  bool fmod_mode;
  __device__ __forceinline__ R fold(const T (&v)[N]) const {
    using C = comp_t<T>;
    if constexpr (is_cmp(O)) {
      return bcompare<O, C>(ld(v[0]), ld(v[1]));
    } else {
      C acc = bapply<O, C>(ld(v[0]), ld(v[1]), fmod_mode);
#pragma unroll
      for (int k = 2; k < N; ++k)
        if (k < nin) acc = bapply<O, C>(round_to<T>(acc), ld(v[k]), fmod_mode);
      if constexpr (O == BOp::Mean) acc = round_to<T>(acc) / static_cast<C>(nin);
      R r;
      st(r, acc);
      return r;
    }
  }
  template <int V> __device__ __forceinline__ void flat(const Operands& ops, void* out, int64_t i, int cnt) const {
    T x[N][V];
#pragma unroll
    for (int k = 0; k < N; ++k)
      if (k < nin) load_v<T, V>(ops, k, i, cnt, x[k]);
    R y[V];
#pragma unroll
    for (int j = 0; j < V; ++j) {
      T v[N];
#pragma unroll
      for (int k = 0; k < N; ++k) v[k] = k < nin ? x[k][j] : T{};
      y[j] = fold(v);
    }
    store_v<R, V>(out, i, cnt, y);
  }
  template <typename I, int M> __device__ __forceinline__ void strided(const Operands& ops, void* out, I i, const I (&off)[M]) const {
    T v[N];
#pragma unroll
    for (int k = 0; k < N; ++k) v[k] = k < nin ? static_cast<const T*>(ops.p[k])[off[k]] : T{};
    static_cast<R*>(out)[i] = fold(v);
  }
};

template <typename F, size_t... I>
void with_bop_impl(BOp op, F&& f, std::index_sequence<I...>) {
  (void)((op == static_cast<BOp>(I) ? (f(std::integral_constant<BOp, static_cast<BOp>(I)>{}), true) : false) || ...);
}
template <typename F> void with_bop(BOp op, F&& f) {
  with_bop_impl(op, std::forward<F>(f), std::make_index_sequence<static_cast<size_t>(BOp::Count)>{});
}

class BinaryCuda : public Tactic {
 public:
  const char* name() const override { return "cuda.binary"; }
  bool can_implement(const LayerInfo& L) const override {
    BOp op;
    if (!parse_bop(L, op) || L.in.size() < 2 || L.in.size() > static_cast<size_t>(kMaxIn)) return false;
    if (L.in.size() > 2 && is_cmp(op)) return false;
    DType t = L.in[0]->dtype;
    for (auto* x : L.in)
      if (!x || x->dtype != t) return false;
    bool fl = t == DType::F32 || t == DType::F16, in = t == DType::I32 || t == DType::I64, bo = t == DType::Bool;
    bool ok = is_cmp(op) ? (fl || in || bo) : is_logic(op) ? bo : is_bits(op) ? in : (fl || in) && !(fl && is_bits(op));
    if (!ok) return false;
    std::vector<Shape> shapes;
    for (auto* x : L.in) shapes.push_back(x->shape);
    Geometry g = geometry(L.out[0]->shape, shapes);
    return g.flat || strided_fits<kMaxIn>(L.out[0]->shape, g);
  }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    BOp op;
    parse_bop(L, op);
    bool fm = L.op->i("fmod", 0) != 0;
    int nin = static_cast<int>(L.in.size());
    std::vector<const Tensor*> ins;
    for (int k = 0; k < nin; ++k) ins.push_back(&in[k]);
    cudaStream_t s = stream_of(ctx);
    auto go = [&](auto tag) {
      using T = typename decltype(tag)::type;
      with_bop(op, [&](auto oc) {
        constexpr BOp O = decltype(oc)::value;
        constexpr bool fl = !std::is_integral<T>::value, bo = std::is_same<T, bool>::value;
        if constexpr (O != BOp::Count) {
          if constexpr (is_cmp(O)) {
            if (nin == 2) launch<2, sizeof(T), true>(L, BinaryF<O, T, bool, 2>{nin, fm}, ins, out[0], s);
          } else if constexpr (is_logic(O) ? bo : is_bits(O) ? (!fl && !bo) : !bo) {
            if (nin == 2) launch<2, sizeof(T), true>(L, BinaryF<O, T, T, 2>{nin, fm}, ins, out[0], s);
            else launch<kMaxIn, sizeof(T), true>(L, BinaryF<O, T, T, kMaxIn>{nin, fm}, ins, out[0], s);
          }
        }
      });
    };
    bool ok = in[0].dtype == DType::Bool ? (go(Tag<bool>{}), true) : dispatch_numeric(in[0].dtype, go);
    if (!ok) fail("INTERNAL", where(L) + ": cuda.binary got " + dtype_name(in[0].dtype));
  }
};

// =================================================================================================
// Where
// =================================================================================================
template <typename T>
struct WhereF {
  template <int V> __device__ __forceinline__ void flat(const Operands& ops, void* out, int64_t i, int cnt) const {
    bool c[V];
    T x[V], y[V], o[V];
    load_v<bool, V>(ops, 0, i, cnt, c);
    load_v<T, V>(ops, 1, i, cnt, x);
    load_v<T, V>(ops, 2, i, cnt, y);
#pragma unroll
    for (int j = 0; j < V; ++j) o[j] = c[j] ? x[j] : y[j];
    store_v<T, V>(out, i, cnt, o);
  }
  template <typename I, int N> __device__ __forceinline__ void strided(const Operands& ops, void* out, I i, const I (&off)[N]) const {
    bool c = static_cast<const bool*>(ops.p[0])[off[0]];
    static_cast<T*>(out)[i] = c ? static_cast<const T*>(ops.p[1])[off[1]] : static_cast<const T*>(ops.p[2])[off[2]];
  }
};

class WhereCuda : public Tactic {
 public:
  const char* name() const override { return "cuda.where"; }
  bool can_implement(const LayerInfo& L) const override {
    if (L.in.size() != 3 || !L.in[0] || !L.in[1] || !L.in[2] || L.in[0]->dtype != DType::Bool) return false;
    if (L.in[1]->dtype != L.out[0]->dtype || L.in[2]->dtype != L.out[0]->dtype || dtype_size(L.out[0]->dtype) == 0) return false;
    Geometry g = geometry(L.out[0]->shape, {L.in[0]->shape, L.in[1]->shape, L.in[2]->shape});
    return g.flat || strided_fits<3>(L.out[0]->shape, g);
  }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    std::vector<const Tensor*> ins{&in[0], &in[1], &in[2]};
    dispatch_bytes(out[0].dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      launch<3, sizeof(T), true>(L, WhereF<T>{}, ins, out[0], stream_of(ctx));
    });
  }
};

// =================================================================================================
// Cast
// =================================================================================================
template <typename To>
__device__ __forceinline__ To float_to_int(double v) {
  constexpr double two63 = 9223372036854775808.0;
  if constexpr (sizeof(To) <= 2 || std::is_same<To, int32_t>::value) {
    int32_t r = (isnan(v) || v >= 2147483648.0 || v <= -2147483649.0) ? INT32_MIN : static_cast<int32_t>(v);
    return static_cast<To>(r);
  } else {
    if constexpr (std::is_same<To, uint64_t>::value)
      if (v >= two63 && v < 2 * two63) return static_cast<uint64_t>(v);
    int64_t r = (isnan(v) || v >= two63 || v < -two63) ? INT64_MIN : static_cast<int64_t>(v);
    return static_cast<To>(r);
  }
}

template <typename To, typename From>
__device__ __forceinline__ To convert(From src) {
  auto v = ld(src);
  using V = decltype(v);
  if constexpr (std::is_same<To, bool>::value) {
    return v != V(0);
  } else if constexpr (std::is_integral<To>::value && std::is_floating_point<V>::value) {
    return float_to_int<To>(static_cast<double>(v));
  } else if constexpr (std::is_same<To, __half>::value) {
    return __float2half_rn(static_cast<float>(v));
  } else {
    return static_cast<To>(v);
  }
}

template <typename To, typename From>
struct CastF {
  template <int V> __device__ __forceinline__ void flat(const Operands& ops, void* out, int64_t i, int cnt) const {
    From x[V];
    To y[V];
    load_v<From, V>(ops, 0, i, cnt, x);
#pragma unroll
    for (int j = 0; j < V; ++j) y[j] = convert<To, From>(x[j]);
    store_v<To, V>(out, i, cnt, y);
  }
  template <typename I, int N> __device__ __forceinline__ void strided(const Operands& ops, void* out, I i, const I (&off)[N]) const {
    static_cast<To*>(out)[i] = convert<To, From>(static_cast<const From*>(ops.p[0])[off[0]]);
  }
};

class CastCuda : public Tactic {
 public:
  const char* name() const override { return "cuda.cast"; }
  bool can_implement(const LayerInfo& L) const override {
    auto nop = [](auto) {};
    return L.in.size() >= 1 && L.in[0] && L.in[0]->numel() == L.out[0]->numel() && dispatch_value(L.in[0]->dtype, nop) &&
           dispatch_value(L.out[0]->dtype, nop);
  }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    std::vector<const Tensor*> ins{&in[0]};
    dispatch_value(out[0].dtype, [&](auto to) {
      dispatch_value(in[0].dtype, [&](auto from) {
        using To = typename decltype(to)::type;
        using From = typename decltype(from)::type;
        launch<1, (sizeof(To) > sizeof(From) ? sizeof(To) : sizeof(From)), false>(L, CastF<To, From>{}, ins, out[0], stream_of(ctx));
      });
    });
  }
};

// =================================================================================================
// Copy
// =================================================================================================
class CopyCuda : public Tactic {
 public:
  const char* name() const override { return "cuda.copy"; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    if (out[0].data != in[0].data && out[0].nbytes())
      check_call(L, cudaMemcpyAsync(out[0].data, in[0].data, out[0].nbytes(), cudaMemcpyDeviceToDevice, stream_of(ctx)), "cudaMemcpyAsync");
  }
};

}  // namespace
}  // namespace cuk
KILN_REGISTER_TACTIC("cuda", "Unary", cuk::UnaryCuda);
KILN_REGISTER_TACTIC("cuda", "Binary", cuk::BinaryCuda);
KILN_REGISTER_TACTIC("cuda", "Where", cuk::WhereCuda);
KILN_REGISTER_TACTIC("cuda", "Cast", cuk::CastCuda);
KILN_REGISTER_TACTIC("cuda", "Copy", cuk::CopyCuda);
}  // namespace kiln

// Data movement for the "cuda" backend, matching native/cpu/{strided_copy,gather,pad}.cc. Elements
// move as bytes of their size (1, 2, 4, 8), so every element type works. Variants:
// - 'StridedCopy' (cuda.strided_copy): out[i] = in[offset + Σ idx[d]·strides[d]] (Transpose, Slice,
//   Split, Expand, Tile, DepthToSpace, …); dims merged, one thread per output element, 32-bit index
//   arithmetic when it fits; a reformat to channels-last of few channels (a network input's) one thread
//   per position. The view is range-checked at build (otherwise the CPU tactic reports it).
// - 'Concat' (cuda.concat): one cudaMemcpy2DAsync per input (its block of every outer row).
// - 'GatherND' (cuda.gather_nd): batch_dims, index tuples of up to 8 coordinates.
// - 'Gather' (cuda.gather) and 'GatherElements' (cuda.gather_elements): int32/int64 indices, negative
//   ones counted from the end. Constant indices are checked at build (out of range: the layer stays on
//   the CPU, which reports it); indices computed at run time are checked on the device and an
//   out-of-range one gives zero elements instead of reading outside the data.
// - 'Pad' (cuda.pad): constant (attribute `value` or the run-time scalar input 1), reflect, edge and
//   wrap, one thread per output element.
#include "kern.cuh"

namespace kiln {
namespace cuk {
namespace {

// ---- StridedCopy ----------------------------------------------------------------------------------
bool view_ok(const LayerInfo& L, Strided<1>& sp, int64_t& offset) {
  Shape shape = L.op->ints("shape");
  std::vector<int64_t> strides = L.op->ints("strides");
  offset = L.op->i("offset");
  if (strides.size() != shape.size() || numel(shape) != L.out[0]->numel() || L.out[0]->dtype != L.in[0]->dtype) return false;
  int64_t n = numel(shape);
  for (int64_t d : shape)
    if (d < 0) return false;
  if (n > 0) {
    int64_t lo = offset, hi = offset;
    for (size_t d = 0; d < shape.size(); ++d) {
      int64_t span = (shape[d] - 1) * strides[d];
      (span < 0 ? lo : hi) += span;
    }
    if (lo < 0 || hi >= L.in[0]->numel()) return false;
  }
  return make_strided<1>(shape, {strides}, sp) && dtype_size(L.in[0]->dtype) != 0;
}

template <typename I, typename T>
__global__ void strided_copy_kernel(const T* __restrict__ src, T* __restrict__ dst, Strided<1> sp, int64_t n) {
  I step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < static_cast<I>(n); i += step) {
    I off[1];
    offsets<I, 1>(sp, i, off);
    dst[i] = src[static_cast<int64_t>(off[0])];
  }
}

// The reformat to channels-last of a tensor with few channels (a network's input: [N, C, H, W] ->
// [N, H, W, C]): after merging, out[(a * d1 + b) * d2 + c] = in[a * s0 + b + c * s2] with d2 small. One
// thread per (a, b) copies its d2 values: the reads of each c are contiguous across a warp, the writes
// are runs of d2, and the index arithmetic is one division per d2 elements instead of three per element.
// (One image: the merged view has rank 2, d0 = 1.) False when the view is not of that form. Called only
// where fits32 holds, so strides are non-negative and every offset fits 32 bits.
constexpr int kInterleaveMax = 16;
struct Interleave {
  uint32_t d1 = 0, d2 = 0, s0 = 0, s2 = 0, rows = 0;
};
bool interleave_view(const Strided<1>& sp, Interleave& v) {
  const int o = sp.rank - 2;  // the (b, c) dims
  if ((sp.rank != 2 && sp.rank != 3) || sp.stride[0][o] != 1 || sp.shape[o + 1] > kInterleaveMax) return false;
  v.d1 = static_cast<uint32_t>(sp.shape[o]), v.d2 = static_cast<uint32_t>(sp.shape[o + 1]);
  v.s0 = o ? static_cast<uint32_t>(sp.stride[0][0]) : 0, v.s2 = static_cast<uint32_t>(sp.stride[0][o + 1]);
  v.rows = static_cast<uint32_t>((o ? sp.shape[0] : 1) * sp.shape[o]);
  return true;
}

template <typename T>
__global__ void interleave_kernel(const T* __restrict__ src, T* __restrict__ dst, uint32_t d1, uint32_t d2, uint32_t s0, uint32_t s2, uint32_t rows) {
  for (uint32_t r = blockIdx.x * blockDim.x + threadIdx.x; r < rows; r += gridDim.x * blockDim.x) {
    const uint32_t a = r / d1, b = r - a * d1;
    const T* in = src + a * s0 + b;
    T* out = dst + static_cast<size_t>(r) * d2;
    for (uint32_t c = 0; c < d2; ++c) out[c] = in[c * s2];
  }
}

class StridedCopyCuda : public Tactic {
 public:
  const char* name() const override { return "cuda.strided_copy"; }
  bool can_implement(const LayerInfo& L) const override {
    Strided<1> sp;
    int64_t off;
    return view_ok(L, sp, off);
  }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    Strided<1> sp;
    int64_t off;
    if (!view_ok(L, sp, off)) fail("INTERNAL", where(L) + ": cuda.strided_copy cannot run this view");
    int64_t n = out[0].numel();
    if (n == 0) return;
    cudaStream_t s = stream_of(ctx);
    dispatch_bytes(in[0].dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* src = in[0].as<T>() + off;
      Interleave v;
      if (fits32(sp, n) && interleave_view(sp, v))
        interleave_kernel<T><<<grid_for(v.rows), kThreads, 0, s>>>(src, out[0].as<T>(), v.d1, v.d2, v.s0, v.s2, v.rows);
      else if (fits32(sp, n)) strided_copy_kernel<uint32_t, T><<<grid_for(n), kThreads, 0, s>>>(src, out[0].as<T>(), sp, n);
      else strided_copy_kernel<int64_t, T><<<grid_for(n), kThreads, 0, s>>>(src, out[0].as<T>(), sp, n);
    });
    check_launch(L, name());
  }
};

// ---- Concat ---------------------------------------------------------------------------------------
class ConcatCuda : public Tactic {
 public:
  const char* name() const override { return "cuda.concat"; }
  bool can_implement(const LayerInfo& L) const override {
    const Shape& os = L.out[0]->shape;
    int64_t axis = L.op->i("axis"), total = 0;
    if (axis < 0 || axis >= static_cast<int64_t>(os.size())) return false;
    for (auto* t : L.in) {
      if (!t || t->shape.size() != os.size() || t->dtype != L.out[0]->dtype) return false;
      total += t->shape[axis];
    }
    return total == os[axis];
  }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const Shape& os = out[0].shape;
    size_t axis = static_cast<size_t>(L.op->i("axis")), es = dtype_size(out[0].dtype);
    int64_t outer = 1, inner = 1;
    for (size_t d = 0; d < axis; ++d) outer *= os[d];
    for (size_t d = axis + 1; d < os.size(); ++d) inner *= os[d];
    if (outer == 0 || inner == 0) return;
    size_t row = static_cast<size_t>(os[axis] * inner) * es, at = 0;
    for (size_t k = 0; k < L.in.size(); ++k) {
      size_t block = static_cast<size_t>(in[k].shape[axis] * inner) * es;
      if (block)
        check_call(L, cudaMemcpy2DAsync(static_cast<uint8_t*>(out[0].data) + at, row, in[k].data, block, block, static_cast<size_t>(outer),
                                        cudaMemcpyDeviceToDevice, stream_of(ctx)),
                   "cudaMemcpy2DAsync");
      at += block;
    }
  }
};

// ---- Gather / GatherElements / GatherND ------------------------------------------------------------
// Constant indices: index i in [-n(i), n(i)). Run-time indices: true (checked on the device).
template <typename Bound>
bool const_indices_ok(const LayerInfo& L, Bound n_of) {
  const uint8_t* c = L.const_data(1);
  if (!c) return true;
  int64_t m = L.in[1]->numel();
  for (int64_t i = 0; i < m; ++i) {
    int64_t v, n = n_of(i);
    if (L.in[1]->dtype == DType::I64) std::memcpy(&v, c + i * 8, 8);
    else {
      int32_t w;
      std::memcpy(&w, c + i * 4, 4);
      v = w;
    }
    if (v < -n || v >= n) return false;
  }
  return true;
}
bool const_indices_ok(const LayerInfo& L, int64_t n) {
  return const_indices_ok(L, [n](int64_t) { return n; });
}

template <typename X>
__device__ __forceinline__ int64_t norm_index(const X* idx, int64_t j, int64_t n) {
  int64_t v = static_cast<int64_t>(idx[j]);
  if (v < 0) v += n;
  return v >= 0 && v < n ? v : -1;
}

template <typename T, typename X>
__global__ void gather_kernel(const T* __restrict__ src, const X* __restrict__ idx, T* __restrict__ dst, int64_t m, int64_t n, int64_t inner,
                              int64_t total) {
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t i = t % inner, r = t / inner, j = r % m, o = r / m;
    int64_t v = norm_index(idx, j, n);
    dst[t] = v < 0 ? T(0) : src[(o * n + v) * inner + i];
  }
}

class GatherCuda : public Tactic {
 public:
  const char* name() const override { return "cuda.gather"; }
  bool can_implement(const LayerInfo& L) const override {
    if (L.in.size() < 2 || (L.in[1]->dtype != DType::I64 && L.in[1]->dtype != DType::I32) || dtype_size(L.in[0]->dtype) == 0) return false;
    int64_t axis = L.op->i("axis");
    const Shape& ds = L.in[0]->shape;
    if (axis < 0 || axis >= static_cast<int64_t>(ds.size())) return false;
    return const_indices_ok(L, ds[axis]);
  }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const Shape& ds = in[0].shape;
    int64_t axis = L.op->i("axis"), outer = 1, inner = 1, n = ds[axis];
    for (int64_t d = 0; d < axis; ++d) outer *= ds[d];
    for (size_t d = axis + 1; d < ds.size(); ++d) inner *= ds[d];
    int64_t m = in[1].numel(), total = outer * m * inner;
    if (total == 0) return;
    dispatch_bytes(in[0].dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      if (in[1].dtype == DType::I64)
        gather_kernel<T, int64_t><<<grid_for(total), kThreads, 0, stream_of(ctx)>>>(in[0].as<T>(), in[1].as<int64_t>(), out[0].as<T>(), m, n, inner, total);
      else
        gather_kernel<T, int32_t><<<grid_for(total), kThreads, 0, stream_of(ctx)>>>(in[0].as<T>(), in[1].as<int32_t>(), out[0].as<T>(), m, n, inner, total);
    });
    check_launch(L, name());
  }
};

// GatherND: output element t = (batch, tuple, s) reads data at batch * batch_stride + Σ_j idx_j ·
// stride_j + s, where the tuple's k indices (negative ones wrapped) address dims b..b+k-1.
constexpr int kMaxNDIndex = 8;
struct NDParams {
  int64_t tuples, slice, k, batch_stride, total;
  int64_t dim[kMaxNDIndex], stride[kMaxNDIndex];
};

template <typename T, typename X>
__global__ void gather_nd_kernel(const T* __restrict__ src, const X* __restrict__ idx, T* __restrict__ dst, NDParams p) {
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < p.total; t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t s = t % p.slice, r = t / p.slice, b = r / p.tuples;  // r: the (batch, tuple) pair
    const X* ix = idx + r * p.k;
    int64_t off = b * p.batch_stride + s;
    bool ok = true;
    for (int64_t j = 0; j < p.k; ++j) {
      int64_t v = norm_index(ix, j, p.dim[j]);
      ok &= v >= 0;
      off += (v < 0 ? 0 : v) * p.stride[j];
    }
    dst[t] = ok ? src[off] : T(0);
  }
}

class GatherNDCuda : public Tactic {
 public:
  const char* name() const override { return "cuda.gather_nd"; }
  static bool params(const LayerInfo& L, NDParams& p) {
    if (L.in.size() < 2 || !L.in[0] || !L.in[1] || (L.in[1]->dtype != DType::I64 && L.in[1]->dtype != DType::I32)) return false;
    const Shape& ds = L.in[0]->shape;
    const Shape& is = L.in[1]->shape;
    int64_t b = L.op->i("batch_dims");
    if (is.empty() || b < 0) return false;
    p.k = is.back();
    if (p.k < 1 || p.k > kMaxNDIndex || b + p.k > static_cast<int64_t>(ds.size()) || static_cast<int64_t>(is.size()) < b + 1) return false;
    int64_t batches = 1;
    p.tuples = 1;
    p.slice = 1;
    for (int64_t d = 0; d < b; ++d) batches *= ds[d];
    for (size_t d = b; d + 1 < is.size(); ++d) p.tuples *= is[d];
    for (size_t d = b + p.k; d < ds.size(); ++d) p.slice *= ds[d];
    std::vector<int64_t> st(ds.size());
    int64_t acc = 1;
    for (int d = static_cast<int>(ds.size()) - 1; d >= 0; --d) st[d] = acc, acc *= ds[d];
    p.batch_stride = b > 0 ? st[b - 1] : 0;
    for (int64_t j = 0; j < p.k; ++j) p.dim[j] = ds[b + j], p.stride[j] = st[b + j];
    p.total = batches * p.tuples * p.slice;
    return true;
  }
  bool can_implement(const LayerInfo& L) const override {
    NDParams p;
    auto nop = [](auto) {};
    if (!params(L, p) || !dispatch_bytes(L.in[0]->dtype, nop)) return false;
    // constant indices are checked here (the CPU reference refuses out-of-range ones at run)
    return const_indices_ok(L, [&p](int64_t i) { return p.dim[i % p.k]; });
  }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    NDParams p;
    if (!params(L, p)) fail("INTERNAL", where(L) + ": cuda.gather_nd cannot run this layer");
    if (p.total == 0) return;
    dispatch_bytes(in[0].dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      if (in[1].dtype == DType::I64)
        gather_nd_kernel<T, int64_t><<<grid_for(p.total), kThreads, 0, stream_of(ctx)>>>(in[0].as<T>(), in[1].as<int64_t>(), out[0].as<T>(), p);
      else
        gather_nd_kernel<T, int32_t><<<grid_for(p.total), kThreads, 0, stream_of(ctx)>>>(in[0].as<T>(), in[1].as<int32_t>(), out[0].as<T>(), p);
    });
    check_launch(L, name());
  }
};

template <typename T, typename X>
__global__ void gather_elements_kernel(const T* __restrict__ src, const X* __restrict__ idx, T* __restrict__ dst, Strided<1> walk, int64_t sa,
                                       int64_t n, int64_t total) {
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t off[1];
    offsets<int64_t, 1>(walk, t, off);
    int64_t v = norm_index(idx, t, n);
    dst[t] = v < 0 ? T(0) : src[off[0] + v * sa];
  }
}

class GatherElementsCuda : public Tactic {
 public:
  const char* name() const override { return "cuda.gather_elements"; }
  static bool geometry(const LayerInfo& L, Strided<1>& walk, int64_t& sa) {
    const Shape& ds = L.in[0]->shape;
    const Shape& is = L.in[1]->shape;
    int64_t axis = L.op->i("axis");
    if (axis < 0 || axis >= static_cast<int64_t>(ds.size()) || is.size() != ds.size()) return false;
    for (size_t d = 0; d < is.size(); ++d)
      if (is[d] > ds[d] && static_cast<int64_t>(d) != axis) return false;
    std::vector<int64_t> st(ds.size());
    int64_t acc = 1;
    for (int d = static_cast<int>(ds.size()) - 1; d >= 0; --d) st[d] = acc, acc *= ds[d];
    sa = st[axis];
    st[axis] = 0;
    return make_strided<1>(is, {st}, walk);
  }
  bool can_implement(const LayerInfo& L) const override {
    if (L.in.size() < 2 || (L.in[1]->dtype != DType::I64 && L.in[1]->dtype != DType::I32) || dtype_size(L.in[0]->dtype) == 0) return false;
    Strided<1> w;
    int64_t sa;
    return geometry(L, w, sa) && const_indices_ok(L, L.in[0]->shape[L.op->i("axis")]);
  }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    Strided<1> walk;
    int64_t sa;
    if (!geometry(L, walk, sa)) fail("INTERNAL", where(L) + ": cuda.gather_elements cannot run this layer");
    int64_t total = in[1].numel(), n = in[0].shape[L.op->i("axis")];
    if (total == 0) return;
    dispatch_bytes(in[0].dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      if (in[1].dtype == DType::I64)
        gather_elements_kernel<T, int64_t><<<grid_for(total), kThreads, 0, stream_of(ctx)>>>(in[0].as<T>(), in[1].as<int64_t>(), out[0].as<T>(), walk, sa, n, total);
      else
        gather_elements_kernel<T, int32_t><<<grid_for(total), kThreads, 0, stream_of(ctx)>>>(in[0].as<T>(), in[1].as<int32_t>(), out[0].as<T>(), walk, sa, n, total);
    });
    check_launch(L, name());
  }
};

// ---- Pad ------------------------------------------------------------------------------------------
struct PadParams {
  int rank, mode;  // mode: 0 constant, 1 reflect, 2 edge, 3 wrap
  int64_t is[kMaxRank], os[kMaxRank], ist[kMaxRank], pb[kMaxRank];
};

__device__ __forceinline__ int64_t pad_source(int m, int64_t i, int64_t n) {
  if (i >= 0 && i < n) return i;
  switch (m) {
    case 0: return -1;
    case 2: return i < 0 ? 0 : n - 1;
    case 3: return ((i % n) + n) % n;
    default: {
      if (n == 1) return 0;
      int64_t p = 2 * (n - 1);
      i = ((i % p) + p) % p;
      return i < n ? i : p - i;
    }
  }
}

template <typename T>
__global__ void pad_kernel(const T* __restrict__ src, T* __restrict__ dst, PadParams p, T fill, const T* fill_p, int64_t total) {
  T f = fill_p ? *fill_p : fill;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t r = t, off = 0;
    bool pad = false;
    for (int d = p.rank - 1; d >= 0; --d) {
      int64_t o = r % p.os[d];
      r /= p.os[d];
      int64_t s = pad_source(p.mode, o - p.pb[d], p.is[d]);
      if (s < 0) pad = true;
      else off += s * p.ist[d];
    }
    dst[t] = pad ? f : src[off];
  }
}

// The fill value as the CPU stores it: double → T (float16 through float, integers truncated).
template <typename T> T host_fill(double v) {
  if constexpr (std::is_same<T, __half>::value) return __float2half_rn(static_cast<float>(v));
  else if constexpr (std::is_same<T, bool>::value) return v != 0;
  else return static_cast<T>(v);
}

class PadCuda : public Tactic {
 public:
  const char* name() const override { return "cuda.pad"; }
  static bool params(const LayerInfo& L, PadParams& p) {
    const std::string& ms = L.op->s("mode");
    p.mode = ms == "reflect" ? 1 : ms == "edge" ? 2 : ms == "wrap" ? 3 : 0;
    const Shape& is = L.in[0]->shape;
    const Shape& os = L.out[0]->shape;
    const auto& pads = L.op->ints("pads");
    size_t r = is.size();
    if (pads.size() != 2 * r || os.size() != r || r > static_cast<size_t>(kMaxRank)) return false;
    if (p.mode != 0 && L.out[0]->numel() > 0)
      for (size_t d = 0; d < r; ++d)
        if (is[d] == 0 && os[d] > 0) return false;  // the CPU reports it
    p.rank = static_cast<int>(r);
    int64_t acc = 1;
    for (int d = static_cast<int>(r) - 1; d >= 0; --d) {
      p.is[d] = is[d], p.os[d] = os[d], p.pb[d] = pads[d], p.ist[d] = acc;
      acc *= is[d];
    }
    return true;
  }
  bool can_implement(const LayerInfo& L) const override {
    PadParams p;
    auto nop = [](auto) {};
    if (L.in.size() > 1 && L.in[1] && (L.in[1]->dtype != L.in[0]->dtype || L.in[1]->numel() > 1)) return false;
    return params(L, p) && dispatch_value(L.in[0]->dtype, nop);
  }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    PadParams p;
    if (!params(L, p)) fail("INTERNAL", where(L) + ": cuda.pad cannot run this layer");
    int64_t total = out[0].numel();
    if (total == 0) return;
    bool has_input_value = L.in.size() > 1 && L.in[1] && in[1].data && in[1].numel() > 0;
    dispatch_value(in[0].dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      T fill = host_fill<T>(L.op->f("value", 0.0));
      pad_kernel<T><<<grid_for(total), kThreads, 0, stream_of(ctx)>>>(in[0].as<T>(), out[0].as<T>(), p, fill,
                                                                      has_input_value ? in[1].as<T>() : nullptr, total);
    });
    check_launch(L, name());
  }
};

}  // namespace
}  // namespace cuk
KILN_REGISTER_TACTIC("cuda", "StridedCopy", cuk::StridedCopyCuda);
KILN_REGISTER_TACTIC("cuda", "Concat", cuk::ConcatCuda);
KILN_REGISTER_TACTIC("cuda", "Gather", cuk::GatherCuda);
KILN_REGISTER_TACTIC("cuda", "GatherElements", cuk::GatherElementsCuda);
KILN_REGISTER_TACTIC("cuda", "GatherND", cuk::GatherNDCuda);
KILN_REGISTER_TACTIC("cuda", "Pad", cuk::PadCuda);
}  // namespace kiln

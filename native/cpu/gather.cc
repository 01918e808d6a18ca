// Index-driven reads and writes. Variants:
// - Gather (axis): out[o, j, i] = data[o, idx[j], i] over outer/indexed/inner blocks.
// - GatherElements (axis): out has the indices' shape; along `axis` the coordinate is the index.
// - GatherND (batch_dims): each index tuple over the last indices dim selects a slice of data.
// - ScatterElements (axis, reduction) and ScatterND (reduction): out = data, then the updates are
//   written (or combined: add, mul, max, min) at the indexed positions, in order.
// Indices may be int32 or int64 and negative (counted from the end). Every index is checked and
// normalized before any copy; out-of-range indices fail with INVALID_INPUT naming the layer.
#include <algorithm>
#include <string>

#include "kernel_util.h"

namespace kiln {
namespace {

std::string where(const LayerInfo& L) { return "layer '" + L.op->name + "' (" + L.op->kind + ")"; }

// The indices as int64, each normalized against `extent(i)` (the size of the axis it indexes).
template <typename Extent>
std::vector<int64_t> read_indices(const LayerInfo& L, const Tensor& t, Extent extent) {
  std::vector<int64_t> v(static_cast<size_t>(t.numel()));
  if (t.dtype == DType::I64) std::copy_n(t.as<int64_t>(), v.size(), v.begin());
  else if (t.dtype == DType::I32) std::copy_n(t.as<int32_t>(), v.size(), v.begin());
  else unsupported_dtype(L, t.dtype);
  for (size_t i = 0; i < v.size(); ++i) {
    auto [axis, n] = extent(i);
    int64_t x = v[i] < 0 ? v[i] + n : v[i];
    if (x < 0 || x >= n)
      fail("INVALID_INPUT", where(L) + ": index " + std::to_string(v[i]) + " is out of range for axis " + std::to_string(axis) + " of size " +
                                std::to_string(n));
    v[i] = x;
  }
  return v;
}

class GatherRef : public Tactic {
 public:
  const char* name() const override { return "cpu.gather"; }
  bool reference() const override { return true; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const Shape& ds = in[0].shape;
    int64_t axis = L.op->i("axis");
    int64_t outer = 1, inner = 1, n = ds[axis];
    for (int64_t d = 0; d < axis; ++d) outer *= ds[d];
    for (size_t d = axis + 1; d < ds.size(); ++d) inner *= ds[d];
    auto idx = read_indices(L, in[1], [&](size_t) { return std::pair<int64_t, int64_t>(axis, n); });
    int64_t m = static_cast<int64_t>(idx.size());
    size_t row = static_cast<size_t>(inner) * dtype_size(in[0].dtype);
    const uint8_t* src = static_cast<const uint8_t*>(in[0].data);
    uint8_t* dst = static_cast<uint8_t*>(out[0].data);
    if (row == 0) return;
    ctx.pool->parallel_for(outer * m, grain_for(inner), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        int64_t o = r / m, j = r % m;
        std::memcpy(dst + r * row, src + (o * n + idx[j]) * row, row);
      }
    });
  }
};

class GatherElementsRef : public Tactic {
 public:
  const char* name() const override { return "cpu.gather_elements"; }
  bool reference() const override { return true; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext&) const override {
    const Shape& ds = in[0].shape;
    const Shape& is = in[1].shape;
    int64_t axis = L.op->i("axis");
    auto idx = read_indices(L, in[1], [&](size_t) { return std::pair<int64_t, int64_t>(axis, ds[axis]); });
    std::vector<int64_t> dst_strides = strides_of(ds);
    for (size_t d = 0; d < is.size(); ++d)
      if (is[d] > ds[d] && static_cast<int64_t>(d) != axis)
        fail("INVALID_INPUT", where(L) + ": indices " + shape_str(is) + " are larger than data " + shape_str(ds) + " in dim " + std::to_string(d));
    std::vector<int64_t> walk = dst_strides;
    walk[axis] = 0;
    int64_t sa = dst_strides[axis];
    dispatch_bytes(in[0].dtype, L, [&]<typename T>() {
      const T* src = in[0].as<T>();
      T* dst = out[0].as<T>();
      MultiIndex<1> it(is);
      it.strides[0] = &walk;
      it.seek(0);
      for (size_t i = 0; i < idx.size(); ++i, it.next()) dst[i] = src[it.off[0] + idx[i] * sa];
    });
  }
};

// GatherND geometry shared with ScatterND: batches × tuples, each tuple of k coordinates selecting a
// slice of `slice` elements.
struct NDGeom {
  int64_t batches = 1, tuples = 1, k = 0, slice = 1, batch_stride = 1;
  std::vector<int64_t> offsets;  // element offset of each (batch, tuple) slice in data
};

NDGeom nd_geometry(const LayerInfo& L, const Tensor& data, const Tensor& ind, int64_t b) {
  const Shape& ds = data.shape;
  const Shape& is = ind.shape;
  NDGeom g;
  g.k = is.back();
  for (int64_t d = 0; d < b; ++d) g.batches *= ds[d];
  for (size_t d = b; d + 1 < is.size(); ++d) g.tuples *= is[d];
  for (size_t d = b + g.k; d < ds.size(); ++d) g.slice *= ds[d];
  std::vector<int64_t> st = strides_of(ds);
  g.batch_stride = b > 0 ? st[b - 1] : 0;
  int64_t k = g.k;
  auto idx = read_indices(L, ind, [&](size_t i) {
    int64_t axis = b + static_cast<int64_t>(i % k);
    return std::pair<int64_t, int64_t>(axis, ds[axis]);
  });
  g.offsets.resize(static_cast<size_t>(g.batches * g.tuples));
  for (int64_t bt = 0; bt < g.batches; ++bt)
    for (int64_t t = 0; t < g.tuples; ++t) {
      int64_t off = bt * g.batch_stride;
      const int64_t* tup = idx.data() + (bt * g.tuples + t) * k;
      for (int64_t j = 0; j < k; ++j) off += tup[j] * st[b + j];
      g.offsets[bt * g.tuples + t] = off;
    }
  return g;
}

class GatherNDRef : public Tactic {
 public:
  const char* name() const override { return "cpu.gather_nd"; }
  bool reference() const override { return true; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext&) const override {
    NDGeom g = nd_geometry(L, in[0], in[1], L.op->i("batch_dims"));
    size_t es = dtype_size(in[0].dtype), row = static_cast<size_t>(g.slice) * es;
    const uint8_t* src = static_cast<const uint8_t*>(in[0].data);
    uint8_t* dst = static_cast<uint8_t*>(out[0].data);
    for (size_t i = 0; i < g.offsets.size(); ++i)
      if (row) std::memcpy(dst + i * row, src + g.offsets[i] * es, row);
  }
};

enum class Red { None, Add, Mul, Max, Min };

Red parse_red(const LayerInfo& L) {
  const std::string& r = L.op->s("reduction");
  if (r == "none") return Red::None;
  if (r == "add") return Red::Add;
  if (r == "mul") return Red::Mul;
  if (r == "max") return Red::Max;
  if (r == "min") return Red::Min;
  fail("INTERNAL", where(L) + ": unknown reduction '" + r + "'");
}

template <typename T>
void combine(Red r, T& dst, const T& u) {
  using C = compute_t<T>;
  C a = load(dst), b = load(u);
  switch (r) {
    case Red::None: dst = u; return;
    case Red::Add: store(dst, a + b); return;
    case Red::Mul: store(dst, a * b); return;
    case Red::Max: store(dst, std::max(a, b)); return;
    case Red::Min: store(dst, std::min(a, b)); return;
  }
}

class ScatterElementsRef : public Tactic {
 public:
  const char* name() const override { return "cpu.scatter_elements"; }
  bool reference() const override { return true; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext&) const override {
    const Shape& ds = in[0].shape;
    const Shape& is = in[1].shape;
    int64_t axis = L.op->i("axis");
    Red red = parse_red(L);
    if (in[2].shape != is) fail("INVALID_INPUT", where(L) + ": updates " + shape_str(in[2].shape) + " must have the indices' shape " + shape_str(is));
    for (size_t d = 0; d < is.size(); ++d)
      if (is[d] > ds[d] && static_cast<int64_t>(d) != axis)
        fail("INVALID_INPUT", where(L) + ": indices " + shape_str(is) + " are larger than data " + shape_str(ds) + " in dim " + std::to_string(d));
    auto idx = read_indices(L, in[1], [&](size_t) { return std::pair<int64_t, int64_t>(axis, ds[axis]); });
    if (out[0].data != in[0].data) std::memcpy(out[0].data, in[0].data, out[0].nbytes());
    std::vector<int64_t> st = strides_of(ds), walk = st;
    walk[axis] = 0;
    dispatch_all(in[0].dtype, L, [&]<typename T>() {
      T* dst = out[0].as<T>();
      const T* up = in[2].as<T>();
      MultiIndex<1> it(is);
      it.strides[0] = &walk;
      it.seek(0);
      for (size_t i = 0; i < idx.size(); ++i, it.next()) combine(red, dst[it.off[0] + idx[i] * st[axis]], up[i]);
    });
  }
};

class ScatterNDRef : public Tactic {
 public:
  const char* name() const override { return "cpu.scatter_nd"; }
  bool reference() const override { return true; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext&) const override {
    Red red = parse_red(L);
    NDGeom g = nd_geometry(L, in[0], in[1], 0);
    if (in[2].numel() != static_cast<int64_t>(g.offsets.size()) * g.slice)
      fail("INVALID_INPUT", where(L) + ": updates " + shape_str(in[2].shape) + " do not match the indexed slices");
    if (out[0].data != in[0].data) std::memcpy(out[0].data, in[0].data, out[0].nbytes());
    dispatch_all(in[0].dtype, L, [&]<typename T>() {
      T* dst = out[0].as<T>();
      const T* up = in[2].as<T>();
      for (size_t i = 0; i < g.offsets.size(); ++i)
        for (int64_t j = 0; j < g.slice; ++j) combine(red, dst[g.offsets[i] + j], up[i * g.slice + j]);
    });
  }
};

}  // namespace
KILN_REGISTER_TACTIC("cpu", "Gather", GatherRef);
KILN_REGISTER_TACTIC("cpu", "GatherElements", GatherElementsRef);
KILN_REGISTER_TACTIC("cpu", "GatherND", GatherNDRef);
KILN_REGISTER_TACTIC("cpu", "ScatterElements", ScatterElementsRef);
KILN_REGISTER_TACTIC("cpu", "ScatterND", ScatterNDRef);
}  // namespace kiln

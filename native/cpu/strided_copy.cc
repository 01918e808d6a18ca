// Data movement by strides. Variants:
// - StridedCopy: out (row-major over the attribute `shape`, which has out's element count) takes
//   in[offset + sum_d idx[d] * strides[d]] (element units; strides may be 0 or negative). TS lowers
//   Transpose, Slice, Split, Expand, Tile, DepthToSpace and SpaceToDepth to it by computing the
//   strides. Tactics: the reference walks element by element; "rows" merges contiguous dims, copies
//   unit-stride inner rows with memcpy and spreads rows over the pool.
// - Concat: the inputs side by side along `axis` (memcpy of each input's block per outer row).
// The view is checked against the input's size when the layer is prepared, so no tactic reads out of
// bounds whatever the attributes say.
#include <algorithm>

#include "kernel_util.h"

namespace kiln {
namespace {

struct View : LayerState {
  Shape shape;
  std::vector<int64_t> strides;
  int64_t offset = 0;
};

std::unique_ptr<View> read_view(const LayerInfo& L) {
  auto v = std::make_unique<View>();
  v->shape = L.op->ints("shape");
  v->strides = L.op->ints("strides");
  v->offset = L.op->i("offset");
  const std::string where = "layer '" + L.op->name + "' (StridedCopy)";
  if (v->strides.size() != v->shape.size()) fail("INTERNAL", where + ": shape and strides differ in rank");
  for (int64_t d : v->shape)
    if (d < 0) fail("INTERNAL", where + ": negative extent in the view");
  int64_t n = numel(v->shape);
  if (n != L.out[0]->numel() || L.out[0]->dtype != L.in[0]->dtype)
    fail("INTERNAL", where + ": the view " + shape_str(v->shape) + " does not match the output " + shape_str(L.out[0]->shape));
  if (n > 0) {
    int64_t lo = v->offset, hi = v->offset;
    for (size_t d = 0; d < v->shape.size(); ++d) {
      int64_t span = (v->shape[d] - 1) * v->strides[d];
      (span < 0 ? lo : hi) += span;
    }
    if (lo < 0 || hi >= L.in[0]->numel())
      fail("INTERNAL", where + ": the view reads elements [" + std::to_string(lo) + ", " + std::to_string(hi) + "] of an input of " +
                           std::to_string(L.in[0]->numel()));
  }
  return v;
}

class StridedCopyRef : public Tactic {
 public:
  const char* name() const override { return "cpu.strided_copy"; }
  bool reference() const override { return true; }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override { return read_view(L); }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext&) const override {
    const View& v = *static_cast<View*>(s);
    int64_t n = out[0].numel();
    dispatch_bytes(in[0].dtype, L, [&]<typename T>() {
      const T* src = in[0].as<T>() + v.offset;
      T* dst = out[0].as<T>();
      MultiIndex<1> it(v.shape);
      it.strides[0] = &v.strides;
      it.seek(0);
      for (int64_t i = 0; i < n; ++i, it.next()) dst[i] = src[it.off[0]];
    });
  }
};

// Rows: dims of extent 1 dropped, dims that are contiguous with their inner neighbour merged; the
// innermost dim is then one row, copied with memcpy when its stride is 1.
struct Rows : View {
  Shape outer;
  std::vector<int64_t> outer_strides;
  int64_t inner = 1, inner_stride = 1;
};

class StridedCopyRows : public Tactic {
 public:
  const char* name() const override { return "cpu.strided_copy.rows"; }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto v = read_view(L);
    auto r = std::make_unique<Rows>();
    r->offset = v->offset;
    Shape sh;
    std::vector<int64_t> st;
    for (size_t d = 0; d < v->shape.size(); ++d) {
      if (v->shape[d] == 1) continue;
      if (!sh.empty() && st.back() == v->strides[d] * v->shape[d]) {
        sh.back() *= v->shape[d];
        st.back() = v->strides[d];
      } else {
        sh.push_back(v->shape[d]);
        st.push_back(v->strides[d]);
      }
    }
    if (!sh.empty()) {
      r->inner = sh.back();
      r->inner_stride = st.back();
      sh.pop_back();
      st.pop_back();
    }
    r->outer = sh;
    r->outer_strides = st;
    return r;
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const Rows& r = *static_cast<Rows*>(s);
    if (out[0].numel() == 0) return;
    int64_t rows = numel(r.outer);
    dispatch_bytes(in[0].dtype, L, [&]<typename T>() {
      const T* src = in[0].as<T>() + r.offset;
      T* dst = out[0].as<T>();
      int64_t inner = r.inner, is = r.inner_stride;
      ctx.pool->parallel_for(rows, grain_for(inner), [&](int64_t r0, int64_t r1) {
        MultiIndex<1> it(r.outer);
        it.strides[0] = &r.outer_strides;
        it.seek(r0);
        for (int64_t row = r0; row < r1; ++row, it.next()) {
          const T* a = src + it.off[0];
          T* b = dst + row * inner;
          if (is == 1) std::memcpy(b, a, static_cast<size_t>(inner) * sizeof(T));
          else
            for (int64_t j = 0; j < inner; ++j) b[j] = a[j * is];
        }
      });
    });
  }
};

class ConcatRef : public Tactic {
 public:
  const char* name() const override { return "cpu.concat"; }
  bool reference() const override { return true; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext&) const override {
    const Shape& os = out[0].shape;
    size_t axis = static_cast<size_t>(L.op->i("axis"));
    size_t es = dtype_size(out[0].dtype);
    if (axis >= os.size()) fail("INTERNAL", "layer '" + L.op->name + "' (Concat): axis out of range");
    int64_t outer = 1, inner = 1, total = 0;
    for (size_t d = 0; d < axis; ++d) outer *= os[d];
    for (size_t d = axis + 1; d < os.size(); ++d) inner *= os[d];
    std::vector<size_t> block(L.in.size());
    for (size_t k = 0; k < L.in.size(); ++k) {
      const Shape& is = in[k].shape;
      if (is.size() != os.size() || in[k].dtype != out[0].dtype) fail("INTERNAL", "layer '" + L.op->name + "' (Concat): input " + std::to_string(k) + " does not fit");
      block[k] = static_cast<size_t>(is[axis] * inner) * es;
      total += is[axis];
    }
    if (total != os[axis]) fail("INTERNAL", "layer '" + L.op->name + "' (Concat): inputs do not add up to the output");
    uint8_t* dst = static_cast<uint8_t*>(out[0].data);
    for (int64_t o = 0; o < outer; ++o)
      for (size_t k = 0; k < L.in.size(); ++k) {
        if (block[k]) std::memcpy(dst, static_cast<const uint8_t*>(in[k].data) + o * block[k], block[k]);
        dst += block[k];
      }
  }
};

}  // namespace
KILN_REGISTER_TACTIC("cpu", "StridedCopy", StridedCopyRef);
KILN_REGISTER_TACTIC("cpu", "StridedCopy", StridedCopyRows);
KILN_REGISTER_TACTIC("cpu", "Concat", ConcatRef);
}  // namespace kiln

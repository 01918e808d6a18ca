// Where: out = cond ? x : y, with the three inputs broadcast to the output (numpy rules). Elements are
// moved as bytes of their size, so every element type works. Variants: the reference (a strided walk
// over the output index space) and a threaded one for inputs that all have the output's shape or one
// element (contiguous, no index arithmetic).
#include "kernel_util.h"

namespace kiln {
namespace {

struct State : LayerState {
  std::vector<int64_t> strides[3];
};

void check(const LayerInfo& L, const Tensor* in, const Tensor* out) {
  for (int k = 0; k < 3; ++k)
    if (!in[k].data && in[k].numel() > 0) fail("INTERNAL", "layer '" + L.op->name + "': Where input " + std::to_string(k) + " is missing");
  if (in[1].dtype != out[0].dtype || in[2].dtype != out[0].dtype || in[0].dtype != DType::Bool)
    fail("INTERNAL", "layer '" + L.op->name + "': Where needs a bool condition and X, Y of the output's type");
}

class WhereRef : public Tactic {
 public:
  const char* name() const override { return "cpu.where"; }
  bool reference() const override { return true; }
  bool can_implement(const LayerInfo& L) const override { return L.in.size() == 3; }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = std::make_unique<State>();
    for (int k = 0; k < 3; ++k) st->strides[k] = broadcast_strides(L.in[k]->shape, L.out[0]->shape);
    return st;
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext&) const override {
    const State& st = *static_cast<State*>(s);
    check(L, in, out);
    int64_t n = out[0].numel();
    if (n == 0) return;
    dispatch_bytes(out[0].dtype, L, [&]<typename T>() {
      const bool* c = in[0].as<bool>();
      const T* x = in[1].as<T>();
      const T* y = in[2].as<T>();
      T* o = out[0].as<T>();
      MultiIndex<3> it(out[0].shape);
      for (int k = 0; k < 3; ++k) it.strides[k] = &st.strides[k];
      it.seek(0);
      for (int64_t i = 0; i < n; ++i, it.next()) o[i] = c[it.off[0]] ? x[it.off[1]] : y[it.off[2]];
    });
  }
};

class WhereFlat : public Tactic {
 public:
  const char* name() const override { return "cpu.where.flat"; }
  bool can_implement(const LayerInfo& L) const override {
    if (L.in.size() != 3) return false;
    for (auto* t : L.in)
      if (!(t->shape == L.out[0]->shape || t->numel() == 1)) return false;
    return true;
  }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    check(L, in, out);
    int64_t n = out[0].numel();
    if (n == 0) return;
    // step 0 for a one-element input that is broadcast, 1 for a full one
    int64_t sc = in[0].numel() == n ? 1 : 0, sx = in[1].numel() == n ? 1 : 0, sy = in[2].numel() == n ? 1 : 0;
    dispatch_bytes(out[0].dtype, L, [&]<typename T>() {
      const bool* c = in[0].as<bool>();
      const T* x = in[1].as<T>();
      const T* y = in[2].as<T>();
      T* o = out[0].as<T>();
      ctx.pool->parallel_for(n, 16384, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) o[i] = c[i * sc] ? x[i * sx] : y[i * sy];
      });
    });
  }
};

}  // namespace
KILN_REGISTER_TACTIC("cpu", "Where", WhereRef);
KILN_REGISTER_TACTIC("cpu", "Where", WhereFlat);
}  // namespace kiln

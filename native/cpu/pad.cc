// Pad: out = x with `pads` (rank begins, then rank ends; negative values crop) added per dim. Modes:
// constant (the `value` attribute, or the optional scalar input 1 when it is only known at run time),
// reflect (mirror without repeating the edge), edge (repeat the edge), wrap (periodic). One tactic:
// each output row's source coordinates are mapped per dim, then the inner dim is copied element-wise.
#include <algorithm>

#include "kernel_util.h"

namespace kiln {
namespace {

enum class Mode { Constant, Reflect, Edge, Wrap };

// Maps an input-space coordinate (may lie outside [0, n)) to a source index, or -1 for the pad value.
inline int64_t source(Mode m, int64_t i, int64_t n) {
  if (i >= 0 && i < n) return i;
  switch (m) {
    case Mode::Constant: return -1;
    case Mode::Edge: return i < 0 ? 0 : n - 1;
    case Mode::Wrap: return ((i % n) + n) % n;
    case Mode::Reflect: {
      if (n == 1) return 0;
      int64_t p = 2 * (n - 1);
      i = ((i % p) + p) % p;
      return i < n ? i : p - i;
    }
  }
  return -1;
}

class PadRef : public Tactic {
 public:
  const char* name() const override { return "cpu.pad"; }
  bool reference() const override { return true; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const std::string& ms = L.op->s("mode");
    Mode mode = ms == "reflect" ? Mode::Reflect : ms == "edge" ? Mode::Edge : ms == "wrap" ? Mode::Wrap : Mode::Constant;
    const Shape& is = in[0].shape;
    const Shape& os = out[0].shape;
    const std::vector<int64_t>& pads = L.op->ints("pads");
    size_t r = is.size();
    if (pads.size() != 2 * r || os.size() != r) fail("INTERNAL", "layer '" + L.op->name + "' (Pad): pads do not match the rank");
    if (mode != Mode::Constant && out[0].numel() > 0)
      for (size_t d = 0; d < r; ++d)
        if (is[d] == 0 && os[d] > 0)
          fail("INVALID_INPUT", "layer '" + L.op->name + "' (Pad): mode '" + ms + "' cannot pad axis " + std::to_string(d) + ", which is empty");
    if (out[0].numel() == 0) return;
    std::vector<int64_t> ist = strides_of(is);
    Shape outer(os.begin(), os.end() - (r ? 1 : 0));
    int64_t inner = r ? os.back() : 1;
    int64_t rows = numel(outer);
    bool has_input_value = L.in.size() > 1 && in[1].data && in[1].numel() > 0;
    dispatch_all(in[0].dtype, L, [&]<typename T>() {
      T fill{};
      if (has_input_value) fill = in[1].as<T>()[0];
      else store(fill, L.op->f("value"));
      const T* src = in[0].as<T>();
      T* dst = out[0].as<T>();
      ctx.pool->parallel_for(rows, grain_for(inner), [&](int64_t r0, int64_t r1) {
        std::vector<int64_t> idx(outer.size());
        for (int64_t row = r0; row < r1; ++row) {
          int64_t lin = row, base = 0;
          bool pad_row = false;
          for (int64_t d = static_cast<int64_t>(outer.size()) - 1; d >= 0; --d) {
            int64_t o = lin % outer[d];
            lin /= outer[d];
            int64_t s = source(mode, o - pads[d], is[d]);
            if (s < 0) pad_row = true;
            else base += s * ist[d];
          }
          T* o = dst + row * inner;
          if (pad_row) {
            std::fill(o, o + inner, fill);
            continue;
          }
          if (r == 0) {
            o[0] = src[0];
            continue;
          }
          int64_t n = is[r - 1], pb = pads[r - 1];
          for (int64_t j = 0; j < inner; ++j) {
            int64_t s = source(mode, j - pb, n);
            o[j] = s < 0 ? fill : src[base + s];
          }
        }
      });
    });
  }
};

}  // namespace
KILN_REGISTER_TACTIC("cpu", "Pad", PadRef);
}  // namespace kiln

// TopK along one axis of the input viewed as [outer, n, inner]: outputs the k largest (`largest` 1)
// or smallest values and their int64 indices. Equal values keep the lower index first. With
// `sorted` 0 the order is not specified by ONNX; kiln returns them sorted all the same.
// One variant: the reference (a partial sort per group).
#include <algorithm>
#include <numeric>

#include "kernel_util.h"

namespace kiln {
namespace {

class TopKRef : public Tactic {
 public:
  const char* name() const override { return "cpu.topk"; }
  bool reference() const override { return true; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext&) const override {
    const Shape& s = in[0].shape;
    int64_t axis = L.op->i("axis"), k = L.op->i("k");
    bool largest = L.op->i("largest") != 0;
    if (axis < 0 || axis >= static_cast<int64_t>(s.size())) fail("INTERNAL", "layer '" + L.op->name + "': axis out of range");
    int64_t outer = 1, n = s[axis], inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= s[d];
    for (size_t d = axis + 1; d < s.size(); ++d) inner *= s[d];
    if (k < 0 || k > n)
      fail("INVALID_INPUT", "layer '" + L.op->name + "': k = " + std::to_string(k) + " but the axis has " + std::to_string(n) + " elements");
    if (k == 0) return;
    std::vector<int64_t> order(n);
    dispatch_numeric(in[0].dtype, L, [&]<typename T>() {
      using C = compute_t<T>;
      const T* x = in[0].as<T>();
      T* vals = out[0].as<T>();
      int64_t* idx = L.out.size() > 1 && out[1].data ? out[1].as<int64_t>() : nullptr;
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t j = 0; j < inner; ++j) {
          const T* g = x + o * n * inner + j;
          auto at = [&](int64_t i) { return static_cast<C>(load(g[i * inner])); };
          std::iota(order.begin(), order.end(), 0);
          std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
            C va = at(a), vb = at(b);
            if (va != vb) return largest ? va > vb : va < vb;
            return a < b;
          });
          for (int64_t r = 0; r < k; ++r) {
            int64_t dst = o * k * inner + r * inner + j;
            vals[dst] = g[order[r] * inner];
            if (idx) idx[dst] = order[r];
          }
        }
    });
  }
};

}  // namespace
KILN_REGISTER_TACTIC("cpu", "TopK", TopKRef);
}  // namespace kiln

#include "kernel_util.h"

namespace kiln {

void unsupported_dtype(const LayerInfo& L, DType t) {
  fail("UNSUPPORTED", "layer '" + L.op->name + "' (" + L.op->kind + "): element type " + dtype_name(t) + " is not supported by this kernel");
}

std::vector<int64_t> strides_of(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (int d = static_cast<int>(s.size()) - 2; d >= 0; --d) st[d] = st[d + 1] * s[d + 1];
  return st;
}

std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out) {
  std::vector<int64_t> st(out.size(), 0);
  std::vector<int64_t> own = strides_of(in);
  size_t off = out.size() - in.size();
  for (size_t d = 0; d < in.size(); ++d) st[off + d] = in[d] == 1 && out[off + d] != 1 ? 0 : own[d];
  return st;
}

}  // namespace kiln

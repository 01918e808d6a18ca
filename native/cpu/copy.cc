// Copy: the output is a byte copy of the input (Identity, and graph outputs that alias other tensors).
#include "kernel_util.h"

namespace kiln {
namespace {
class CopyRef : public Tactic {
 public:
  const char* name() const override { return "cpu.copy"; }
  bool reference() const override { return true; }
  void run(const LayerInfo&, LayerState*, const Tensor* in, Tensor* out, RunContext&) const override {
    if (out[0].data != in[0].data && out[0].nbytes()) std::memcpy(out[0].data, in[0].data, out[0].nbytes());
  }
};
}  // namespace
KILN_REGISTER_TACTIC("cpu", "Copy", CopyRef);
}  // namespace kiln

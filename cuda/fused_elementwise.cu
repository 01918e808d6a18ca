// Fused element-wise chains for the "cuda" backend: kind 'Elementwise' (cuda.elementwise.fused), the
// graph optimizer's element-wise fusion, matching native/cpu/elementwise.cc. The program (at most
// kMaxInstr instructions over at most kMaxIn inputs) travels by value in the kernel's parameter struct:
// instruction k computes unary(a) or binary(a, b) in float, with the formulas of the Unary/Binary
// kernels (elementwise_ops.cuh, the op a run-time value). One thread per output element (grid-stride):
// the element's offset in every input comes from the broadcast strides of the merged index space
// (prepared once), the inputs are read once into a register file, the instructions run over it, and
// the last result is stored. float32, and float16 (read and computed in float, the result rounded once)
// when every tensor of the layer is float16. Nothing is allocated, copied or synchronized at run time.
#include <sstream>

#include "elementwise_ops.cuh"
#include "kern.cuh"

namespace kiln {
namespace cuk {
namespace {

constexpr int kMaxIn = 16;
constexpr int kMaxInstr = 32;
constexpr int64_t kNone = -1000;  // the CPU program's "no operand"

// The program as the kernel sees it. a/c name a slot of the register file: inputs 0..kMaxIn-1, the
// result of instruction k at kMaxIn + k.
struct Program {
  int nin = 0, n = 0;
  uint8_t op[kMaxInstr] = {};
  uint8_t unary[kMaxInstr] = {};
  uint8_t a[kMaxInstr] = {}, c[kMaxInstr] = {};
  float alpha[kMaxInstr] = {}, beta[kMaxInstr] = {}, gamma[kMaxInstr] = {};
  const void* in[kMaxIn] = {};
};

struct State : LayerState {
  Program prog;
  Strided<kMaxIn> sp;
  bool idx32 = true;
};

bool float_uop(UOp u) { return !uop_bool_result(u) && u != UOp::Not && u != UOp::BitwiseNot && u != UOp::Count; }
bool float_bop(BOp b) { return !is_cmp(b) && !is_logic(b) && !is_bits(b) && b != BOp::Count; }

// Builds the state; an empty string, or why the layer cannot run here.
std::string build(const LayerInfo& L, State& st) {
  const PlanOp& op = *L.op;
  std::vector<std::string> names;
  std::stringstream ss(op.s("ops", ""));
  for (std::string item; std::getline(ss, item, ',');) names.push_back(item);
  std::vector<int64_t> args = op.ints("args", {});
  std::vector<double> params = op.has("params") ? op.floats("params") : std::vector<double>{};
  if (names.empty() || args.size() != 2 * names.size() || params.size() != 3 * names.size()) return "malformed program";
  if (names.size() > static_cast<size_t>(kMaxInstr)) return "more than " + std::to_string(kMaxInstr) + " instructions";
  if (L.in.size() > static_cast<size_t>(kMaxIn)) return "more than " + std::to_string(kMaxIn) + " inputs";
  Program& p = st.prog;
  p.nin = static_cast<int>(L.in.size());
  p.n = static_cast<int>(names.size());
  for (int k = 0; k < p.n; ++k) {
    const std::string& nm = names[k];
    if (nm.size() < 3 || nm[1] != ':' || (nm[0] != 'u' && nm[0] != 'b')) return "malformed instruction '" + nm + "'";
    p.unary[k] = nm[0] == 'u';
    if (p.unary[k]) {
      UOp u;
      if (!parse_uop(nm.substr(2), u) || !float_uop(u)) return "unsupported instruction '" + nm + "'";
      p.op[k] = static_cast<uint8_t>(u);
    } else {
      BOp b;
      if (!parse_bop_name(nm.substr(2), false, b) || !float_bop(b)) return "unsupported instruction '" + nm + "'";
      p.op[k] = static_cast<uint8_t>(b);
    }
    int64_t a = args[2 * k], c = args[2 * k + 1];
    if (a == kNone || (!p.unary[k] && c == kNone)) return "instruction " + std::to_string(k) + " lacks an operand";
    auto slot = [&](int64_t r, uint8_t& s) {
      if (r == kNone) return s = 0, true;
      if (r >= p.nin || (r < 0 && -(r + 1) >= k)) return false;
      s = static_cast<uint8_t>(r >= 0 ? r : kMaxIn + (-(r + 1)));
      return true;
    };
    if (!slot(a, p.a[k]) || !slot(c, p.c[k])) return "instruction " + std::to_string(k) + " reads an operand it cannot";
    p.alpha[k] = static_cast<float>(params[3 * k]);
    p.beta[k] = static_cast<float>(params[3 * k + 1]);
    p.gamma[k] = static_cast<float>(params[3 * k + 2]);
  }
  DType t = L.out[0]->dtype;
  if (t != DType::F32 && t != DType::F16) return "takes float32 or float16 tensors";
  const Shape& os = L.out[0]->shape;
  std::vector<std::vector<int64_t>> strides;
  for (auto* x : L.in) {
    if (!x || x->dtype != t) return "every input must have the output's element type";
    if (x->shape.size() > os.size()) return "an input has a higher rank than the output";
    strides.push_back(bcast_strides(x->shape, os));
  }
  strides.resize(kMaxIn, std::vector<int64_t>(os.size(), 0));
  if (!make_strided<kMaxIn>(os, strides, st.sp)) return "broadcast rank over " + std::to_string(kMaxRank);
  st.idx32 = fits32(st.sp, L.out[0]->numel());
  return "";
}

template <typename T, typename I>
__global__ void fused_kernel(Program p, Strided<kMaxIn> sp, T* out, int64_t n) {
  I step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < static_cast<I>(n); i += step) {
    I off[kMaxIn];
    offsets<I, kMaxIn>(sp, i, off);
    float r[kMaxIn + kMaxInstr];
#pragma unroll
    for (int k = 0; k < kMaxIn; ++k)
      if (k < p.nin) r[k] = ld(static_cast<const T*>(p.in[k])[off[k]]);
    for (int k = 0; k < p.n; ++k) {
      float x = r[p.a[k]], y = r[p.c[k]];
      r[kMaxIn + k] = p.unary[k] ? ufloat_rt(static_cast<UOp>(p.op[k]), x, p.alpha[k], p.beta[k], p.gamma[k])
                                 : bfloat_rt(static_cast<BOp>(p.op[k]), x, y, false);
    }
    st(out[i], r[kMaxIn + p.n - 1]);
  }
}

class ElementwiseFusedCuda : public Tactic {
 public:
  const char* name() const override { return "cuda.elementwise.fused"; }
  bool can_implement(const LayerInfo& L) const override {
    State st;
    return build(L, st).empty();
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = std::make_unique<State>();
    std::string why = build(L, *st);
    if (!why.empty()) fail("INVALID_ENGINE", where(L) + ": " + why);
    return st;
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const State& st = *static_cast<State*>(s);
    int64_t n = out[0].numel();
    if (n == 0) return;
    Program p = st.prog;
    for (int k = 0; k < p.nin; ++k) p.in[k] = in[k].data;
    cudaStream_t stream = stream_of(ctx);
    bool ok = dispatch_float(out[0].dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      T* y = static_cast<T*>(out[0].data);
      if (st.idx32) fused_kernel<T, uint32_t><<<grid_for(n), kThreads, 0, stream>>>(p, st.sp, y, n);
      else fused_kernel<T, int64_t><<<grid_for(n), kThreads, 0, stream>>>(p, st.sp, y, n);
    });
    if (!ok) fail("INTERNAL", where(L) + ": cuda.elementwise.fused got " + dtype_name(out[0].dtype));
    check_launch(L, "elementwise.fused");
  }
};

}  // namespace
}  // namespace cuk
KILN_REGISTER_TACTIC("cuda", "Elementwise", cuk::ElementwiseFusedCuda);
}  // namespace kiln

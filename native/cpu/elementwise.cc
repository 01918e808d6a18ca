// Elementwise: a fused chain of element-wise ops (the graph optimizer's element-wise fusion) run as one
// loop, computed in float. Each input is float32 or float16 on its own (an fp16 engine's fused chain may
// read a float32 graph input or constant next to float16 activations), and so is the output; float16
// values are widened on load and the result is rounded once on store. The program is a list of instructions over registers: instruction k computes
// `unary(a)` or `binary(a, b)` where an operand >= 0 names an input (broadcast to the output shape,
// numpy rules) and an operand < 0 names the result of instruction -(operand + 1); the last
// instruction's result is the output. Attributes: `ops` (comma-separated, "u:Relu" / "b:Add"), `args`
// (two per instruction; -1000 for none), `params` (alpha, beta, gamma per instruction).
// Variants: cpu.elementwise.ref (one element at a time, the oracle) and cpu.elementwise.block (blocks
// of 256 elements: inputs gathered once, each instruction a tight loop over the block; threaded).
#include <sstream>

#include "binary_math.h"
#include "kernel_util.h"
#include "unary_math.h"

namespace kiln {
namespace {

constexpr int64_t kNone = -1000;
constexpr int64_t kBlock = 256;

struct Instr {
  bool is_unary = true;
  unary::Op u{};
  binary::Op b{};
  int64_t a = kNone, c = kNone;
  float alpha = 0, beta = 0, gamma = 0;
};

struct State : LayerState {
  std::vector<Instr> prog;
  std::vector<bool> half;                     // per input: stored as float16 (else float32)
  std::vector<std::vector<int64_t>> strides;  // per input, broadcast to the output
  std::vector<bool> full;                     // input has the output's shape
};

std::unique_ptr<State> make_state(const LayerInfo& L) {
  const PlanOp& op = *L.op;
  auto bad = [&](const std::string& why) { fail("INVALID_ENGINE", "layer '" + op.name + "' (Elementwise): " + why); };
  auto st = std::make_unique<State>();
  std::vector<std::string> names;
  std::stringstream ss(op.s("ops"));
  for (std::string item; std::getline(ss, item, ',');) names.push_back(item);
  const auto& args = op.ints("args");
  const auto& params = op.floats("params");
  if (names.empty() || args.size() != 2 * names.size() || params.size() != 3 * names.size()) bad("malformed program");
  int64_t nin = static_cast<int64_t>(L.in.size());
  for (size_t k = 0; k < names.size(); ++k) {
    Instr in;
    const std::string& n = names[k];
    if (n.size() < 3 || n[1] != ':' || (n[0] != 'u' && n[0] != 'b')) bad("malformed instruction '" + n + "'");
    in.is_unary = n[0] == 'u';
    if (in.is_unary) in.u = unary::parse(n.substr(2), op.name);
    else in.b = binary::parse(n.substr(2), false, op.name);
    in.a = args[2 * k];
    in.c = args[2 * k + 1];
    for (int64_t r : {in.a, in.c}) {
      if (r == kNone) continue;
      if (r >= nin || (r < 0 && -(r + 1) >= static_cast<int64_t>(k))) bad("instruction " + std::to_string(k) + " reads an operand it cannot");
    }
    if (in.a == kNone || (!in.is_unary && in.c == kNone)) bad("instruction " + std::to_string(k) + " lacks an operand");
    in.alpha = static_cast<float>(params[3 * k]);
    in.beta = static_cast<float>(params[3 * k + 1]);
    in.gamma = static_cast<float>(params[3 * k + 2]);
    st->prog.push_back(in);
  }
  const Shape& os = L.out[0]->shape;
  for (auto* t : L.in) {
    if (!t || (t->dtype != DType::F32 && t->dtype != DType::F16)) bad("takes float32 or float16 inputs");
    st->strides.push_back(broadcast_strides(t->shape, os));
    st->full.push_back(t->shape == os);
    st->half.push_back(t->dtype == DType::F16);
  }
  return st;
}

// Element `off` of a float32 or float16 tensor, in float.
inline float read(const Tensor& t, bool half, int64_t off) { return half ? load(t.as<f16>()[off]) : t.as<float>()[off]; }

inline float eval(const Instr& in, float x, float y) {
  if (in.is_unary) return unary::eval_float<float>(in.u, x, in.alpha, in.beta, in.gamma);
  return binary::apply<float>(in.b, x, y, false);
}

bool is_float(const PlanTensor* t) { return t && (t->dtype == DType::F32 || t->dtype == DType::F16); }
// Every input and the output float32 or float16, each on its own.
bool floats_only(const LayerInfo& L) {
  for (auto* t : L.in)
    if (!is_float(t)) return false;
  return is_float(L.out[0]);
}

class ElementwiseRef : public Tactic {
 public:
  const char* name() const override { return "cpu.elementwise.ref"; }
  bool reference() const override { return true; }
  bool can_implement(const LayerInfo& L) const override { return floats_only(L); }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override { return make_state(L); }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext&) const override {
    const State& st = *static_cast<State*>(s);
    size_t nin = L.in.size();
    int64_t n = out[0].numel();
    bool half_out = out[0].dtype == DType::F16;
    std::vector<float> reg(st.prog.size());
    std::vector<int64_t> off(nin);
    const Shape& shape = out[0].shape;
    std::vector<int64_t> idx(shape.size(), 0);
    for (int64_t i = 0; i < n; ++i) {
      for (size_t k = 0; k < nin; ++k) {
        off[k] = 0;
        for (size_t d = 0; d < shape.size(); ++d) off[k] += idx[d] * st.strides[k][d];
      }
      auto operand = [&](int64_t r) { return r == kNone ? 0.f : r >= 0 ? read(in[r], st.half[r], off[r]) : reg[-(r + 1)]; };
      for (size_t k = 0; k < st.prog.size(); ++k) reg[k] = eval(st.prog[k], operand(st.prog[k].a), operand(st.prog[k].c));
      if (half_out) store(out[0].as<f16>()[i], reg.back());
      else out[0].as<float>()[i] = reg.back();
      for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d)
        if (++idx[d] < shape[d]) break;
        else idx[d] = 0;
    }
  }
};

class ElementwiseBlock : public Tactic {
 public:
  const char* name() const override { return "cpu.elementwise.block"; }
  bool can_implement(const LayerInfo& L) const override { return floats_only(L) && L.in.size() <= 16; }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override { return make_state(L); }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const State& st = *static_cast<State*>(s);
    size_t nin = L.in.size(), np = st.prog.size();
    int64_t n = out[0].numel();
    bool half_out = out[0].dtype == DType::F16;
    float* y = half_out ? nullptr : out[0].as<float>();
    const Shape& shape = out[0].shape;
    int64_t blocks = (n + kBlock - 1) / kBlock;
    ctx.pool->parallel_for(blocks, std::max<int64_t>(1, 16 / static_cast<int64_t>(np)), [&](int64_t b0, int64_t b1) {
      // registers: one row per input, one per instruction (the last one's row stages a float16 output)
      std::vector<float> buf((nin + np) * kBlock);
      std::vector<const float*> src(nin);
      for (int64_t blk = b0; blk < b1; ++blk) {
        int64_t start = blk * kBlock, len = std::min(kBlock, n - start);
        for (size_t k = 0; k < nin; ++k) {
          if (st.full[k] && !st.half[k]) {
            src[k] = in[k].as<float>() + start;
            continue;
          }
          float* dst = buf.data() + k * kBlock;
          if (st.full[k]) {
            const f16* p = in[k].as<f16>() + start;
            for (int64_t j = 0; j < len; ++j) dst[j] = load(p[j]);
          } else {
            MultiIndex<1> it(shape);
            it.strides[0] = &st.strides[k];
            it.seek(start);
            for (int64_t j = 0; j < len; ++j, it.next()) dst[j] = read(in[k], st.half[k], it.off[0]);
          }
          src[k] = dst;
        }
        auto operand = [&](int64_t r) -> const float* { return r == kNone ? nullptr : r >= 0 ? src[r] : buf.data() + (nin + (-(r + 1))) * kBlock; };
        for (size_t k = 0; k < np; ++k) {
          const Instr& ins = st.prog[k];
          float* r = k + 1 == np && y ? y + start : buf.data() + (nin + k) * kBlock;
          const float* a = operand(ins.a);
          const float* c = operand(ins.c);
          if (ins.is_unary)
            for (int64_t j = 0; j < len; ++j) r[j] = unary::eval_float<float>(ins.u, a[j], ins.alpha, ins.beta, ins.gamma);
          else
            for (int64_t j = 0; j < len; ++j) r[j] = binary::apply<float>(ins.b, a[j], c[j], false);
        }
        if (half_out) {
          const float* r = buf.data() + (nin + np - 1) * kBlock;
          f16* dst = out[0].as<f16>() + start;
          for (int64_t j = 0; j < len; ++j) store(dst[j], r[j]);
        }
      }
    });
  }
};

}  // namespace
KILN_REGISTER_TACTIC("cpu", "Elementwise", ElementwiseRef);
KILN_REGISTER_TACTIC("cpu", "Elementwise", ElementwiseBlock);
}  // namespace kiln

// Attention: scaled dot-product attention fused by the graph optimizer (attention-recognition):
//   out[b,h,s,:] = softmax_j(scale · Σ_d Q[b,h,s,d]·K[b,h,j,d] + mask[b,h,s,j]) · V[b,h,j,:]
// The score matrix is never stored: each query row's scores live in a per-task scratch row. Q, K, V
// and the output are read and written through element strides over (b, h, position, d), so the
// transposes around attention in exported graphs need no copies. Attributes: dims [B, H, S, T, D, Dv],
// q_strides, k_strides, v_strides, o_strides, mask_strides (4 each; mask_strides 0 where broadcast),
// scale. Inputs: Q, K, V, optional mask, all float32 or all float16 with the output (float16 is computed
// in float: the query row is widened once, scores, softmax and the weighted sum stay float, the output
// is rounded once). Variant: cpu.attention (rows of all heads spread over the pool).
#include <algorithm>
#include <cmath>

#include "kernel_util.h"

namespace kiln {
namespace {

struct State : LayerState {
  int64_t B, H, S, T, D, Dv;
  std::vector<int64_t> qs, ks, vs, os, ms;
  float scale;
  bool mask;
};

std::unique_ptr<State> make_state(const LayerInfo& L) {
  const PlanOp& op = *L.op;
  auto bad = [&](const std::string& why) { fail("INVALID_ENGINE", "layer '" + op.name + "' (Attention): " + why); };
  auto st = std::make_unique<State>();
  const auto& d = op.ints("dims");
  if (d.size() != 6) bad("dims must be [B, H, S, T, D, Dv]");
  st->B = d[0], st->H = d[1], st->S = d[2], st->T = d[3], st->D = d[4], st->Dv = d[5];
  st->qs = op.ints("q_strides"), st->ks = op.ints("k_strides"), st->vs = op.ints("v_strides"), st->os = op.ints("o_strides");
  st->scale = static_cast<float>(op.f("scale"));
  st->mask = L.in.size() > 3 && L.in[3];
  if (st->mask) st->ms = op.ints("mask_strides");
  for (auto* v : {&st->qs, &st->ks, &st->vs, &st->os}) if (v->size() != 4) bad("strides must have 4 entries");
  if (st->mask && st->ms.size() != 4) bad("mask_strides must have 4 entries");
  for (int64_t x : d) if (x < 0) bad("negative dim");
  // Every reachable element must lie inside its tensor.
  auto reach = [&](const std::vector<int64_t>& s, int64_t n2, int64_t n3) {
    return (st->B - 1) * s[0] + (st->H - 1) * s[1] + (n2 - 1) * s[2] + (n3 - 1) * s[3];
  };
  auto check = [&](const PlanTensor* t, const std::vector<int64_t>& s, int64_t n2, int64_t n3, const char* what) {
    for (int64_t x : s) if (x < 0) bad(std::string(what) + " has a negative stride");
    if (st->B && st->H && n2 && n3 && reach(s, n2, n3) >= t->numel()) bad(std::string(what) + " is smaller than its strides reach");
    if (t->dtype != DType::F32 && t->dtype != DType::F16) bad(std::string(what) + " must be float32 or float16");
    if (t->dtype != L.out[0]->dtype) bad(std::string(what) + " must have the output's element type");
  };
  check(L.in[0], st->qs, st->S, st->D, "Q");
  check(L.in[1], st->ks, st->T, st->D, "K");
  check(L.in[2], st->vs, st->T, st->Dv, "V");
  check(L.out[0], st->os, st->S, st->Dv, "the output");
  if (st->mask) check(L.in[3], st->ms, st->S, st->T, "the mask");
  return st;
}

class AttentionCpu : public Tactic {
 public:
  const char* name() const override { return "cpu.attention"; }
  bool reference() const override { return true; }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override { return make_state(L); }
  void run(const LayerInfo&, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const State& st = *static_cast<State*>(s);
    if (out[0].dtype == DType::F16) compute<f16>(st, in, out, ctx);
    else compute<float>(st, in, out, ctx);
  }

 private:
  template <typename T>
  static void compute(const State& st, const Tensor* in, Tensor* out, RunContext& ctx) {
    const T* Q = in[0].as<T>();
    const T* K = in[1].as<T>();
    const T* V = in[2].as<T>();
    const T* M = st.mask ? in[3].as<T>() : nullptr;
    T* O = out[0].as<T>();
    int64_t rows = st.B * st.H * st.S;
    ctx.pool->parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, st.T * st.D)), [&](int64_t r0, int64_t r1) {
      std::vector<float> p(st.T);
      std::vector<float> acc(st.Dv);
      std::vector<float> qf(st.D);
      for (int64_t r = r0; r < r1; ++r) {
        int64_t s_ = r % st.S, h = (r / st.S) % st.H, b = r / (st.S * st.H);
        const T* q = Q + b * st.qs[0] + h * st.qs[1] + s_ * st.qs[2];
        const T* k = K + b * st.ks[0] + h * st.ks[1];
        const T* v = V + b * st.vs[0] + h * st.vs[1];
        const T* m = M ? M + b * st.ms[0] + h * st.ms[1] + s_ * st.ms[2] : nullptr;
        for (int64_t d = 0; d < st.D; ++d) qf[d] = load(q[d * st.qs[3]]);
        float mx = -INFINITY;
        for (int64_t j = 0; j < st.T; ++j) {
          const T* kj = k + j * st.ks[2];
          float dot = 0;
          for (int64_t d = 0; d < st.D; ++d) dot += qf[d] * load(kj[d * st.ks[3]]);
          float x = dot * st.scale + (m ? static_cast<float>(load(m[j * st.ms[3]])) : 0.f);
          p[j] = x;
          mx = std::max(mx, x);
        }
        float sum = 0;
        for (int64_t j = 0; j < st.T; ++j) sum += (p[j] = std::exp(p[j] - mx));
        std::fill(acc.begin(), acc.end(), 0.f);
        for (int64_t j = 0; j < st.T; ++j) {
          const T* vj = v + j * st.vs[2];
          float w = p[j];
          for (int64_t d = 0; d < st.Dv; ++d) acc[d] += w * load(vj[d * st.vs[3]]);
        }
        T* o = O + b * st.os[0] + h * st.os[1] + s_ * st.os[2];
        for (int64_t d = 0; d < st.Dv; ++d) store(o[d * st.os[3]], acc[d] / sum);
      }
    });
  }
};

}  // namespace
KILN_REGISTER_TACTIC("cpu", "Attention", AttentionCpu);
}  // namespace kiln

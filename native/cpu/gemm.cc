// Gemm: batched matrix products with a fused epilogue, the native kind of ONNX Gemm and MatMul.
//   out[b, m, n] = act(alpha * sum_k A[b](m, k) * B[b](k, n) + beta * C[b, m, n])
// Attributes (all resolved by TS): M, N, K; transA/transB (A stored [K, M] / B stored [N, K]); alpha,
// beta; batch (the output's batch dims), a_batch_strides / b_batch_strides (element strides of each
// batch dim, 0 where broadcast); c_strides (strides of the optional C over [batch..., M, N], 0 where
// broadcast); activation (sgemm.h); an optional input 3, the residual, of the output's shape, added before the
// activation; optional a_offset / a_ld, b_offset / b_ld: where A and B start and their leading
// dimensions (the element step between rows as stored; default contiguous: K or M, N or K), so a
// GEMM can read an operand in place as a window of a larger tensor (src/passes/strided-operands.ts);
// optional d_batch_strides / d_ld: where output element (batch, m, n) goes (default contiguous
// [batch..., M, N]), so a GEMM writes a permuted layout in place (not with C or a residual).
// Variants: cpu.gemm.ref (plain triple loop, double accumulation, float16/bfloat16/float32/float64)
// and cpu.gemm.blocked (float32: packed panels, AVX2/FMA microkernel, threaded; sgemm.h).
#include <algorithm>

#include "../gemm_dims.h"
#include "kernel_util.h"
#include "sgemm.h"

namespace kiln {
namespace {

struct GemmState : LayerState, GemmDims {
  double alpha = 1, beta = 0;
  std::vector<int64_t> batch, sa, sb, sc;  // sc: batch dims then M, N
  std::vector<int64_t> sd;                 // output batch strides
  int64_t ldd = 0;                         // output row stride
  bool has_c = false;
  bool has_residual = false;  // input 3: a tensor of the output's shape added before the activation
  int64_t nbatch = 1;
  Activation act;

  // Offsets of batch item `b` into A, B, C and the output.
  void offsets(int64_t b, int64_t& oa, int64_t& ob, int64_t& oc, int64_t& od) const {
    oa = ob = oc = od = 0;
    for (int d = static_cast<int>(batch.size()) - 1; d >= 0; --d) {
      int64_t i = b % batch[d];
      b /= batch[d];
      oa += i * sa[d];
      ob += i * sb[d];
      od += i * sd[d];
      if (has_c) oc += i * sc[d];
    }
  }
};

std::unique_ptr<GemmState> make_state(const LayerInfo& L) {
  const PlanOp& op = *L.op;
  auto st = std::make_unique<GemmState>();
  auto bad = [&](const std::string& why) {
    fail("INVALID_ENGINE", "layer '" + op.name + "' (Gemm): " + why);
  };
  if (L.in.size() < 2 || !L.in[0] || !L.in[1] || L.out.empty() || !L.out[0]) bad("needs inputs A, B and an output");
  static_cast<GemmDims&>(*st) = GemmDims::read(op);
  st->alpha = op.f("alpha");
  st->beta = op.f("beta");
  st->batch = op.ints("batch");
  st->sa = op.ints("a_batch_strides");
  st->sb = op.ints("b_batch_strides");
  st->has_c = L.in.size() > 2 && L.in[2] != nullptr;
  if (st->has_c) st->sc = op.ints("c_strides");
  st->ldd = op.i("d_ld", st->N);
  if (op.has("d_batch_strides")) {
    st->sd = op.ints("d_batch_strides");
  } else {  // contiguous [batch..., M, N]
    st->sd.assign(st->batch.size(), 0);
    int64_t step = st->M * st->N;
    for (size_t d = st->batch.size(); d-- > 0;) {
      st->sd[d] = step;
      step *= st->batch[d];
    }
  }
  st->act = parse_activation(L);
  size_t nb = st->batch.size();
  if (st->M < 0 || st->N < 0 || st->K < 0) bad("negative matrix size");
  if (st->a_off < 0 || st->b_off < 0 || st->lda < 0 || st->ldb < 0) bad("negative operand offset or leading dimension");
  if (st->sa.size() != nb || st->sb.size() != nb || (st->has_c && st->sc.size() != nb + 2)) bad("batch stride lists do not match the batch rank");
  for (int64_t d : st->batch) {
    if (d < 0) bad("negative batch dim");
    st->nbatch *= d;
  }
  // Every element an index can reach must lie inside its tensor.
  auto reach = [&](const std::vector<int64_t>& s, size_t n) {
    int64_t m = 0;
    for (size_t d = 0; d < n; ++d) {
      if (s[d] < 0) bad("negative stride");
      m += (st->batch[d] - 1) * s[d];
    }
    return m;
  };
  if (st->nbatch > 0 && st->M > 0 && st->N > 0) {
    if (st->K > 0) {
      if (st->last_a(reach(st->sa, nb)) >= L.in[0]->numel()) bad("A is smaller than its strides reach");
      if (st->last_b(reach(st->sb, nb)) >= L.in[1]->numel()) bad("B is smaller than its strides reach");
    }
    if (st->has_c) {
      int64_t r = reach(st->sc, nb) + (st->M - 1) * st->sc[nb] + (st->N - 1) * st->sc[nb + 1];
      if (st->sc[nb] < 0 || st->sc[nb + 1] < 0 || r >= L.in[2]->numel()) bad("C is smaller than its strides reach");
    }
  }
  if (L.out[0]->numel() != st->nbatch * st->M * st->N) bad("output size does not match batch x M x N");
  if (st->sd.size() != nb || st->ldd < 0) bad("output strides do not match the batch rank");
  st->has_residual = L.in.size() > 3 && L.in[3] != nullptr;
  bool strided_out = op.has("d_batch_strides") || op.has("d_ld");
  if (strided_out && (st->has_c || st->has_residual)) bad("a strided output takes no C or residual");
  if (st->nbatch > 0 && st->M > 0 && st->N > 0 && reach(st->sd, nb) + (st->M - 1) * st->ldd + st->N - 1 >= L.out[0]->numel())
    bad("the output is smaller than its strides reach");
  if (st->has_residual && L.in[3]->numel() != L.out[0]->numel()) bad("the residual input must have the output's shape");
  return st;
}

class GemmRef : public Tactic {
 public:
  const char* name() const override { return "cpu.gemm.ref"; }
  bool reference() const override { return true; }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override { return make_state(L); }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const GemmState& st = *static_cast<GemmState*>(s);
    dispatch_float(out[0].dtype, L, [&]<typename T>() {
      const T* A = in[0].as<T>();
      const T* B = in[1].as<T>();
      const T* C = st.has_c ? in[2].as<T>() : nullptr;
      const T* Z = st.has_residual ? in[3].as<T>() : nullptr;
      T* O = out[0].as<T>();
      int64_t M = st.M, N = st.N, K = st.K;
      size_t nb = st.batch.size();
      ctx.pool->parallel_for(st.nbatch * M, grain_for(N * K), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          int64_t b = r / M, m = r % M, oa, ob, oc, od;
          st.offsets(b, oa, ob, oc, od);
          for (int64_t n = 0; n < N; ++n) {
            double acc = 0;
            for (int64_t k = 0; k < K; ++k) {
              double a = static_cast<double>(load(A[st.a_off + oa + (st.ta ? k * st.lda + m : m * st.lda + k)]));
              double w = static_cast<double>(load(B[st.b_off + ob + (st.tb ? n * st.ldb + k : k * st.ldb + n)]));
              acc += a * w;
            }
            double v = st.alpha * acc;
            if (C) v += st.beta * static_cast<double>(load(C[oc + m * st.sc[nb] + n * st.sc[nb + 1]]));
            if (Z) v += static_cast<double>(load(Z[r * N + n]));
            store(O[od + m * st.ldd + n], st.act.apply(v));
          }
        }
      });
    });
  }
};

class GemmBlocked : public Tactic {
 public:
  const char* name() const override { return "cpu.gemm.blocked"; }
  bool can_implement(const LayerInfo& L) const override {
    for (auto* t : L.in)
      if (t && t->dtype != DType::F32) return false;
    return !L.out.empty() && L.out[0] && L.out[0]->dtype == DType::F32;
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override { return make_state(L); }
  size_t workspace(const LayerInfo& L) const override {
    return sgemm::workspace_floats(L.op->i("M"), L.op->i("N"), L.op->i("K")) * sizeof(float);
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const GemmState& st = *static_cast<GemmState*>(s);
    int64_t M = st.M, N = st.N, K = st.K;
    size_t nb = st.batch.size();
    const float* A = in[0].as<float>();
    const float* B = in[1].as<float>();
    float* O = out[0].as<float>();
    for (int64_t b = 0; b < st.nbatch; ++b) {
      int64_t oa, ob, oc, od;
      st.offsets(b, oa, ob, oc, od);
      sgemm::Matrix a{A + st.a_off + oa, st.ta ? 1 : st.lda, st.ta ? st.lda : 1};
      sgemm::Matrix w{B + st.b_off + ob, st.tb ? 1 : st.ldb, st.tb ? st.ldb : 1};
      sgemm::Epilogue ep;
      ep.alpha = static_cast<float>(st.alpha);
      ep.beta = static_cast<float>(st.beta);
      if (st.has_c) ep.bias = {in[2].as<float>() + oc, st.sc[nb], st.sc[nb + 1]};
      if (st.has_residual) ep.residual = {in[3].as<float>() + b * M * N, N, 1};
      ep.act = st.act;
      sgemm::gemm(M, N, K, a, w, O + od, st.ldd, ep, ctx.pool, static_cast<float*>(ctx.workspace));
    }
  }
};

}  // namespace
KILN_REGISTER_TACTIC("cpu", "Gemm", GemmRef);
KILN_REGISTER_TACTIC("cpu", "Gemm", GemmBlocked);
}  // namespace kiln

// Int8Gemm on cuBLASLt's integer tensor-core (IMMA) GEMM, then kiln's int8 epilogue kernel:
//   acc[M, N] = A'[M, K]·W[N, K]ᵀ in int32 (CUBLAS_COMPUTE_32I, int8 A/B, int32 C; alpha 1, beta 0)
//   Y = epilogue(acc - pad8 * Σ_k W[n, k])            (cuda/int8_gemm.cu, the CPU's rounding)
// A' is A for int8 activations; uint8 ones are shifted to int8 (x - 128) into the workspace first, with
// the zero point shifted alike (pad8), so the correction makes the sums those of (x - zp) * w.
// In cuBLASLt's column-major terms the product is accᵀ (N x M, ld N) = op(W) · A'ᵀ with W as a K x N
// matrix (ld K) transposed and A' as K x M (ld K) not transposed: the "TN" form, the one IMMA takes
// in the regular (non-COL32) order on sm_90. IMMA also wants leading dimensions and m, k multiples
// of 4 and 4-byte aligned pointers, so the tactic needs K % 4 == 0, N % 4 == 0 and an aligned A.
// Tactics cuda.int8_gemm.imma.algoN, N = the rank of the algorithm in cuBLASLt's heuristic, each
// timed as its own candidate (as gemm_cublaslt.cc does for float).
#include <algorithm>

#include "cuda_util.h"
#include "int8_common.h"

namespace kiln {
namespace i8cu {
namespace {

constexpr int kAlgos = 4;
constexpr uint64_t kMaxLtWorkspace = 32ull << 20;

size_t align256(size_t n) { return (n + 255) / 256 * 256; }

// cuBLASLt's A is W, its B the activations A', C = D the int32 sums.
struct LtState : State, cu::LtOp {
  int64_t M = 0, N = 0, K = 0;
  // workspace: acc (M x N int32), then A' (M x K bytes, uint8 activations only), then cuBLASLt's
  size_t acc_bytes() const { return align256(static_cast<size_t>(M * N) * sizeof(int32_t)); }
  size_t shift_bytes() const { return l.u8 ? align256(static_cast<size_t>(M * K)) : 0; }
  size_t workspace() const { return acc_bytes() + shift_bytes() + lt_workspace; }
};

// The layer's shapes when IMMA can take them (no CUDA call made); false otherwise.
bool shapes_ok(const LayerInfo& L, Layer& l) {
  if (L.op->kind != "Int8Gemm" || !L.const_data(1)) return false;
  try {
    l = read_layer(L);
  } catch (const Error&) {
    return false;
  }
  int64_t M = l.rows, N = l.g.M, K = l.K;
  return M >= 1 && N >= 1 && K >= 1 && K % 4 == 0 && N % 4 == 0 && cu::alignment_of(*L.plan, L.in[0]) >= 4;
}

class Imma : public Tactic {
 public:
  explicit Imma(int index) : index_(index), name_("cuda.int8_gemm.imma.algo" + std::to_string(index)) {}
  const char* name() const override { return name_.c_str(); }
  bool can_implement(const LayerInfo& L) const override {
    Layer l;
    if (!shapes_ok(L, l)) return false;
    try {
      return make(L, false) != nullptr;
    } catch (const Error&) {
      return false;  // cuBLASLt refused the descriptors: a build-time "no", never an infer-time failure
    }
  }
  size_t workspace(const LayerInfo& L) const override {
    if (!can_implement(L)) return 0;
    auto st = make(L, false);
    return st ? st->workspace() : 0;
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    Layer l;
    auto st = shapes_ok(L, l) ? make(L, true) : nullptr;
    if (!st) fail("INVALID_ENGINE", cu::where(L) + ": tactic " + name_ + " cannot run this layer on this device (cuBLASLt offers no such int8 algorithm)");
    return st;
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const LtState& st = *static_cast<LtState*>(s);
    cudaStream_t stream = static_cast<cudaStream_t>(ctx.stream);
    cudaGetLastError();
    if (ctx.workspace_bytes < st.workspace()) fail("INTERNAL", cu::where(L) + ": workspace too small for " + name_);
    auto* ws = static_cast<uint8_t*>(ctx.workspace);
    auto* acc = reinterpret_cast<int32_t*>(ws);
    const void* a = in[0].data;
    if (st.l.u8) {
      auto* shifted = reinterpret_cast<int8_t*>(ws + st.acc_bytes());
      check(L, shift_u8(static_cast<const uint8_t*>(in[0].data), shifted, st.M * st.K, stream), "int8 shift_u8");
      a = shifted;
    }
    const int32_t one = 1, zero = 0;
    KILN_CUDA_TRY_AT(L, cublasLtMatmul(cu::lt_handle(), st.desc, &one, in[1].data, st.la, a, st.lb, &zero, acc, st.lc, acc, st.lc, &st.algo,
                                       ws + st.acc_bytes() + st.shift_bytes(), st.lt_workspace, stream));
    check(L, gemm_epilogue(acc, st.M, st.N, epilogue_for(st, in, out), stream), "int8 gemm_epilogue");
  }

 private:
  // The descriptors and the heuristic's index_-th algorithm; nullptr when cuBLASLt offers none.
  // with_params: also the device arrays of init_state (prepare only).
  std::unique_ptr<LtState> make(const LayerInfo& L, bool with_params) const {
    auto st = std::make_unique<LtState>();
    if (with_params) init_state(L, *st, true);
    else st->l = read_layer(L);
    st->M = st->l.rows;
    st->N = st->l.g.M;
    st->K = st->l.K;
    const int64_t M = st->M, N = st->N, K = st->K;
    KILN_CUDA_TRY_AT(L, cublasLtMatmulDescCreate(&st->desc, CUBLAS_COMPUTE_32I, CUDA_R_32I));
    cublasOperation_t opw = CUBLAS_OP_T, opa = CUBLAS_OP_N;
    KILN_CUDA_TRY_AT(L, cublasLtMatmulDescSetAttribute(st->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opw, sizeof(opw)));
    KILN_CUDA_TRY_AT(L, cublasLtMatmulDescSetAttribute(st->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opa, sizeof(opa)));
    KILN_CUDA_TRY_AT(L, cublasLtMatrixLayoutCreate(&st->la, CUDA_R_8I, K, N, K));
    KILN_CUDA_TRY_AT(L, cublasLtMatrixLayoutCreate(&st->lb, CUDA_R_8I, K, M, K));
    KILN_CUDA_TRY_AT(L, cublasLtMatrixLayoutCreate(&st->lc, CUDA_R_32I, N, M, N));
    // W is a constant and the workspace 256-byte aligned; A' is the input (or the aligned shifted copy)
    uint32_t aw = 256, aa = st->l.u8 ? 256 : static_cast<uint32_t>(std::min<size_t>(256, cu::alignment_of(*L.plan, L.in[0]))), ac = 256;
    cu::LtPreference pref(L, kMaxLtWorkspace, aw, aa, ac);
    return st->pick(L, pref, index_) ? std::move(st) : nullptr;
  }

  int index_;
  std::string name_;
};

struct RegisterAll {
  RegisterAll() {
    for (int i = 0; i < kAlgos; ++i) register_tactic("cuda", "Int8Gemm", std::make_unique<Imma>(i));
  }
} register_all;

}  // namespace
}  // namespace i8cu
}  // namespace kiln

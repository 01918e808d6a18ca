// Int8Conv as one cuBLASLt call, for the layers that are a GEMM: 1x1, stride 1, no padding, one group,
// channels-last. cuBLASLt's int8 GEMM writes the int8 output itself, through its own epilogue:
//   Y[p, c] = sat8(rne(act(alpha[c] * acc[p, c] + beta * R[p, c] + bias[c])))
// which is the layer's folded requantization (native/cpu/int8_fold.h): alpha = mult / y_scale (a device
// vector: CUBLASLT_POINTER_MODE_ALPHA_DEVICE_VECTOR_BETA_HOST), bias = bias / y_scale + y_zp (float32,
// CUBLASLT_EPILOGUE_BIAS / RELU_BIAS), beta = r_scale / y_scale for an int8 residual with zero point 0.
// cuBLASLt sums those three terms in its own order, so an output may differ from the CPU's by one step
// where the value lands next to a tie (ResNet-50's 1x1 layers: at most 15 of 25.7 million bytes,
// bench/kernels/int8_gemm_lt.cu); every other tactic here is exact. The tactic takes a layer only when
// that epilogue is the layer's:
//   int8 activations with zero point 0, an int8 output, no activation or ReLU (ReLU with y_zp 0: the
//   epilogue clamps at 0), no residual or an int8 one with zero point 0, a constant (or no) bias,
//   constant W; C and M multiples of 4 (IMMA's leading dimensions).
// In cuBLASLt's column-major terms Yᵀ (M x P, ld M) = op(W) · Xᵀ with W as a K x M matrix (ld K)
// transposed and X as K x P (ld K), R like Y: channels-last tensors as they lie.
// Tactics cuda.int8_conv.lt.algoN, N = the rank of the algorithm in cuBLASLt's heuristic.
#include <algorithm>

#include "cuda_util.h"
#include "int8_common.h"

namespace kiln {
namespace i8cu {
namespace {

constexpr int kAlgos = 3;
constexpr uint64_t kMaxLtWorkspace = 32ull << 20;

// cuBLASLt's A is W, its B the activations X, C = D the output (and the residual's layout).
struct LtConvState : State, cu::LtOp {
  DeviceBuffer w;  // W as given ([M, C] int8)
  float beta = 0;
};

// The layer when cuBLASLt's epilogue computes it (no CUDA call made); false otherwise.
bool layer_ok(const LayerInfo& L, Layer& l) {
  if (L.op->kind != "Int8Conv" || !L.const_data(1)) return false;
  try {
    l = read_layer(L);
  } catch (const Error&) {
    return false;
  }
  const Geom& g = l.g;
  bool gemm = g.channels_last && g.G == 1;
  for (int i = 0; i < 3; ++i) gemm = gemm && g.k[i] == 1 && g.s[i] == 1 && g.p[i] == 0 && g.in[i] == g.out[i];
  const int8::Params& p = l.p;
  const bool act = p.act.kind == Activation::None || (p.act.kind == Activation::Relu && p.y_zp == 0);
  const bool res = !l.has_residual || (p.res == DType::I8 && p.r_zp == 0);
  const bool bias = !l.has_bias || L.const_data(2);
  return gemm && !l.u8 && l.pad8 == 0 && p.fold.on && p.out == DType::I8 && act && res && bias && g.C % 4 == 0 && g.M % 4 == 0 && l.rows >= 1 &&
         cu::alignment_of(*L.plan, L.in[0]) >= 4 && cu::alignment_of(*L.plan, L.out[0]) >= 4 && (!l.has_residual || cu::alignment_of(*L.plan, L.in[3]) >= 4);
}

// Bytes of alignment cuBLASLt may assume of a tensor (at most 16).
uint32_t align16(const LayerInfo& L, const PlanTensor* t) { return static_cast<uint32_t>(std::min<size_t>(16, cu::alignment_of(*L.plan, t))); }

class LtConv : public Tactic {
 public:
  explicit LtConv(int index) : index_(index), name_("cuda.int8_conv.lt.algo" + std::to_string(index)) {}
  const char* name() const override { return name_.c_str(); }
  bool can_implement(const LayerInfo& L) const override {
    Layer l;
    if (!layer_ok(L, l)) return false;
    try {
      return make(L, l, false) != nullptr;
    } catch (const Error&) {
      return false;  // cuBLASLt refused the descriptors: a build-time "no", never an infer-time failure
    }
  }
  size_t workspace(const LayerInfo& L) const override {
    Layer l;
    if (!layer_ok(L, l)) return 0;
    try {
      auto st = make(L, l, false);
      return st ? st->lt_workspace : 0;
    } catch (const Error&) {
      return 0;
    }
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    Layer l;
    auto st = layer_ok(L, l) ? make(L, l, true) : nullptr;
    if (!st)
      fail("INVALID_ENGINE", cu::where(L) + ": tactic " + name_ +
                                 " cannot run this layer on this device (it needs a channels-last 1x1 int8 convolution that cuBLASLt's int8 epilogue computes, and an algorithm for it)");
    return st;
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const LtConvState& st = *static_cast<LtConvState*>(s);
    if (ctx.workspace_bytes < st.lt_workspace) fail("INTERNAL", cu::where(L) + ": workspace too small for " + name_);
    cudaGetLastError();
    const void* c = st.l.has_residual ? in[3].data : out[0].data;  // beta 0 without a residual
    KILN_CUDA_TRY_AT(L, cublasLtMatmul(cu::lt_handle(), st.desc, st.fmult.as<float>(), st.w.as<int8_t>(), st.la, in[0].data, st.lb, &st.beta, c, st.lc, out[0].data,
                                       st.lc, &st.algo, ctx.workspace, st.lt_workspace, static_cast<cudaStream_t>(ctx.stream)));
  }

 private:
  // The descriptors and the heuristic's index_-th algorithm; nullptr when cuBLASLt offers none.
  // with_params: also the device arrays (prepare only).
  std::unique_ptr<LtConvState> make(const LayerInfo& L, const Layer& l, bool with_params) const {
    auto st = std::make_unique<LtConvState>();
    if (with_params) {
      init_state(L, *st, false);
      st->w.upload(L, L.const_data(1), static_cast<size_t>(l.g.M) * l.K);
    } else {
      st->l = l;
    }
    st->beta = l.has_residual ? l.p.fold.res : 0.f;
    const int64_t P = l.rows, M = l.g.M, K = l.K;
    KILN_CUDA_TRY_AT(L, cublasLtMatmulDescCreate(&st->desc, CUBLAS_COMPUTE_32I, CUDA_R_32F));
    const cublasOperation_t opw = CUBLAS_OP_T, opx = CUBLAS_OP_N;
    KILN_CUDA_TRY_AT(L, cublasLtMatmulDescSetAttribute(st->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opw, sizeof(opw)));
    KILN_CUDA_TRY_AT(L, cublasLtMatmulDescSetAttribute(st->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opx, sizeof(opx)));
    const cublasLtPointerMode_t pm = CUBLASLT_POINTER_MODE_ALPHA_DEVICE_VECTOR_BETA_HOST;
    KILN_CUDA_TRY_AT(L, cublasLtMatmulDescSetAttribute(st->desc, CUBLASLT_MATMUL_DESC_POINTER_MODE, &pm, sizeof(pm)));
    const cublasLtEpilogue_t epi = l.p.act.kind == Activation::Relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
    KILN_CUDA_TRY_AT(L, cublasLtMatmulDescSetAttribute(st->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    const cudaDataType_t bias_type = CUDA_R_32F;
    KILN_CUDA_TRY_AT(L, cublasLtMatmulDescSetAttribute(st->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)));
    // the folded bias (a device array made by init_state; a stand-in address until prepare)
    const void* bias = with_params ? st->fbias.as<float>() : reinterpret_cast<const void*>(256);
    KILN_CUDA_TRY_AT(L, cublasLtMatmulDescSetAttribute(st->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    KILN_CUDA_TRY_AT(L, cublasLtMatrixLayoutCreate(&st->la, CUDA_R_8I, K, M, K));
    KILN_CUDA_TRY_AT(L, cublasLtMatrixLayoutCreate(&st->lb, CUDA_R_8I, K, P, K));
    KILN_CUDA_TRY_AT(L, cublasLtMatrixLayoutCreate(&st->lc, CUDA_R_8I, M, P, M));
    uint32_t ay = align16(L, L.out[0]);
    if (l.has_residual) ay = std::min(ay, align16(L, L.in[3]));
    cu::LtPreference pref(L, kMaxLtWorkspace, 16, align16(L, L.in[0]), ay);
    return st->pick(L, pref, index_) ? std::move(st) : nullptr;
  }

  int index_;
  std::string name_;
};

struct RegisterAll {
  RegisterAll() {
    for (int i = 0; i < kAlgos; ++i) register_tactic("cuda", "Int8Conv", std::make_unique<LtConv>(i));
  }
} register_all;

}  // namespace
}  // namespace i8cu
}  // namespace kiln

// Conv on the CUDA backend through cuDNN's forward convolution (see native/cpu/conv.cc and
// src/ops/conv.ts): 1-D/2-D as 4-D NCHW tensors, 3-D as 5-D, groups, strides, dilations and pads (cuDNN
// pads both sides alike: a layer whose end pads change the output size cannot use it). The bias, the
// residual input and the fused activation run after the convolution in one pass (cuep::bias_act).
// Tactics: cuda.cudnn.<algorithm> (FMA math: exact float32) and cuda.cudnn.<algorithm>.tc (tensor cores:
// TF32 for float32, left out by `strict`), for each of cuDNN's forward algorithms that supports the
// layer with a workspace within kMaxWorkspace; each is timed as its own candidate.
#include <memory>

#include "../cpu/conv_geom.h"
#include "cuda_util.h"
#include "epilogue.h"

namespace kiln {
namespace {

constexpr size_t kMaxWorkspace = size_t(1) << 30;

struct Algo {
  cudnnConvolutionFwdAlgo_t algo;
  const char* name;
};
constexpr Algo kAlgos[] = {
    {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, "implicit_gemm"},
    {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, "implicit_precomp_gemm"},
    {CUDNN_CONVOLUTION_FWD_ALGO_GEMM, "gemm"},
    {CUDNN_CONVOLUTION_FWD_ALGO_DIRECT, "direct"},
    {CUDNN_CONVOLUTION_FWD_ALGO_FFT, "fft"},
    {CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING, "fft_tiling"},
    {CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD, "winograd"},
    {CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED, "winograd_nonfused"},
};

struct CudnnState : LayerState {
  ConvGeom g;
  DType dt = DType::F32;
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  size_t workspace = 0;
  bool epilogue = false;
  ~CudnnState() override {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
  }
};

bool types_ok(const LayerInfo& L) {
  if (L.in.size() < 2 || !L.in[0] || !L.in[1] || L.out.empty() || !L.out[0]) return false;
  DType t = L.out[0]->dtype;
  if (t != DType::F32 && t != DType::F16) return false;
  for (auto* x : L.in)
    if (x && x->dtype != t) return false;
  return true;
}

class ConvCudnn : public Tactic {
 public:
  ConvCudnn(const Algo& a, bool tc) : algo_(a), tc_(tc), name_(std::string("cuda.cudnn.") + a.name + (tc ? ".tc" : "")) {}
  const char* name() const override { return name_.c_str(); }
  bool reduced_precision(const LayerInfo& L) const override { return tc_ && !L.out.empty() && L.out[0] && L.out[0]->dtype == DType::F32; }
  bool can_implement(const LayerInfo& L) const override { return make(L) != nullptr; }
  size_t workspace(const LayerInfo& L) const override {
    auto st = make(L);
    return st ? st->workspace : 0;
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = make(L);
    if (!st) fail("INVALID_ENGINE", cu::where(L) + ": tactic " + name_ + " cannot run this layer on this device (cuDNN does not support it)");
    return st;
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const CudnnState& st = *static_cast<CudnnState*>(s);
    if (ctx.workspace_bytes < st.workspace) fail("INTERNAL", cu::where(L) + ": workspace too small for " + name_);
    cudaStream_t stream = static_cast<cudaStream_t>(ctx.stream);
    cudnnHandle_t h = cu::cudnn_handle();
    KILN_CUDA_TRY_AT(L, cudnnSetStream(h, stream));
    float one = 1.f, zero = 0.f;
    KILN_CUDA_TRY_AT(L, cudnnConvolutionForward(h, &one, st.x, in[0].data, st.w, in[1].data, st.conv, algo_.algo, ctx.workspace, st.workspace,
                                                &zero, st.y, out[0].data));
    if (st.epilogue)
      cuep::bias_act(L, st.dt, out[0].data, st.g.has_bias ? in[2].data : nullptr, st.g.has_residual ? in[3].data : nullptr, out[0].numel(),
                     st.g.out_size(), st.g.M, st.g.act, stream);
  }

 private:
  // Descriptors and workspace for the layer; nullptr when cuDNN cannot run it with this algorithm.
  std::unique_ptr<CudnnState> make(const LayerInfo& L) const {
    if (!types_ok(L)) return nullptr;
    auto st = std::make_unique<CudnnState>();
    st->g = conv_geom(L, false);
    const ConvGeom& g = st->g;
    st->dt = L.out[0]->dtype;
    if (!cuep::supported(g.act)) return nullptr;
    st->epilogue = g.has_bias || g.has_residual || g.act.kind != Activation::None;
    auto pads = L.op->ints("pads");
    int r = g.rank;
    for (int i = 0; i < r; ++i)
      if (pads[i] < 0 || pads[r + i] < 0) return nullptr;
    if (g.N < 1 || g.C < 1 || g.M < 1) return nullptr;
    // cuDNN's dims: 4-D for 1-D/2-D convolutions, 5-D for 3-D ones (canonical geometry is 3-D).
    int sp = r == 3 ? 3 : 2, off = 3 - sp;
    std::vector<int> xd{int(g.N), int(g.C)}, yd{int(g.N), int(g.M)}, wd{int(g.M), int(g.Cg)}, pad, str, dil;
    for (int i = off; i < 3; ++i) {
      xd.push_back(int(g.in[i]));
      yd.push_back(int(g.out[i]));
      wd.push_back(int(g.k[i]));
      pad.push_back(int(g.p[i]));
      str.push_back(int(g.s[i]));
      dil.push_back(int(g.d[i]));
    }
    if (L.in[0]->numel() > INT32_MAX || L.out[0]->numel() > INT32_MAX) return nullptr;
    auto packed = [](const std::vector<int>& d) {
      std::vector<int> s(d.size(), 1);
      for (size_t i = d.size() - 1; i-- > 0;) s[i] = s[i + 1] * d[i + 1];
      return s;
    };
    cudnnDataType_t t = st->dt == DType::F16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
    int nd = static_cast<int>(xd.size());
    KILN_CUDA_TRY_AT(L, cudnnCreateTensorDescriptor(&st->x));
    KILN_CUDA_TRY_AT(L, cudnnCreateTensorDescriptor(&st->y));
    KILN_CUDA_TRY_AT(L, cudnnCreateFilterDescriptor(&st->w));
    KILN_CUDA_TRY_AT(L, cudnnCreateConvolutionDescriptor(&st->conv));
    KILN_CUDA_TRY_AT(L, cudnnSetTensorNdDescriptor(st->x, t, nd, xd.data(), packed(xd).data()));
    KILN_CUDA_TRY_AT(L, cudnnSetTensorNdDescriptor(st->y, t, nd, yd.data(), packed(yd).data()));
    KILN_CUDA_TRY_AT(L, cudnnSetFilterNdDescriptor(st->w, t, CUDNN_TENSOR_NCHW, nd, wd.data()));
    KILN_CUDA_TRY_AT(L, cudnnSetConvolutionNdDescriptor(st->conv, sp, pad.data(), str.data(), dil.data(), CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    KILN_CUDA_TRY_AT(L, cudnnSetConvolutionGroupCount(st->conv, int(g.G)));
    KILN_CUDA_TRY_AT(L, cudnnSetConvolutionMathType(st->conv, tc_ ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
    // cuDNN pads both ends by the begin pads: its output dims must be the layer's.
    std::vector<int> od(nd);
    if (cudnnGetConvolutionNdForwardOutputDim(st->conv, st->x, st->w, nd, od.data()) != CUDNN_STATUS_SUCCESS || od != yd) return nullptr;
    cudnnHandle_t h = cu::cudnn_handle();
    // The algorithm must be one cuDNN reports as supported for this configuration and math type.
    int count = 0;
    KILN_CUDA_TRY_AT(L, cudnnGetConvolutionForwardAlgorithmMaxCount(h, &count));
    std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(count > 0 ? count : 1);
    int got = 0;
    KILN_CUDA_TRY_AT(L, cudnnGetConvolutionForwardAlgorithm_v7(h, st->x, st->w, st->conv, st->y, count, &got, perf.data()));
    bool listed = false;
    for (int i = 0; i < got; ++i) listed |= perf[i].algo == algo_.algo && perf[i].status == CUDNN_STATUS_SUCCESS;
    if (!listed) return nullptr;
    if (cudnnGetConvolutionForwardWorkspaceSize(h, st->x, st->w, st->conv, st->y, algo_.algo, &st->workspace) != CUDNN_STATUS_SUCCESS) return nullptr;
    if (st->workspace > kMaxWorkspace) return nullptr;
    return st;
  }

  Algo algo_;
  bool tc_;
  std::string name_;
};

struct RegisterAll {
  RegisterAll() {
    for (bool tc : {true, false})
      for (const Algo& a : kAlgos) register_tactic("cuda", "Conv", std::make_unique<ConvCudnn>(a, tc));
  }
} register_all;

}  // namespace
}  // namespace kiln

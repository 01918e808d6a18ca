// Conv on the CUDA backend through cuDNN's forward convolution (see native/cpu/conv.cc and
// src/ops/conv.ts): 1-D/2-D as 4-D tensors, 3-D as 5-D, groups, strides, dilations and pads (cuDNN
// pads both sides alike: a layer whose end pads change the output size cannot use it). Layouts: NCHW,
// or NHWC (filters [M, kH, kW, C/G]) for a 1-D/2-D layer marked channels_last by the layout pass —
// the layout cuDNN's float16 tensor-core kernels read natively.
// Tactics, for each of cuDNN's forward algorithms that supports the layer with a workspace within
// kMaxWorkspace, each timed as its own candidate:
//   cuda.cudnn.<algorithm>[.tc]        the convolution, then the bias, residual and fused activation
//                                      in one pass (cuep::bias_act)
//   cuda.cudnn.fused.<algorithm>[.tc]  all of it in cuDNN (cudnnConvolutionBiasActivationForward:
//                                      act(conv + residual + bias)) for layers with a bias and no
//                                      activation or ReLU (no activation: implicit_precomp_gemm only)
// .tc: tensor cores (TF32 for float32, left out by `strict`); without: FMA math (exact float32).
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
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, bias = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnActivationDescriptor_t act = nullptr;
  size_t workspace = 0;
  bool epilogue = false;
  std::string shape;  // for errors: the layer's dims and layout as cuDNN sees them
  ~CudnnState() override {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (bias) cudnnDestroyTensorDescriptor(bias);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
    if (act) cudnnDestroyActivationDescriptor(act);
  }
};

std::string dims_text(const std::vector<int>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

bool types_ok(const LayerInfo& L) {
  if (L.in.size() < 2 || !L.in[0] || !L.in[1] || L.out.empty() || !L.out[0]) return false;
  DType t = L.out[0]->dtype;
  if (t != DType::F32 && t != DType::F16) return false;
  for (auto* x : L.in)
    if (x && x->dtype != t) return false;
  return true;
}

class ConvCudnn : public cu::LibraryTactic<CudnnState> {
 public:
  ConvCudnn(const Algo& a, bool tc, bool fused)
      : algo_(a), tc_(tc), fused_(fused), name_(std::string("cuda.cudnn.") + (fused ? "fused." : "") + a.name + (tc ? ".tc" : "")) {}
  const char* name() const override { return name_.c_str(); }
  bool reduced_precision(const LayerInfo& L) const override { return tc_ && !L.out.empty() && L.out[0] && L.out[0]->dtype == DType::F32; }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const CudnnState& st = *static_cast<CudnnState*>(s);
    if (ctx.workspace_bytes < st.workspace) fail("INTERNAL", cu::where(L) + ": workspace too small for " + name_);
    cudaStream_t stream = static_cast<cudaStream_t>(ctx.stream);
    cudnnHandle_t h = cu::cudnn_handle();
    KILN_CUDA_TRY_AT(L, cudnnSetStream(h, stream));
    float one = 1.f, zero = 0.f;
    // cuDNN gets all of the execution's workspace (at least what this algorithm asked for at build):
    // what the algorithm needs can differ between the build thread's handle and this one's.
    cudnnStatus_t r;
    if (fused_) {
      // act(conv(x) + alpha2 * z + bias): z is the residual, or y itself with alpha2 = 0
      const void* z = st.g.has_residual ? in[3].data : out[0].data;
      r = cudnnConvolutionBiasActivationForward(h, &one, st.x, in[0].data, st.w, in[1].data, st.conv, algo_.algo, ctx.workspace, ctx.workspace_bytes,
                                                st.g.has_residual ? &one : &zero, st.y, z, st.bias, in[2].data, st.act, st.y, out[0].data);
    } else {
      r = cudnnConvolutionForward(h, &one, st.x, in[0].data, st.w, in[1].data, st.conv, algo_.algo, ctx.workspace, ctx.workspace_bytes, &zero, st.y,
                                  out[0].data);
    }
    if (r != CUDNN_STATUS_SUCCESS) {
      auto misalign = [](const void* p) { return std::to_string(reinterpret_cast<uintptr_t>(p) % 256); };
      fail("RUNTIME", cu::where(L) + ": " + name_ + " failed: " + cu::status_name(r) + " (" + st.shape + ", workspace " + std::to_string(st.workspace) + " bytes asked at build, " + std::to_string(ctx.workspace_bytes) +
                          " given, pointer offsets mod 256: x " + misalign(in[0].data) + ", w " + misalign(in[1].data) + ", y " + misalign(out[0].data) + ")");
    }
    // NHWC: the channel is the innermost index (inner extent 1)
    if (st.epilogue && !fused_)
      cuep::bias_act(L, st.dt, out[0].data, st.g.has_bias ? in[2].data : nullptr, st.g.has_residual ? in[3].data : nullptr, out[0].numel(),
                     st.g.channels_last ? 1 : st.g.out_size(), st.g.M, st.g.act, stream);
  }

 private:
  std::string why() const override { return "cuDNN does not support it"; }
  // Descriptors and workspace for the layer; nullptr when cuDNN cannot run it with this algorithm.
  std::unique_ptr<CudnnState> make(const LayerInfo& L) const override {
    if (!types_ok(L)) return nullptr;
    auto st = std::make_unique<CudnnState>();
    st->g = conv_geom(L, false);
    const ConvGeom& g = st->g;
    st->dt = L.out[0]->dtype;
    if (!cuep::supported(g.act)) return nullptr;
    st->epilogue = g.has_bias || g.has_residual || g.act.kind != Activation::None;
    if (fused_) {
      // cuDNN fuses a bias (required), the residual and ReLU; no activation only with implicit_precomp_gemm
      bool relu = g.act.kind == Activation::Relu;
      if (!g.has_bias || !(relu || g.act.kind == Activation::None)) return nullptr;
      if (!relu && algo_.algo != CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM) return nullptr;
    }
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
    bool nhwc = g.channels_last;
    if (nhwc && nd != 4) return nullptr;  // channels-last 3-D convolutions: not through cuDNN here
    // channels-last strides of logical [N, C, H, W] dims: C innermost
    auto nhwc_strides = [](const std::vector<int>& d) { return std::vector<int>{d[1] * d[2] * d[3], 1, d[3] * d[1], d[1]}; };
    st->shape = std::string(nhwc ? "NHWC" : "NCHW") + " x " + dims_text(xd) + " w " + dims_text(wd) + " y " + dims_text(yd) + " stride " + dims_text(str) +
                " pad " + dims_text(pad) + " dil " + dims_text(dil) + " groups " + std::to_string(g.G) + (st->dt == DType::F16 ? " f16" : " f32");
    KILN_CUDA_TRY_AT(L, cudnnCreateTensorDescriptor(&st->x));
    KILN_CUDA_TRY_AT(L, cudnnCreateTensorDescriptor(&st->y));
    KILN_CUDA_TRY_AT(L, cudnnCreateFilterDescriptor(&st->w));
    KILN_CUDA_TRY_AT(L, cudnnCreateConvolutionDescriptor(&st->conv));
    KILN_CUDA_TRY_AT(L, cudnnSetTensorNdDescriptor(st->x, t, nd, xd.data(), (nhwc ? nhwc_strides(xd) : packed(xd)).data()));
    KILN_CUDA_TRY_AT(L, cudnnSetTensorNdDescriptor(st->y, t, nd, yd.data(), (nhwc ? nhwc_strides(yd) : packed(yd)).data()));
    KILN_CUDA_TRY_AT(L, cudnnSetFilterNdDescriptor(st->w, t, nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW, nd, wd.data()));
    if (fused_) {
      std::vector<int> bd(nd, 1);
      bd[1] = int(g.M);
      KILN_CUDA_TRY_AT(L, cudnnCreateTensorDescriptor(&st->bias));
      KILN_CUDA_TRY_AT(L, cudnnSetTensorNdDescriptor(st->bias, t, nd, bd.data(), packed(bd).data()));
      KILN_CUDA_TRY_AT(L, cudnnCreateActivationDescriptor(&st->act));
      KILN_CUDA_TRY_AT(L, cudnnSetActivationDescriptor(st->act, g.act.kind == Activation::Relu ? CUDNN_ACTIVATION_RELU : CUDNN_ACTIVATION_IDENTITY,
                                                       CUDNN_NOT_PROPAGATE_NAN, 0.0));
    }
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
  bool tc_, fused_;
  std::string name_;
};

struct RegisterAll {
  RegisterAll() {
    for (bool fused : {true, false})
      for (bool tc : {true, false})
        for (const Algo& a : kAlgos) register_tactic("cuda", "Conv", std::make_unique<ConvCudnn>(a, tc, fused));
  }
} register_all;

}  // namespace
}  // namespace kiln

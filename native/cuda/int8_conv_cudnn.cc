// Int8Conv through cuDNN's graph API: the int8 convolution (int32 accumulation) and the layer's folded
// requantization (native/cpu/int8_fold.h) as one operation graph that cuDNN's runtime-fused int8
// engines run as one kernel writing int8:
//   conv(X, W) -> · s[c] -> + b[c] [-> + R · beta[c]] [-> ReLU] -> int8
// with s = mult / y_scale and b = bias / y_scale + y_zp (the folded multiplier and bias) and beta =
// r_scale / y_scale, all per-channel tensors: no constant is baked into the graph, so one compiled
// kernel serves every layer of a shape (cuDNN offers no engine for a scalar alpha2 on the residual's
// add; the residual as its own branch was also the faster of the two forms that ran,
// bench/kernels/int8_conv_cudnn.cu --res-mode). cuDNN rounds in its own order, so an output may differ
// from the CPU's by one step where the value lands next to a tie, as with the cuBLASLt epilogue
// (int8_conv_cublaslt.cc). The tactic takes a layer when that is the layer's epilogue:
//   channels-last, one group, 1-D or 2-D; int8 X with zero point 0; an int8 output; no activation or
//   ReLU with y_zp 0; no residual or an int8 one with zero point 0; a constant (or no) bias.
// Tactic cuda.int8_conv.cudnn.<i> is the i-th engine configuration cuDNN's heuristics rank for the
// graph; plans are made and kept as for Conv (cudnn_graph.h). cuDNN's int8 engines are slow on few
// channels (ResNet-50's stem, 7x7 stride 2 over 3 channels padded to 4: 1.43 ms at batch 32; as
// space-to-depth over 16: 0.33 ms), so layers whose channels are not a multiple of 16 run as
// cuda.int8_conv.cudnn.im2col.<i>: X's windows gathered into A [positions, Kc] in the workspace
// (im2col_cl, Kc = K rounded up to 16), then the graph as a 1x1 convolution over Kc channels with W's
// channels-last rows zero-padded to Kc (the stem: 0.041 ms for that GEMM at batch 32).
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "cudnn_graph.h"
#include "int8_common.h"

namespace kiln {
namespace i8cu {
namespace {

using cudnn_graph::Desc;
using cudnn_graph::Graph;

constexpr int kCandidates = 6;

enum Uid : int64_t { kX = 1, kW = 2, kY = 3, kS = 4, kB = 5, kZ = 6, kBeta = 7, kVirtual = 100 };

struct CudnnState : State {
  std::shared_ptr<Graph> graph;
  const Desc* plan = nullptr;
  int64_t workspace = 0;    // the whole layer's: the gathered windows (im2col) and the plan's
  int64_t plan_offset = 0;  // where the plan's workspace starts
  DeviceBuffer beta;        // beta[c] = r_scale / y_scale (the multiplier and bias: State's fmult, fbias)
  DeviceBuffer w;           // im2col: W's rows zero-padded to Kc
};

// The layer when the graph computes it (no CUDA call made); false otherwise. im2col: the gathered form
// (then cg becomes the 1x1 convolution the graph runs).
bool layer_ok(const LayerInfo& L, Layer& l, ConvGeom& cg, bool im2col) {
  if (L.op->kind != "Int8Conv" || L.in.size() < 2 || !L.in[1]) return false;
  try {
    l = read_layer(L);
    cg = conv_geom(L, false);
  } catch (const Error&) {
    return false;
  }
  const int8::Params& p = l.p;
  const bool two_d = cg.rank <= 2 && cg.in[0] == 1 && cg.out[0] == 1 && cg.k[0] == 1;
  const bool act = p.act.kind == Activation::None || (p.act.kind == Activation::Relu && p.y_zp == 0);
  const bool res = !l.has_residual || (p.res == DType::I8 && p.r_zp == 0 && std::isfinite(p.fold.res));
  const bool bias = !l.has_bias || L.const_data(2);
  if (!(cg.channels_last && cg.G == 1 && two_d && !l.u8 && l.pad8 == 0 && p.fold.on && p.out == DType::I8 && act && res && bias && L.in[1]->dtype == DType::I8))
    return false;
  if (!im2col) return true;
  // few channels (else the direct graph is the one), K <= 1536 (im2col_cl), constant W (padded once)
  if (cg.Cg % 16 == 0 || l.K > 1536 || !L.const_data(1)) return false;
  ConvGeom g2 = cg;
  g2.C = g2.Cg = im2col_geom(l.g).C;
  for (int i = 0; i < 3; ++i) g2.in[i] = g2.out[i], g2.k[i] = g2.s[i] = g2.d[i] = 1, g2.p[i] = 0;
  cg = g2;
  return true;
}

std::string key_of(const LayerInfo& L, const ConvGeom& g, bool im2col) {
  return std::string("i8") + (im2col ? "c" : "") + cudnn_graph::conv_key(L, g);  // the key holds the activation
}

// The operation graph and its ranked engines; nullptr when cuDNN has none for it. im2col: X and W are
// the tactic's own buffers (16-byte aligned).
std::shared_ptr<Graph> make_graph(const LayerInfo& L, const Layer& l, const ConvGeom& g, bool im2col) {
  auto gr = std::make_shared<Graph>();
  auto strides = [](const std::vector<int64_t>& d) { return cudnn_graph::strides_of(d, true); };
  auto align = [&](const PlanTensor* t) { return int64_t(std::min<size_t>(cu::alignment_of(*L.plan, t), 16)); };
  std::vector<int64_t> xd{g.N, g.C, g.in[1], g.in[2]}, wd{g.M, g.Cg, g.k[1], g.k[2]}, yd{g.N, g.M, g.out[1], g.out[2]}, cd{1, g.M, 1, 1};
  Desc& X = gr->tensor(kX, xd, strides(xd), CUDNN_DATA_INT8, false, im2col ? 16 : align(L.in[0]));
  Desc& W = gr->tensor(kW, wd, strides(wd), CUDNN_DATA_INT8, false, im2col ? 16 : align(L.in[1]));
  gr->uids = {kX, kW, kY, kS, kB};
  int64_t next_virtual = kVirtual;
  Desc* cur = &gr->tensor(next_virtual++, yd, strides(yd), CUDNN_DATA_INT32, true, 16);
  if (!gr->conv(g, CUDNN_DATA_INT32, X, W, *cur)) return nullptr;
  // cur = mode(cur[, operand]) as the next step; the last step writes Y (int8)
  int steps = 2 + int(l.has_residual) + int(l.p.act.kind == Activation::Relu), done = 0;
  auto step = [&](cudnnPointwiseMode_t mode, const Desc* operand) {
    Desc& pw = gr->add(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    pw.set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, &mode);
    Desc& y = ++done == steps ? gr->tensor(kY, yd, strides(yd), CUDNN_DATA_INT8, false, align(L.out[0]))
                              : gr->tensor(next_virtual++, yd, strides(yd), CUDNN_DATA_FLOAT, true, 16);
    gr->pointwise(pw, CUDNN_DATA_FLOAT, *cur, operand, y);
    cur = &y;
  };
  step(CUDNN_POINTWISE_MUL, &gr->tensor(kS, cd, strides(cd), CUDNN_DATA_FLOAT, false, 16));
  step(CUDNN_POINTWISE_ADD, &gr->tensor(kB, cd, strides(cd), CUDNN_DATA_FLOAT, false, 16));
  if (l.has_residual) {  // R · beta[c] as its own branch, then added
    Desc& pw = gr->add(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    cudnnPointwiseMode_t mul = CUDNN_POINTWISE_MUL;
    pw.set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, &mul);
    Desc& Z = gr->tensor(kZ, yd, strides(yd), CUDNN_DATA_INT8, false, align(L.in[3]));
    Desc& scaled = gr->tensor(next_virtual++, yd, strides(yd), CUDNN_DATA_FLOAT, true, 16);
    gr->pointwise(pw, CUDNN_DATA_FLOAT, Z, &gr->tensor(kBeta, cd, strides(cd), CUDNN_DATA_FLOAT, false, 16), scaled);
    gr->uids.push_back(kZ);
    gr->uids.push_back(kBeta);
    step(CUDNN_POINTWISE_ADD, &scaled);
  }
  if (l.p.act.kind == Activation::Relu) step(CUDNN_POINTWISE_RELU_FWD, nullptr);
  return gr->rank(kCandidates) ? gr : nullptr;
}

// Graphs by layer configuration, for the life of the process (plans hold compiled kernels).
std::shared_ptr<Graph> graph_for(const LayerInfo& L, const Layer& l, const ConvGeom& g, bool im2col) {
  return cudnn_graph::cached(key_of(L, g, im2col), [&] { return make_graph(L, l, g, im2col); });
}

class Int8ConvCudnn : public cu::LibraryTactic<CudnnState> {
 public:
  Int8ConvCudnn(int rank, bool im2col) : rank_(rank), im2col_(im2col), name_(std::string(im2col ? "cuda.int8_conv.cudnn.im2col." : "cuda.int8_conv.cudnn.") + std::to_string(rank)) {}
  const char* name() const override { return name_.c_str(); }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = make(L);
    if (!st) fail("INVALID_ENGINE", cu::where(L) + ": tactic " + name_ + " cannot run this layer on this device (" + why() + ")");
    init_state(L, *st, false);  // uploads the folded multiplier and bias (fmult, fbias: a constant or no bias)
    const Layer& l = st->l;
    if (l.has_residual) {
      const std::vector<float> beta(static_cast<size_t>(l.g.M), l.p.fold.res);
      st->beta.upload(L, beta.data(), beta.size() * sizeof(float));
    }
    if (im2col_) {
      const int Kc = im2col_geom(l.g).C;
      std::vector<int8_t> w(static_cast<size_t>(l.g.M) * Kc, 0);
      const int8_t* src = reinterpret_cast<const int8_t*>(L.const_data(1));
      for (int m = 0; m < l.g.M; ++m) std::memcpy(&w[static_cast<size_t>(m) * Kc], src + static_cast<size_t>(m) * l.K, static_cast<size_t>(l.K));
      st->w.upload(L, w.data(), w.size());
    }
    return st;
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const CudnnState& st = *static_cast<CudnnState*>(s);
    if (ctx.workspace_bytes < size_t(st.workspace)) fail("INTERNAL", cu::where(L) + ": workspace too small for " + name_);
    cudaStream_t stream = static_cast<cudaStream_t>(ctx.stream);
    void* x = in[0].data;
    void* w = in[1].data;
    if (im2col_) {
      check(L, im2col_cl(st.l.g, static_cast<const int8_t*>(in[0].data), ctx.workspace, stream), "int8 im2col");
      x = ctx.workspace, w = const_cast<int8_t*>(st.w.as<int8_t>());
    }
    std::vector<void*> ptrs{x, w, out[0].data, const_cast<float*>(st.fmult.as<float>()), const_cast<float*>(st.fbias.as<float>())};
    if (st.l.has_residual) ptrs.push_back(in[3].data), ptrs.push_back(const_cast<float*>(st.beta.as<float>()));
    cudnn_graph::execute(L, name_, *st.plan, st.graph->uids, ptrs, static_cast<char*>(ctx.workspace) + st.plan_offset, stream);
  }

 private:
  std::string why() const override { return "it needs a channels-last int8 convolution with the folded int8 epilogue, and a cuDNN engine for it"; }
  std::unique_ptr<CudnnState> make(const LayerInfo& L) const override {
    Layer l;
    ConvGeom g;
    if (!layer_ok(L, l, g, im2col_)) return nullptr;
    auto st = std::make_unique<CudnnState>();
    st->l = l;
    st->graph = graph_for(L, l, g, im2col_);
    if (!st->graph) return nullptr;
    st->plan = st->graph->plan(size_t(rank_));
    if (!st->plan) return nullptr;
    st->plan_offset = im2col_ ? static_cast<int64_t>(im2col_bytes(l.g)) : 0;  // a multiple of 256
    st->workspace = st->plan_offset + st->graph->workspace[rank_];
    return st;
  }

  int rank_;
  bool im2col_;
  std::string name_;
};

struct RegisterAll {
  RegisterAll() {
    for (bool im2col : {false, true})
      for (int i = 0; i < kCandidates; ++i) register_tactic("cuda", "Int8Conv", std::make_unique<Int8ConvCudnn>(i, im2col));
  }
} register_all;

}  // namespace
}  // namespace i8cu
}  // namespace kiln

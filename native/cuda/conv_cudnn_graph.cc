// Conv through cuDNN's graph (backend) API: the convolution and its epilogue — bias, residual and the
// activation where cuDNN has it as a pointwise op (ReLU, Clip as clipped ReLU, Sigmoid, Tanh, GELU,
// tanh-GELU, SiLU) — as one operation graph, so that cuDNN's fused (on Hopper: runtime-fused) kernels
// can run it as one kernel. The engine configurations cuDNN's heuristics (mode A) rank for the graph
// are the candidates: tactic cuda.cudnn.graph.<i> is the i-th of them (deterministic for one cuDNN
// version and GPU, which the engine header pins). An activation cuDNN cannot fuse runs after the
// convolution (+ bias + residual) in cuep::bias_act. Tactics cuda.cudnn.graph.split.<i> (layers with an
// epilogue) give cuDNN the convolution alone and run the whole epilogue in cuep::bias_act: where cuDNN
// has no fast fused engine for the graph (float32 NCHW with a residual, for one) its fast plain
// convolution engines still compete. Layouts as in conv_cudnn.cc: NCHW, or NHWC for
// channels_last layers; 1-D and 2-D convolutions; float32 (tensor-core engines are TF32: left out by
// `strict`, since the graph API does not promise FMA math) and float16.
// Heuristics and execution plans (cudnn_graph.h) are made once per layer configuration and kept;
// can_implement, workspace and prepare share them.
#include <memory>

#include "cudnn_graph.h"
#include "epilogue.h"

namespace kiln {
namespace {

using cudnn_graph::Desc;
using cudnn_graph::Graph;

constexpr int kCandidates = 6;
constexpr int kSplitCandidates = 3;  // conv-only plans: the heuristics' top three

enum Uid : int64_t { kX = 1, kW = 2, kY = 3, kB = 4, kZ = 5, kVirtual = 100 };

// The pointwise op cuDNN fuses for an activation, or false (then cuep::bias_act runs it).
bool pointwise_of(const Activation& a, cudnnPointwiseMode_t& mode) {
  switch (a.kind) {
    case Activation::Relu: mode = CUDNN_POINTWISE_RELU_FWD; return true;
    case Activation::Clip: mode = CUDNN_POINTWISE_RELU_FWD; return true;  // lower/upper clips set below
    case Activation::Sigmoid: mode = CUDNN_POINTWISE_SIGMOID_FWD; return true;
    case Activation::Tanh: mode = CUDNN_POINTWISE_TANH_FWD; return true;
    case Activation::Gelu: mode = CUDNN_POINTWISE_GELU_FWD; return true;
    case Activation::GeluTanh: mode = CUDNN_POINTWISE_GELU_APPROX_TANH_FWD; return true;
    case Activation::Silu: mode = CUDNN_POINTWISE_SWISH_FWD; return true;
    default: return false;
  }
}

struct GraphState : LayerState {
  std::shared_ptr<Graph> graph;
  const Desc* plan = nullptr;
  int64_t workspace = 0;
  ConvGeom g;
  DType dt = DType::F32;
};

std::string key_of(const LayerInfo& L, const ConvGeom& g, DType dt, bool tc, bool conv_only) {
  return std::string(tc ? "tc" : "") + (conv_only ? "s" : "") + (dt == DType::F16 ? "h" : "f") + cudnn_graph::conv_key(L, g) + "," + std::to_string(g.act.lo) + "," +
         std::to_string(g.act.hi);
}

// Builds the operation graph, asks the heuristics, and makes every plan; nullptr when cuDNN has no
// engine for this layer at all.
// conv_only: the convolution alone (the caller runs bias, residual and activation after it).
std::shared_ptr<Graph> make_graph(const LayerInfo& L, const ConvGeom& g, DType dt, bool conv_only) {
  auto gr = std::make_shared<Graph>();
  cudnnDataType_t io = dt == DType::F16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT, acc = CUDNN_DATA_FLOAT;
  auto strides = [&](const std::vector<int64_t>& d) { return cudnn_graph::strides_of(d, g.channels_last); };
  std::vector<int64_t> xd{g.N, g.C, g.in[1], g.in[2]}, wd{g.M, g.Cg, g.k[1], g.k[2]}, yd{g.N, g.M, g.out[1], g.out[2]}, bd{1, g.M, 1, 1};
  auto align = [&](const PlanTensor* t) { return int64_t(std::min<size_t>(cu::alignment_of(*L.plan, t), 16)); };
  Desc& X = gr->tensor(kX, xd, strides(xd), io, false, align(L.in[0]));
  Desc& W = gr->tensor(kW, wd, strides(wd), io, false, align(L.in[1]));
  gr->uids = {kX, kW, kY};
  cudnnPointwiseMode_t act_mode{};
  bool fuse_act = !conv_only && g.act.kind != Activation::None && pointwise_of(g.act, act_mode);
  gr->epilogue_after = g.act.kind != Activation::None && !fuse_act;
  bool bias = g.has_bias && !conv_only, residual = g.has_residual && !conv_only;
  int steps = int(bias) + int(residual) + int(fuse_act);
  int64_t next_virtual = kVirtual;
  // the output of a step: Y itself for the last one, a float virtual tensor before
  auto out_of = [&](bool last) -> Desc& { return last ? gr->tensor(kY, yd, strides(yd), io, false, align(L.out[0])) : gr->tensor(next_virtual++, yd, strides(yd), acc, true, 16); };
  Desc* cur = &out_of(steps == 0);
  if (!gr->conv(g, acc, X, W, *cur)) return nullptr;
  // cur = pointwise(mode, cur[, b]) as the next step
  auto pointwise = [&](cudnnPointwiseMode_t m, Desc* b, bool last) {
    Desc& pw = gr->add(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    pw.set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, &m);
    if (m == CUDNN_POINTWISE_RELU_FWD && g.act.kind == Activation::Clip) {
      double lo = g.act.lo, hi = g.act.hi;
      pw.set(CUDNN_ATTR_POINTWISE_RELU_LOWER_CLIP, CUDNN_TYPE_DOUBLE, &lo).set(CUDNN_ATTR_POINTWISE_RELU_UPPER_CLIP, CUDNN_TYPE_DOUBLE, &hi);
    }
    Desc& y = out_of(last);
    gr->pointwise(pw, acc, *cur, b, y);
    cur = &y;
  };
  int done = 0;
  if (bias) {
    Desc& B = gr->tensor(kB, bd, strides(bd), io, false, align(L.in[2]));
    gr->uids.push_back(kB);
    pointwise(CUDNN_POINTWISE_ADD, &B, ++done == steps);
  }
  if (residual) {
    Desc& Z = gr->tensor(kZ, yd, strides(yd), io, false, align(L.in[3]));
    gr->uids.push_back(kZ);
    pointwise(CUDNN_POINTWISE_ADD, &Z, ++done == steps);
  }
  if (fuse_act) pointwise(act_mode, nullptr, ++done == steps);
  return gr->rank(kCandidates) ? gr : nullptr;
}

// Graphs by layer configuration, for the life of the process (plans hold compiled kernels).
std::shared_ptr<Graph> graph_for(const LayerInfo& L, const ConvGeom& g, DType dt, bool tc, bool conv_only) {
  return cudnn_graph::cached(key_of(L, g, dt, tc, conv_only), [&] { return make_graph(L, g, dt, conv_only); });
}

class ConvCudnnGraph : public cu::LibraryTactic<GraphState> {
 public:
  ConvCudnnGraph(int rank, bool split) : rank_(rank), split_(split), name_(std::string(split ? "cuda.cudnn.graph.split." : "cuda.cudnn.graph.") + std::to_string(rank)) {}
  const char* name() const override { return name_.c_str(); }
  // cuDNN's engines for float32 may use TF32 tensor cores: not for `strict` builds
  bool reduced_precision(const LayerInfo& L) const override { return !L.out.empty() && L.out[0] && L.out[0]->dtype == DType::F32; }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const GraphState& st = *static_cast<GraphState*>(s);
    if (ctx.workspace_bytes < size_t(st.workspace)) fail("INTERNAL", cu::where(L) + ": workspace too small for " + name_);
    cudaStream_t stream = static_cast<cudaStream_t>(ctx.stream);
    std::vector<void*> ptrs;
    for (int64_t uid : st.graph->uids) {
      switch (uid) {
        case kX: ptrs.push_back(in[0].data); break;
        case kW: ptrs.push_back(in[1].data); break;
        case kY: ptrs.push_back(out[0].data); break;
        case kB: ptrs.push_back(in[2].data); break;
        default: ptrs.push_back(in[3].data); break;
      }
    }
    cudnn_graph::execute(L, name_, *st.plan, st.graph->uids, ptrs, ctx.workspace, stream);
    if (split_)  // the whole epilogue; NHWC: the channel is the innermost index (inner extent 1)
      cuep::bias_act(L, st.dt, out[0].data, st.g.has_bias ? in[2].data : nullptr, st.g.has_residual ? in[3].data : nullptr, out[0].numel(),
                     st.g.channels_last ? 1 : st.g.out_size(), st.g.M, st.g.act, stream);
    else if (st.graph->epilogue_after)  // the activation cuDNN does not fuse; bias and residual are done
      cuep::bias_act(L, st.dt, out[0].data, nullptr, nullptr, out[0].numel(), 1, st.g.M, st.g.act, stream);
  }

 private:
  std::string why() const override { return "cuDNN has no such engine for it"; }
  std::unique_ptr<GraphState> make(const LayerInfo& L) const override {
    if (L.in.size() < 2 || !L.in[0] || !L.in[1] || L.out.empty() || !L.out[0]) return nullptr;
    DType t = L.out[0]->dtype;
    if (t != DType::F32 && t != DType::F16) return nullptr;
    for (auto* x : L.in)
      if (x && x->dtype != t) return nullptr;
    if (L.in[1]->kind != TensorKind::Constant) return nullptr;  // weights are bound as given; keep to the common case
    auto st = std::make_unique<GraphState>();
    st->g = conv_geom(L, false);
    st->dt = t;
    const ConvGeom& g = st->g;
    if (g.rank > 2 || g.N < 1 || !cuep::supported(g.act)) return nullptr;
    // the split variant only where there is an epilogue to split off (else it is the plain one)
    if (split_ && !g.has_bias && !g.has_residual && g.act.kind == Activation::None) return nullptr;
    auto pads = L.op->ints("pads");
    for (int64_t p : pads)
      if (p < 0) return nullptr;
    st->graph = graph_for(L, g, t, true, split_);
    if (!st->graph) return nullptr;
    st->plan = st->graph->plan(size_t(rank_));
    if (!st->plan) return nullptr;
    st->workspace = st->graph->workspace[rank_];
    return st;
  }

  int rank_;
  bool split_;
  std::string name_;
};

struct RegisterAll {
  RegisterAll() {
    for (int i = 0; i < kCandidates; ++i) register_tactic("cuda", "Conv", std::make_unique<ConvCudnnGraph>(i, false));
    for (int i = 0; i < kSplitCandidates; ++i) register_tactic("cuda", "Conv", std::make_unique<ConvCudnnGraph>(i, true));
  }
} register_all;

}  // namespace
}  // namespace kiln

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
// graph; plans are made and kept as for Conv (cudnn_graph.h).
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
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
  int64_t workspace = 0;
  DeviceBuffer s, b, beta;  // the graph's per-channel tensors
};

// The layer when the graph computes it (no CUDA call made); false otherwise.
bool layer_ok(const LayerInfo& L, Layer& l, ConvGeom& cg) {
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
  return cg.channels_last && cg.G == 1 && two_d && !l.u8 && l.pad8 == 0 && p.fold.on && p.out == DType::I8 && act && res && bias && L.in[1]->dtype == DType::I8;
}

std::string key_of(const LayerInfo& L, const Layer& l, const ConvGeom& g) {
  return std::string("i8") + (l.p.act.kind == Activation::Relu ? "r" : "") + cudnn_graph::conv_key(L, g);
}

// The operation graph and its ranked engines; nullptr when cuDNN has none for it.
std::shared_ptr<Graph> make_graph(const LayerInfo& L, const Layer& l, const ConvGeom& g) {
  auto gr = std::make_shared<Graph>();
  auto strides = [](const std::vector<int64_t>& d) { return cudnn_graph::strides_of(d, true); };
  auto align = [&](const PlanTensor* t) { return int64_t(std::min<size_t>(cu::alignment_of(*L.plan, t), 16)); };
  std::vector<int64_t> xd{g.N, g.C, g.in[1], g.in[2]}, wd{g.M, g.Cg, g.k[1], g.k[2]}, yd{g.N, g.M, g.out[1], g.out[2]}, cd{1, g.M, 1, 1};
  Desc& X = gr->tensor(kX, xd, strides(xd), CUDNN_DATA_INT8, false, align(L.in[0]));
  Desc& W = gr->tensor(kW, wd, strides(wd), CUDNN_DATA_INT8, false, align(L.in[1]));
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
std::shared_ptr<Graph> graph_for(const LayerInfo& L, const Layer& l, const ConvGeom& g) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<Graph>> cache;
  std::string key = key_of(L, l, g);
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  auto gr = make_graph(L, l, g);
  cache[key] = gr;
  return gr;
}

class Int8ConvCudnn : public cu::LibraryTactic<CudnnState> {
 public:
  explicit Int8ConvCudnn(int rank) : rank_(rank), name_("cuda.int8_conv.cudnn." + std::to_string(rank)) {}
  const char* name() const override { return name_.c_str(); }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = make(L);
    if (!st) fail("INVALID_ENGINE", cu::where(L) + ": tactic " + name_ + " cannot run this layer on this device (" + why() + ")");
    init_state(L, *st, false);
    const Layer& l = st->l;
    // the graph's per-channel tensors: the folded multiplier and bias, beta[c] = r_scale / y_scale
    std::vector<float> s(l.p.fmult), b(static_cast<size_t>(l.g.M)), beta(static_cast<size_t>(l.g.M), l.p.fold.res);
    const uint8_t* bias = l.has_bias ? L.const_data(2) : nullptr;
    for (int c = 0; c < l.g.M; ++c) {
      float bc = 0;
      if (bias) std::memcpy(&bc, bias + c * sizeof(float), sizeof(float));
      b[c] = bias ? int8::fold_bias(bc, l.p.y_scale, l.p.y_zp) : static_cast<float>(l.p.y_zp);
    }
    st->s.upload(L, s.data(), s.size() * sizeof(float));
    st->b.upload(L, b.data(), b.size() * sizeof(float));
    if (l.has_residual) st->beta.upload(L, beta.data(), beta.size() * sizeof(float));
    return st;
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const CudnnState& st = *static_cast<CudnnState*>(s);
    if (ctx.workspace_bytes < size_t(st.workspace)) fail("INTERNAL", cu::where(L) + ": workspace too small for " + name_);
    std::vector<void*> ptrs{in[0].data, in[1].data, out[0].data, const_cast<float*>(st.s.as<float>()), const_cast<float*>(st.b.as<float>())};
    if (st.l.has_residual) ptrs.push_back(in[3].data), ptrs.push_back(const_cast<float*>(st.beta.as<float>()));
    cudnn_graph::execute(L, name_, *st.plan, st.graph->uids, ptrs, ctx.workspace, static_cast<cudaStream_t>(ctx.stream));
  }

 private:
  std::string why() const override { return "it needs a channels-last int8 convolution with the folded int8 epilogue, and a cuDNN engine for it"; }
  std::unique_ptr<CudnnState> make(const LayerInfo& L) const override {
    Layer l;
    ConvGeom g;
    if (!layer_ok(L, l, g)) return nullptr;
    auto st = std::make_unique<CudnnState>();
    st->l = l;
    st->graph = graph_for(L, l, g);
    if (!st->graph) return nullptr;
    st->plan = st->graph->plan(size_t(rank_));
    if (!st->plan) return nullptr;
    st->workspace = st->graph->workspace[rank_];
    return st;
  }

  int rank_;
  std::string name_;
};

struct RegisterAll {
  RegisterAll() {
    for (int i = 0; i < kCandidates; ++i) register_tactic("cuda", "Int8Conv", std::make_unique<Int8ConvCudnn>(i));
  }
} register_all;

}  // namespace
}  // namespace i8cu
}  // namespace kiln

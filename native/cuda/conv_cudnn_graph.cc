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
// Heuristics and execution plans are made once per layer configuration and kept (finalizing a
// runtime-fused plan compiles a kernel): when a layer is timed its candidates are finalized side by
// side; a rebuild from the timing cache finalizes only the chosen one. can_implement, workspace and
// prepare share them.
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "../cpu/conv_geom.h"
#include "cuda_util.h"
#include "epilogue.h"

namespace kiln {
namespace {

constexpr int kCandidates = 6;
constexpr int kSplitCandidates = 3;  // conv-only plans: the heuristics' top three
constexpr int64_t kMaxWorkspace = int64_t(1) << 30;

// One backend descriptor, destroyed with its owner.
class Desc {
 public:
  explicit Desc(cudnnBackendDescriptorType_t t) { ok_ = cudnnBackendCreateDescriptor(t, &d_) == CUDNN_STATUS_SUCCESS; }
  ~Desc() {
    if (d_) cudnnBackendDestroyDescriptor(d_);
  }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
  cudnnBackendDescriptor_t get() const { return d_; }
  // Each setter records failure; finalize() says whether everything so far succeeded.
  template <typename T>
  Desc& set(cudnnBackendAttributeName_t a, cudnnBackendAttributeType_t t, const T* v, int64_t n = 1) {
    if (ok_) ok_ = cudnnBackendSetAttribute(d_, a, t, n, v) == CUDNN_STATUS_SUCCESS;
    return *this;
  }
  Desc& set_desc(cudnnBackendAttributeName_t a, const Desc& v) {
    cudnnBackendDescriptor_t x = v.get();
    return set(a, CUDNN_TYPE_BACKEND_DESCRIPTOR, &x);
  }
  bool finalize() {
    if (ok_) ok_ = cudnnBackendFinalize(d_) == CUDNN_STATUS_SUCCESS;
    return ok_;
  }
  bool ok() const { return ok_; }

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
  bool ok_ = false;
};

// Finalizing a runtime-fused plan compiles its kernel (seconds of CPU): a layer's candidates are
// finalized side by side on a few long-lived threads, each with its own cuDNN handle (the plans keep
// them; the threads live as long as the process and are never joined).
class FinalizePool {
 public:
  static FinalizePool& instance() {
    static FinalizePool* p = new FinalizePool(std::max(1u, std::min(8u, std::thread::hardware_concurrency())));
    return *p;
  }
  // Runs fn(handle) on a worker for device `dev`; the future holds its result.
  std::future<bool> submit(int dev, std::function<bool(cudnnHandle_t)> fn) {
    auto task = std::make_shared<std::packaged_task<bool()>>([dev, fn = std::move(fn)] {
      if (cudaSetDevice(dev) != cudaSuccess) return false;
      try {
        return fn(cu::cudnn_handle());
      } catch (...) {
        return false;
      }
    });
    std::future<bool> f = task->get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      q_.push_back([task] { (*task)(); });
    }
    cv_.notify_one();
    return f;
  }

 private:
  explicit FinalizePool(unsigned n) {
    for (unsigned i = 0; i < n; ++i)
      std::thread([this] {
        for (;;) {
          std::function<void()> job;
          {
            std::unique_lock<std::mutex> lock(mu_);
            cv_.wait(lock, [this] { return !q_.empty(); });
            job = std::move(q_.front());
            q_.pop_front();
          }
          job();
        }
      }).detach();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> q_;
};

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

// A layer's operation graph with its heuristics' engine configurations, and the plans made from them.
struct Graph {
  std::vector<std::unique_ptr<Desc>> keep;  // tensors, ops, the graph: alive as long as the plans
  std::vector<std::unique_ptr<Desc>> cfgs;  // heuristics' ranking
  std::vector<std::unique_ptr<Desc>> plans; // per rank, finalized on first need (see plan())
  std::vector<int64_t> workspace;
  std::vector<int64_t> uids;                // the tensors a run binds, in order x, w, y[, b][, z]
  bool epilogue_after = false;              // the activation runs in cuep::bias_act
  int device = 0;
  std::mutex mu;
  std::vector<std::shared_future<bool>> ready;  // per rank: whether its plan finalized (invalid: not started)

  // Starts finalizing rank r on the pool (once).
  void start(size_t r) {
    if (ready[r].valid()) return;
    Desc* plan = plans[r].get();
    const Desc* cfg = cfgs[r].get();
    int64_t* ws = &workspace[r];
    ready[r] = FinalizePool::instance()
                   .submit(device,
                           [plan, cfg, ws](cudnnHandle_t wh) {
                             plan->set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, &wh)
                                 .set_desc(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, *cfg);
                             int64_t n = 0;
                             bool ok = plan->finalize() &&
                                       cudnnBackendGetAttribute(plan->get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n, ws) ==
                                           CUDNN_STATUS_SUCCESS &&
                                       *ws >= 0 && *ws <= kMaxWorkspace;
                             cudaGetLastError();  // nothing a refused plan left behind may leak into later calls on that thread
                             return ok;
                           })
                   .share();
  }
  // Rank r's finalized plan, or nullptr. The first need of a rank during timing starts every rank at
  // once, side by side; a rebuild from the timing cache (only_this_candidate) starts just the one it
  // uses, and later needs of it (prepare, workspace) wait for that one only.
  const Desc* plan(size_t r) {
    if (r >= plans.size()) return nullptr;
    std::shared_future<bool> f;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!ready[r].valid()) {  // first need of this rank: of it alone, or of every candidate
        if (only_this_candidate()) start(r);
        else
          for (size_t i = 0; i < plans.size(); ++i) start(i);
      }
      f = ready[r];
    }
    return f.get() ? plans[r].get() : nullptr;
  }
};

struct GraphState : LayerState {
  std::shared_ptr<Graph> graph;
  const Desc* plan = nullptr;
  int64_t workspace = 0;
  ConvGeom g;
  DType dt = DType::F32;
};

std::string key_of(const LayerInfo& L, const ConvGeom& g, DType dt, bool tc, bool conv_only) {
  int dev = 0;
  cudaGetDevice(&dev);
  std::string k = std::to_string(dev) + (tc ? "tc" : "") + (conv_only ? "s" : "") + (dt == DType::F16 ? "h" : "f") + (g.channels_last ? "L" : "C");
  for (int64_t v : {g.N, g.C, g.M, g.G, int64_t(g.has_bias), int64_t(g.has_residual), int64_t(g.act.kind)}) k += "," + std::to_string(v);
  for (int i = 0; i < 3; ++i)
    for (int64_t v : {g.in[i], g.out[i], g.k[i], g.s[i], g.d[i], g.p[i]}) k += "," + std::to_string(v);
  k += "," + std::to_string(g.act.lo) + "," + std::to_string(g.act.hi);
  for (const PlanTensor* t : L.in)
    if (t) k += ",a" + std::to_string(cu::alignment_of(*L.plan, t));
  return k + ",a" + std::to_string(cu::alignment_of(*L.plan, L.out[0]));
}

// Builds the operation graph, asks the heuristics, and makes every plan; nullptr when cuDNN has no
// engine for this layer at all.
// conv_only: the convolution alone (the caller runs bias, residual and activation after it).
std::shared_ptr<Graph> make_graph(const LayerInfo& L, const ConvGeom& g, DType dt, bool tc, bool conv_only) {
  auto gr = std::make_shared<Graph>();
  cudnnDataType_t io = dt == DType::F16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT, acc = CUDNN_DATA_FLOAT;
  // logical dims [N, C, H, W] (1-D convolutions: H = 1) with the stored layout's strides
  auto strides = [&](const std::vector<int64_t>& d) {
    return g.channels_last ? std::vector<int64_t>{d[1] * d[2] * d[3], 1, d[3] * d[1], d[1]}
                           : std::vector<int64_t>{d[1] * d[2] * d[3], d[2] * d[3], d[3], 1};
  };
  std::vector<int64_t> xd{g.N, g.C, g.in[1], g.in[2]}, wd{g.M, g.Cg, g.k[1], g.k[2]}, yd{g.N, g.M, g.out[1], g.out[2]}, bd{1, g.M, 1, 1};
  auto tensor = [&](int64_t uid, const std::vector<int64_t>& d, const std::vector<int64_t>& s, cudnnDataType_t t, bool virt, int64_t align) -> Desc& {
    gr->keep.push_back(std::make_unique<Desc>(CUDNN_BACKEND_TENSOR_DESCRIPTOR));
    Desc& x = *gr->keep.back();
    bool v = virt;
    x.set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, &t)
        .set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, d.data(), int64_t(d.size()))
        .set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, s.data(), int64_t(s.size()))
        .set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, &uid)
        .set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, &align)
        .set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, &v)
        .finalize();
    return x;
  };
  auto align = [&](const PlanTensor* t) { return int64_t(std::min<size_t>(cu::alignment_of(*L.plan, t), 16)); };
  Desc& X = tensor(kX, xd, strides(xd), io, false, align(L.in[0]));
  Desc& W = tensor(kW, wd, strides(wd), io, false, align(L.in[1]));
  gr->uids = {kX, kW, kY};
  cudnnPointwiseMode_t act_mode{};
  bool fuse_act = !conv_only && g.act.kind != Activation::None && pointwise_of(g.act, act_mode);
  gr->epilogue_after = g.act.kind != Activation::None && !fuse_act;
  bool bias = g.has_bias && !conv_only, residual = g.has_residual && !conv_only;
  int steps = int(bias) + int(residual) + int(fuse_act);
  int64_t next_virtual = kVirtual;
  // the output of a step: Y itself for the last one, a float virtual tensor before
  auto out_of = [&](bool last) -> Desc& { return last ? tensor(kY, yd, strides(yd), io, false, align(L.out[0])) : tensor(next_virtual++, yd, strides(yd), acc, true, 16); };

  Desc& conv = *gr->keep.emplace_back(std::make_unique<Desc>(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR));
  int64_t spatial = 2;
  cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  std::vector<int64_t> dil{g.d[1], g.d[2]}, str{g.s[1], g.s[2]}, pre{g.p[1], g.p[2]};
  // post paddings: what makes the output size come out as the layer's
  std::vector<int64_t> post(2);
  for (int i = 0; i < 2; ++i) post[i] = (g.out[1 + i] - 1) * g.s[1 + i] + (g.k[1 + i] - 1) * g.d[1 + i] + 1 - g.in[1 + i] - g.p[1 + i];
  if (post[0] < 0 || post[1] < 0) return nullptr;
  conv.set(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, &acc)
      .set(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, &mode)
      .set(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, &spatial)
      .set(CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, dil.data(), 2)
      .set(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, str.data(), 2)
      .set(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, pre.data(), 2)
      .set(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, post.data(), 2)
      .finalize();
  std::vector<cudnnBackendDescriptor_t> ops;
  Desc* cur = &out_of(steps == 0);
  {
    Desc& op = *gr->keep.emplace_back(std::make_unique<Desc>(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR));
    float alpha = 1.f, beta = 0.f;
    op.set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, X)
        .set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, W)
        .set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, *cur)
        .set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, conv)
        .set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, &alpha)
        .set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, &beta)
        .finalize();
    ops.push_back(op.get());
  }
  // cur = pointwise(mode, cur[, b]) as the next step
  auto pointwise = [&](cudnnPointwiseMode_t m, Desc* b, bool last) {
    Desc& pw = *gr->keep.emplace_back(std::make_unique<Desc>(CUDNN_BACKEND_POINTWISE_DESCRIPTOR));
    pw.set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, &m).set(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, &acc);
    if (m == CUDNN_POINTWISE_RELU_FWD && g.act.kind == Activation::Clip) {
      double lo = g.act.lo, hi = g.act.hi;
      pw.set(CUDNN_ATTR_POINTWISE_RELU_LOWER_CLIP, CUDNN_TYPE_DOUBLE, &lo).set(CUDNN_ATTR_POINTWISE_RELU_UPPER_CLIP, CUDNN_TYPE_DOUBLE, &hi);
    }
    pw.finalize();
    Desc& y = out_of(last);
    Desc& op = *gr->keep.emplace_back(std::make_unique<Desc>(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR));
    op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw).set_desc(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, *cur);
    if (b) op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, *b);
    op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y).finalize();
    ops.push_back(op.get());
    cur = &y;
  };
  int done = 0;
  if (bias) {
    Desc& B = tensor(kB, bd, strides(bd), io, false, align(L.in[2]));
    gr->uids.push_back(kB);
    pointwise(CUDNN_POINTWISE_ADD, &B, ++done == steps);
  }
  if (residual) {
    Desc& Z = tensor(kZ, yd, strides(yd), io, false, align(L.in[3]));
    gr->uids.push_back(kZ);
    pointwise(CUDNN_POINTWISE_ADD, &Z, ++done == steps);
  }
  if (fuse_act) pointwise(act_mode, nullptr, ++done == steps);
  for (const auto& d : gr->keep)
    if (!d->ok()) return nullptr;

  cudnnHandle_t h = cu::cudnn_handle();
  Desc& graph = *gr->keep.emplace_back(std::make_unique<Desc>(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR));
  graph.set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, ops.data(), int64_t(ops.size()))
      .set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, &h);
  if (!graph.finalize()) return nullptr;
  Desc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
  cudnnBackendHeurMode_t hm = CUDNN_HEUR_MODE_A;
  heur.set_desc(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph).set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, &hm);
  if (!heur.finalize()) return nullptr;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int i = 0; i < kCandidates; ++i) {
    gr->cfgs.push_back(std::make_unique<Desc>(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
    if (!gr->cfgs.back()->ok()) return nullptr;
    raw.push_back(gr->cfgs.back()->get());
  }
  int64_t got = 0;
  if (cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, kCandidates, &got, raw.data()) != CUDNN_STATUS_SUCCESS ||
      got <= 0)
    return nullptr;
  int64_t count = std::min<int64_t>(got, kCandidates);
  gr->plans.resize(count);
  gr->workspace.assign(count, 0);
  gr->ready.resize(count);
  cudaGetDevice(&gr->device);
  for (int64_t i = 0; i < count; ++i) gr->plans[i] = std::make_unique<Desc>(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
  return gr;
}

// Graphs by layer configuration, for the life of the process (plans hold compiled kernels).
std::shared_ptr<Graph> graph_for(const LayerInfo& L, const ConvGeom& g, DType dt, bool tc, bool conv_only) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<Graph>> cache;
  std::string key = key_of(L, g, dt, tc, conv_only);
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  auto gr = make_graph(L, g, dt, tc, conv_only);
  cache[key] = gr;
  return gr;
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
    cudnnHandle_t h = cu::cudnn_handle();
    KILN_CUDA_TRY_AT(L, cudnnSetStream(h, stream));
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
    Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
    void* ws = ctx.workspace;
    pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, st.graph->uids.data(), int64_t(st.graph->uids.size()))
        .set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, ptrs.data(), int64_t(ptrs.size()))
        .set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, &ws);
    if (!pack.finalize()) fail("RUNTIME", cu::where(L) + ": " + name_ + ": cuDNN refused the variant pack");
    KILN_CUDA_TRY_AT(L, cudnnBackendExecute(h, st.plan->get(), pack.get()));
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

// cuDNN's graph (backend) API as the convolution tactics use it (conv_cudnn_graph.cc for Conv,
// int8_conv_cudnn.cc for Int8Conv): descriptors that free themselves, a layer's operation graph with
// the engine configurations cuDNN's heuristics (mode A) rank for it, and the execution plans made from
// them. Finalizing a runtime-fused plan compiles a kernel (seconds of CPU): when a layer is timed its
// candidates are finalized side by side on a few long-lived threads; a rebuild from the timing cache
// finalizes only the chosen one.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../cpu/conv_geom.h"
#include "cuda_util.h"
#include "cudnn_desc.h"

namespace kiln {
namespace cudnn_graph {

constexpr int64_t kMaxWorkspace = int64_t(1) << 30;

// The long-lived finalizing threads, each with its own cuDNN handle (the plans keep them; the threads
// live as long as the process and are never joined).
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

// A layer's operation graph with its heuristics' engine configurations, and the plans made from them.
struct Graph {
  std::vector<std::unique_ptr<Desc>> keep;  // tensors, ops, the graph: alive as long as the plans
  std::vector<cudnnBackendDescriptor_t> ops;  // the graph's operations, in order (conv(), pointwise())
  std::vector<std::unique_ptr<Desc>> cfgs;  // heuristics' ranking
  std::vector<std::unique_ptr<Desc>> plans; // per rank, finalized on first need (see plan())
  std::vector<int64_t> workspace;
  std::vector<int64_t> uids;                // the tensors a run binds, in the order the tactic passes them
  bool epilogue_after = false;              // Conv: the activation runs in cuep::bias_act
  int device = 0;
  std::mutex mu;
  std::vector<std::shared_future<bool>> ready;  // per rank: whether its plan finalized (invalid: not started)

  // A new descriptor kept with the graph.
  Desc& add(cudnnBackendDescriptorType_t t) { return *keep.emplace_back(std::make_unique<Desc>(t)); }
  // A tensor of logical dims d with strides s (byte alignment `align`; virtual: internal to the graph).
  Desc& tensor(int64_t uid, const std::vector<int64_t>& d, const std::vector<int64_t>& s, cudnnDataType_t t, bool virt, int64_t align) {
    Desc& x = add(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    bool v = virt;
    x.set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, &t)
        .set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, d.data(), int64_t(d.size()))
        .set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, s.data(), int64_t(s.size()))
        .set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, &uid)
        .set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, &align)
        .set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, &v)
        .finalize();
    return x;
  }
  // The forward convolution X * W -> Y of geometry g (2-D; 1-D as H = 1), accumulating in `acc`;
  // false when cuDNN's paddings cannot give the layer's output size.
  bool conv(const ConvGeom& g, cudnnDataType_t acc, const Desc& X, const Desc& W, const Desc& Y) {
    Desc& conv = add(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
    const int64_t str[2] = {g.s[1], g.s[2]}, dil[2] = {g.d[1], g.d[2]}, pre[2] = {g.p[1], g.p[2]};
    int64_t post[2];
    for (int i = 0; i < 2; ++i)
      if ((post[i] = post_padding(g.in[1 + i], g.out[1 + i], g.k[1 + i], g.s[1 + i], g.d[1 + i], g.p[1 + i])) < 0) return false;
    conv_desc(conv, acc, str, dil, pre, post);
    Desc& op = add(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR);
    float alpha = 1.f, beta = 0.f;
    op.set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, X)
        .set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, W)
        .set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, Y)
        .set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, conv)
        .set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, &alpha)
        .set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, &beta)
        .finalize();
    ops.push_back(op.get());
    return true;
  }
  // Y = mode(X[, B]) computed in `math`; `pw` is the pointwise descriptor made by the caller (its
  // attributes set, not finalized).
  void pointwise(Desc& pw, cudnnDataType_t math, const Desc& X, const Desc* B, const Desc& Y) {
    pw.set(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, &math).finalize();
    Desc& op = add(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw).set_desc(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, X);
    if (B) op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, *B);
    op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, Y).finalize();
    ops.push_back(op.get());
  }
  // Finalizes the operation graph made of `ops`, asks the heuristics for up to n engine
  // configurations and makes a plan slot for each; false when a descriptor failed or cuDNN has no
  // engine for the graph.
  bool rank(int n) {
    for (const auto& d : keep)
      if (!d->ok()) return false;
    cudnnHandle_t h = cu::cudnn_handle();
    Desc& graph = add(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    graph.set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, ops.data(), int64_t(ops.size()))
        .set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, &h);
    if (!graph.finalize()) return false;
    Desc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    cudnnBackendHeurMode_t hm = CUDNN_HEUR_MODE_A;
    heur.set_desc(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph).set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, &hm);
    if (!heur.finalize()) return false;
    std::vector<cudnnBackendDescriptor_t> raw;
    for (int i = 0; i < n; ++i) {
      cfgs.push_back(std::make_unique<Desc>(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
      if (!cfgs.back()->ok()) return false;
      raw.push_back(cfgs.back()->get());
    }
    int64_t got = 0;
    if (cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n, &got, raw.data()) != CUDNN_STATUS_SUCCESS || got <= 0)
      return false;
    const int64_t count = std::min<int64_t>(got, n);
    plans.resize(count);
    workspace.assign(count, 0);
    ready.resize(count);
    cudaGetDevice(&device);
    for (int64_t i = 0; i < count; ++i) plans[i] = std::make_unique<Desc>(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
    return true;
  }

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

// The graph for `key`, made by make() on first need and kept for the life of the process (plans hold
// compiled kernels; a nullptr result, no engine, is kept too).
template <typename Make>
std::shared_ptr<Graph> cached(const std::string& key, Make&& make) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<Graph>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  return cache[key] = make();
}

// Logical dims [N, C, H, W] (or a filter's [M, Cg, kH, kW]) with the stored layout's strides:
// channels-last [N, H, W, C] or [N, C, H, W].
inline std::vector<int64_t> strides_of(const std::vector<int64_t>& d, bool channels_last) {
  return channels_last ? std::vector<int64_t>{d[1] * d[2] * d[3], 1, d[3] * d[1], d[1]} : std::vector<int64_t>{d[1] * d[2] * d[3], d[2] * d[3], d[3], 1};
}

// Runs a finalized plan with the tensors `ptrs` bound to `uids`; throws RUNTIME naming the layer.
inline void execute(const LayerInfo& L, const std::string& tactic, const Desc& plan, const std::vector<int64_t>& uids, std::vector<void*>& ptrs, void* workspace,
                    cudaStream_t stream) {
  cudnnHandle_t h = cu::cudnn_handle();
  KILN_CUDA_TRY_AT(L, cudnnSetStream(h, stream));
  Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, uids.data(), int64_t(uids.size()))
      .set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, ptrs.data(), int64_t(ptrs.size()))
      .set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, &workspace);
  if (!pack.finalize()) fail("RUNTIME", cu::where(L) + ": " + tactic + ": cuDNN refused the variant pack");
  KILN_CUDA_TRY_AT(L, cudnnBackendExecute(h, plan.get(), pack.get()));
}

// The part of a graph cache key every convolution shares: device, layout, geometry, the tensors'
// alignments.
inline std::string conv_key(const LayerInfo& L, const ConvGeom& g) {
  int dev = 0;
  cudaGetDevice(&dev);
  std::string k = std::to_string(dev) + (g.channels_last ? "L" : "C");
  for (int64_t v : {g.N, g.C, g.M, g.G, int64_t(g.has_bias), int64_t(g.has_residual), int64_t(g.act.kind)}) k += "," + std::to_string(v);
  for (int i = 0; i < 3; ++i)
    for (int64_t v : {g.in[i], g.out[i], g.k[i], g.s[i], g.d[i], g.p[i]}) k += "," + std::to_string(v);
  for (const PlanTensor* t : L.in)
    if (t) k += ",a" + std::to_string(cu::alignment_of(*L.plan, t));
  return k + ",a" + std::to_string(cu::alignment_of(*L.plan, L.out[0]));
}

}  // namespace cudnn_graph
}  // namespace kiln

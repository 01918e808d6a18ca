// The CUDA backend: tensors in device memory (cudaMalloc), one non-blocking stream per execution
// context, asynchronous copies, event timing, and each context's layers captured once into a CUDA
// graph and replayed (direct launches where capture fails). Nothing touches CUDA at require time: the
// first call that needs the device starts it. use_device() selects the device per thread (deviceId).
#include <algorithm>
#include <map>
#include <mutex>
#include <vector>

#include "../backend.h"
#include "cuda_util.h"

namespace kiln {

namespace cu {

namespace {
int current_device() {
  int d = 0;
  KILN_CUDA_TRY(cudaGetDevice(&d));
  return d;
}
}  // namespace

// Library handles, one per thread and device. cudnnCreate allocates device and pinned memory, which
// is not allowed while a stream is capturing: launch() and capturable() make the calling thread's
// handles before they capture. Every handle is also registered here so that release_handles() (the
// addon's unload) destroys them all, leaving nothing to a leak check; a thread's cached handles are
// then stale (generation) and made again on next use.
namespace {
struct HandleRegistry {
  std::mutex mu;
  uint64_t generation = 1;
  std::vector<std::pair<int, cudnnHandle_t>> cudnn;
  std::vector<std::pair<int, cublasLtHandle_t>> lt;
};
HandleRegistry& registry() {
  static HandleRegistry* r = new HandleRegistry();  // never destroyed: threads may outlive static teardown
  return *r;
}
struct ThreadHandles {
  uint64_t generation = 0;
  std::map<int, cudnnHandle_t> cudnn;
  std::map<int, cublasLtHandle_t> lt;
};
thread_local ThreadHandles thread_handles;

template <typename H, typename Make>
H thread_handle(std::map<int, H> ThreadHandles::*mine, std::vector<std::pair<int, H>> HandleRegistry::*all, Make make) {
  HandleRegistry& r = registry();
  ThreadHandles& t = thread_handles;
  int d = current_device();
  std::lock_guard<std::mutex> lock(r.mu);
  if (t.generation != r.generation) {
    t.cudnn.clear();
    t.lt.clear();
    t.generation = r.generation;
  }
  auto it = (t.*mine).find(d);
  if (it != (t.*mine).end()) return it->second;
  H h = make();
  (t.*mine)[d] = h;
  (r.*all).emplace_back(d, h);
  return h;
}
}  // namespace

cublasLtHandle_t lt_handle() {
  return thread_handle(&ThreadHandles::lt, &HandleRegistry::lt, [] {
    cublasLtHandle_t h = nullptr;
    KILN_CUDA_TRY(cublasLtCreate(&h));
    return h;
  });
}

cudnnHandle_t cudnn_handle() {
  return thread_handle(&ThreadHandles::cudnn, &HandleRegistry::cudnn, [] {
    cudnnHandle_t h = nullptr;
    KILN_CUDA_TRY(cudnnCreate(&h));
    return h;
  });
}

void release_handles() {
  HandleRegistry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.generation++;
  if (r.cudnn.empty() && r.lt.empty()) return;  // CUDA never used: nothing to touch
  int cur = -1;
  bool have = cudaGetDevice(&cur) == cudaSuccess;
  for (auto& [d, h] : r.cudnn) {
    cudaSetDevice(d);
    cudnnDestroy(h);
  }
  for (auto& [d, h] : r.lt) {
    cudaSetDevice(d);
    cublasLtDestroy(h);
  }
  if (have) cudaSetDevice(cur);
  cudaGetLastError();
  r.cudnn.clear();
  r.lt.clear();
}

}  // namespace cu

namespace {

// A context's launch cache: the instantiated graph of its layers, or a note that capture failed.
struct GraphCache {
  cudaGraphExec_t exec = nullptr;
  bool direct = false;  // capture failed once: launch directly from now on
};

class CudaBackend : public Backend {
 public:
  const char* name() const override { return "cuda"; }
  bool host_memory() const override { return false; }

  void use_device(int device) override {
    int n = device_count();
    if (n == 0) fail("RUNTIME", "no CUDA device: " + init_error_);
    if (device < 0 || device >= n)
      fail("RUNTIME", "deviceId " + std::to_string(device) + " is out of range: this machine has " + std::to_string(n) + " CUDA device" + (n == 1 ? "" : "s"));
    int cur = -1;
    if (cudaGetDevice(&cur) != cudaSuccess || cur != device) KILN_CUDA_TRY(cudaSetDevice(device));
  }

  void* alloc(size_t bytes, const char* what) override {
    need_device();
    if (bytes == 0) return nullptr;
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
      cudaGetLastError();
      fail("RUNTIME", std::string("out of device memory allocating ") + what + " (" + std::to_string(bytes) + " bytes): " + cu::status_name(e));
    }
    return p;
  }
  void release(void* p) override {
    if (p) cudaFree(p);  // no throw: runs from destructors
  }
  void* create_stream() override {
    need_device();
    cudaStream_t s = nullptr;
    KILN_CUDA_TRY(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    return s;
  }
  void destroy_stream(void* s) override {
    if (s) cudaStreamDestroy(static_cast<cudaStream_t>(s));
  }
  void to_device(void* dst, const void* src, size_t n, void* stream) override {
    if (n) KILN_CUDA_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, static_cast<cudaStream_t>(stream)));
  }
  void to_host(void* dst, const void* src, size_t n, void* stream) override {
    if (n) KILN_CUDA_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, static_cast<cudaStream_t>(stream)));
  }
  void synchronize(void* stream) override { KILN_CUDA_TRY(cudaStreamSynchronize(static_cast<cudaStream_t>(stream))); }

  // Warm-up run, then up to `iters` runs each between two events; the median. Stops repeating once a
  // run takes longer than cap_ms.
  double time_ms(const std::function<void()>& fn, int iters, double cap_ms, void* stream) override {
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    cudaEvent_t a = nullptr, b = nullptr;
    KILN_CUDA_TRY(cudaEventCreate(&a));
    cudaError_t eb = cudaEventCreate(&b);
    if (eb != cudaSuccess) {
      cudaEventDestroy(a);
      KILN_CUDA_TRY(eb);
    }
    std::vector<double> runs;
    try {
      fn();
      synchronize(stream);
      for (int r = 0; r < std::max(iters, 1); ++r) {
        KILN_CUDA_TRY(cudaEventRecord(a, s));
        fn();
        KILN_CUDA_TRY(cudaEventRecord(b, s));
        KILN_CUDA_TRY(cudaEventSynchronize(b));
        float ms = 0;
        KILN_CUDA_TRY(cudaEventElapsedTime(&ms, a, b));
        runs.push_back(ms);
        if (ms > cap_ms) break;
      }
    } catch (...) {
      cudaEventDestroy(a);
      cudaEventDestroy(b);
      throw;
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    std::sort(runs.begin(), runs.end());
    return runs[runs.size() / 2];
  }

  // The first launch of a context captures its layers into a graph; later launches replay it.
  void launch(const std::function<void()>& body, void* stream, void** cache) override {
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    if (!cache || !s) return body();
    auto* gc = static_cast<GraphCache*>(*cache);
    if (!gc) *cache = gc = new GraphCache();
    if (gc->exec) {
      KILN_CUDA_TRY(cudaGraphLaunch(gc->exec, s));
      return;
    }
    if (gc->direct) return body();
    cu::cudnn_handle();  // the libraries' handles allocate: not while the stream captures
    cu::lt_handle();
    if (!capture(body, s, gc)) {
      gc->direct = true;
      cudaGetLastError();  // clear what the failed capture left
      return body();
    }
    KILN_CUDA_TRY(cudaGraphLaunch(gc->exec, s));
  }
  bool capturable(const std::function<void()>& body, void* stream) override {
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    if (!s) return true;
    cu::cudnn_handle();
    cu::lt_handle();
    GraphCache gc;
    bool ok = capture(body, s, &gc);
    if (gc.exec) cudaGraphExecDestroy(gc.exec);
    cudaGetLastError();
    return ok;
  }
  void shutdown() override {
    cu::release_handles();
  }
  void release_launch_cache(void* cache) override {
    auto* gc = static_cast<GraphCache*>(cache);
    if (!gc) return;
    if (gc->exec) cudaGraphExecDestroy(gc->exec);
    delete gc;
  }

  std::pair<size_t, size_t> memory() override {
    need_device();
    size_t free = 0, total = 0;
    KILN_CUDA_TRY(cudaMemGetInfo(&free, &total));
    return {free, total};
  }

  std::string device() const override {
    const Props* p = props();
    return p ? p->name : "no CUDA device (" + init_error_ + ")";
  }
  std::string capability() const override {
    const Props* p = props();
    return p ? std::to_string(p->major) + "." + std::to_string(p->minor) : "";
  }
  std::string libraries() const override {
    int rt = 0, drv = 0;
    cudaRuntimeGetVersion(&rt);
    cudaDriverGetVersion(&drv);
    return "{\"cudaRuntime\":" + std::to_string(rt) + ",\"driver\":" + std::to_string(drv) + ",\"cublasLt\":" +
           std::to_string(cublasLtGetVersion()) + ",\"cudnn\":" + std::to_string(cudnnGetVersion()) + "}";
  }

 private:
  struct Props {
    std::string name;
    int major = 0, minor = 0;
  };

  // Number of CUDA devices (0 when there is none or the driver cannot start; init_error_ says why).
  int device_count() const {
    std::call_once(init_once_, [this] {
      int n = 0;
      cudaError_t e = cudaGetDeviceCount(&n);
      if (e != cudaSuccess) {
        cudaGetLastError();
        init_error_ = cu::status_name(e);
        n = 0;
      } else if (n == 0) {
        init_error_ = "cudaGetDeviceCount found none";
      }
      count_ = n;
    });
    return count_;
  }
  void need_device() const {
    if (device_count() == 0) fail("RUNTIME", "no CUDA device: " + init_error_);
  }
  const Props* props() const {
    if (device_count() == 0) return nullptr;
    int d = 0;
    if (cudaGetDevice(&d) != cudaSuccess) return nullptr;
    std::lock_guard<std::mutex> l(mu_);
    auto it = props_.find(d);
    if (it != props_.end()) return &it->second;
    cudaDeviceProp dp{};
    if (cudaGetDeviceProperties(&dp, d) != cudaSuccess) return nullptr;
    Props& p = props_[d];
    p.name = dp.name;
    p.major = dp.major;
    p.minor = dp.minor;
    return &p;
  }

  // Captures body() on stream s (this thread's work only) and instantiates the graph. False when the
  // capture or the instantiation fails (then nothing of body() ran on the device).
  static bool capture(const std::function<void()>& body, cudaStream_t s, GraphCache* gc) {
    if (cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) != cudaSuccess) return false;
    bool body_ok = true;
    try {
      body();
    } catch (...) {
      body_ok = false;  // rerun directly: a real error then surfaces with its message
    }
    cudaGraph_t g = nullptr;
    cudaError_t e = cudaStreamEndCapture(s, &g);
    if (!body_ok || e != cudaSuccess || !g) {
      if (g) cudaGraphDestroy(g);
      return false;
    }
    e = cudaGraphInstantiate(&gc->exec, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) {
      gc->exec = nullptr;
      return false;
    }
    return true;
  }

  mutable std::once_flag init_once_;
  mutable int count_ = 0;
  mutable std::string init_error_;
  mutable std::mutex mu_;
  mutable std::map<int, Props> props_;
};

}  // namespace
KILN_REGISTER_BACKEND(CudaBackend);
}  // namespace kiln

// A backend is where layers run and tensors live: the CPU (host memory, the thread pool) or a GPU
// (device memory, streams). The executor talks to memory, streams and timers only through this
// interface, so one Plan, one memory plan and one tactic interface serve every backend. Backends
// register themselves (KILN_REGISTER_BACKEND); a build without CUDA simply has no "cuda" backend.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common.h"

namespace kiln {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  // True when tensors live in host memory (the CPU backend): inputs are then read in place.
  virtual bool host_memory() const = 0;
  virtual void* alloc(size_t bytes, const char* what) = 0;  // 256-byte aligned; throws RUNTIME on failure
  virtual void release(void* p) = 0;
  virtual void* create_stream() { return nullptr; }
  virtual void destroy_stream(void*) {}
  virtual void to_device(void* dst, const void* src, size_t n, void* stream) = 0;
  virtual void to_host(void* dst, const void* src, size_t n, void* stream) = 0;
  virtual void synchronize(void* stream) {}
  // Runs fn once to warm up, then up to `iters` times, and returns the median milliseconds per run;
  // stops early once a run exceeds cap_ms. Device backends time with their own events.
  virtual double time_ms(const std::function<void()>& fn, int iters, double cap_ms, void* stream);
  // Times `iters` runs of fn one by one (after one untimed run) and returns every run's milliseconds:
  // device time between two events on a GPU; wall time up to the synchronize on the CPU.
  virtual std::vector<double> time_runs(const std::function<void()>& fn, int iters, void* stream);
  // Runs a context's layers. Device backends may capture them once into a graph and replay it
  // (`cache` is the context's slot for that); the CPU just calls body().
  virtual void launch(const std::function<void()>& body, void* stream, void** cache) { body(); }
  virtual void release_launch_cache(void* cache) {}
  // Whether `body` can be captured into the backend's launch graph (the build checks each layer's
  // chosen tactic: a library call that works directly but not under capture is not chosen).
  virtual bool capturable(const std::function<void()>& body, void* stream) { return true; }
  // Device backends: makes `device` (an index, e.g. CUDA's) current on the calling thread; build and
  // run threads call it before touching memory or streams. The CPU ignores it.
  virtual void use_device(int device) {}
  // What the engine header records: device name, capability, library versions (a JSON object).
  virtual std::string device() const = 0;
  virtual std::string capability() const = 0;
  virtual std::string libraries() const { return "{}"; }
  // Device memory (free, total) in bytes on the current device; {0, 0} where it has no meaning.
  virtual std::pair<size_t, size_t> memory() { return {0, 0}; }
  // The addon is unloading (Node's environment teardown): release what outlives engines (library handles).
  virtual void shutdown() {}
};

void register_backend(std::unique_ptr<Backend> b);
// nullptr when this build has no such backend.
Backend* find_backend(const std::string& name);
std::vector<std::string> backend_names();

struct BackendRegistrar {
  explicit BackendRegistrar(std::unique_ptr<Backend> b) { register_backend(std::move(b)); }
};
#define KILN_REGISTER_BACKEND(cls) static ::kiln::BackendRegistrar KILN_BACKEND_REG_##cls(std::make_unique<cls>())

}  // namespace kiln

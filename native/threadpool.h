// A process-wide worker pool for the CPU kernels. parallel_for is safe to call from several threads at
// once (concurrent infer calls) and from inside a task: the caller always works on its own range too,
// so a busy pool never deadlocks it.
#pragma once

#include <cstdint>
#include <functional>

namespace kiln {

class ThreadPool {
 public:
  static ThreadPool& instance();
  int size() const;  // worker threads + the caller
  // Calls fn(begin, end) over [0, n) in chunks of at least `grain` items.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  ThreadPool();
  struct Impl;
  Impl* impl_;
};

}  // namespace kiln

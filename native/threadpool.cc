#include "threadpool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace kiln {

namespace {
struct Job {
  std::function<void(int64_t, int64_t)> fn;
  int64_t n = 0, chunk = 1, chunks = 0;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::mutex m;
  std::condition_variable cv;
  void work() {
    for (;;) {
      int64_t c = next.fetch_add(1);
      if (c >= chunks) return;
      int64_t b = c * chunk, e = std::min(n, b + chunk);
      fn(b, e);
      if (done.fetch_add(1) + 1 == chunks) {
        std::lock_guard<std::mutex> l(m);
        cv.notify_all();
      }
    }
  }
};
}  // namespace

struct ThreadPool::Impl {
  std::vector<std::thread> threads;
  std::deque<std::shared_ptr<Job>> queue;
  std::mutex m;
  std::condition_variable cv;
  void loop() {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> l(m);
        cv.wait(l, [&] { return !queue.empty(); });
        job = std::move(queue.front());
        queue.pop_front();
      }
      job->work();
    }
  }
};

ThreadPool::ThreadPool() : impl_(new Impl) {
  int n = static_cast<int>(std::thread::hardware_concurrency());
  if (const char* env = std::getenv("KILN_THREADS")) n = std::max(1, std::atoi(env));
  n = std::max(1, std::min(n, 64));
  for (int i = 0; i < n - 1; ++i) {
    impl_->threads.emplace_back([this] { impl_->loop(); });
    impl_->threads.back().detach();  // lives as long as the process; never joined at exit
  }
}

ThreadPool& ThreadPool::instance() {
  static ThreadPool* pool = new ThreadPool();  // intentionally never destroyed (detached workers use it)
  return *pool;
}

int ThreadPool::size() const { return static_cast<int>(impl_->threads.size()) + 1; }

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  int64_t max_chunks = std::min<int64_t>(size() * 4, (n + grain - 1) / grain);
  if (max_chunks <= 1 || size() == 1) {
    fn(0, n);
    return;
  }
  auto job = std::make_shared<Job>();
  job->fn = fn;
  job->n = n;
  job->chunk = (n + max_chunks - 1) / max_chunks;
  job->chunks = (n + job->chunk - 1) / job->chunk;
  {
    std::lock_guard<std::mutex> l(impl_->m);
    int helpers = static_cast<int>(std::min<int64_t>(job->chunks - 1, size() - 1));
    for (int i = 0; i < helpers; ++i) impl_->queue.push_back(job);
  }
  impl_->cv.notify_all();
  job->work();
  std::unique_lock<std::mutex> l(job->m);
  job->cv.wait(l, [&] { return job->done.load() == job->chunks; });
}

}  // namespace kiln

// The kernel benchmarks' (bench/kernels/*.cu) check of a CUDA runtime call (print where and why, exit 1)
// and their timer.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#define CK(x)                                                                                   \
  do {                                                                                          \
    cudaError_t e_ = (x);                                                                       \
    if (e_ != cudaSuccess) {                                                                    \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                             \
    }                                                                                           \
  } while (0)

// Microseconds per call of fn() on `st`: three warm-up calls, then `reps` timed between two events.
struct Timer {
  cudaStream_t st;
  int reps;
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  Timer(cudaStream_t s, int r) : st(s), reps(r) {
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
  }
  template <typename F>
  double operator()(F&& fn) const {
    for (int i = 0; i < 3; ++i) fn();
    CK(cudaStreamSynchronize(st));
    CK(cudaEventRecord(e0, st));
    for (int i = 0; i < reps; ++i) fn();
    CK(cudaEventRecord(e1, st));
    CK(cudaEventSynchronize(e1));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    return 1000.0 * ms / reps;
  }
};

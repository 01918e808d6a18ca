// The float32 GEMM core shared by the Gemm/MatMul and Conv/ConvTranspose kernels:
//   C[m, n] = act(alpha * sum_k A(m, k) * B(k, n) + beta * bias(m, n))
// A and B are read through (row, column) element strides, so transposed operands and weight views
// need no copy. The operands are packed into MR x KC and KC x NR panels (zero-padded at the edges)
// and a register-tile microkernel runs over them: an AVX2/FMA one where the CPU has it (picked at run
// time), a portable one otherwise. Work is split over tiles of C on the thread pool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace kiln {

class ThreadPool;
struct LayerInfo;

// The fused epilogue activation ('activation' attribute of Gemm and Conv layers).
struct Activation {
  enum Kind { None, Relu, Clip } kind = None;
  float lo = 0, hi = 0;  // Clip bounds
  template <typename V>
  V apply(V v) const {
    switch (kind) {
      case Relu: return v < V(0) ? V(0) : v;
      case Clip: return v < V(lo) ? V(lo) : (v > V(hi) ? V(hi) : v);
      default: return v;
    }
  }
};
// Reads attributes 'activation' ('none' | 'relu' | 'clip') and, for 'clip', 'activation_min' and
// 'activation_max'. Throws naming the layer for an unknown activation.
Activation parse_activation(const LayerInfo& L);

namespace sgemm {

struct Matrix {
  const float* p = nullptr;
  int64_t rs = 0, cs = 0;  // element strides of a row step and a column step
  float at(int64_t r, int64_t c) const { return p[r * rs + c * cs]; }
};

struct Epilogue {
  float alpha = 1;
  float beta = 0;
  Matrix bias;  // bias.p == nullptr: none; strides may be 0 (broadcast)
  Activation act;
};

// Scratch floats gemm() needs in `workspace` for these sizes.
size_t workspace_floats(int64_t M, int64_t N, int64_t K);

// C (row stride ldc, unit column stride) = epilogue(A x B). `workspace` holds workspace_floats(M, N, K)
// floats, 64-byte aligned. `pool` may be nullptr (single-threaded).
void gemm(int64_t M, int64_t N, int64_t K, Matrix A, Matrix B, float* C, int64_t ldc, const Epilogue& ep, ThreadPool* pool,
          float* workspace);

// Whether the AVX2/FMA microkernel is in use on this CPU.
bool has_avx2();

}  // namespace sgemm
}  // namespace kiln

// The float32 GEMM core shared by the Gemm/MatMul and Conv/ConvTranspose kernels:
//   C[m, n] = act(alpha * sum_k A(m, k) * B(k, n) + beta * bias(m, n))
// A and B are read through (row, column) element strides, so transposed operands and weight views
// need no copy. The operands are packed into MR x KC and KC x NR panels (zero-padded at the edges)
// and a register-tile microkernel runs over them: an AVX-512 one where the CPU has it, else an AVX2/FMA
// one (picked at run time), a portable one otherwise. Work is split over tiles of C on the thread pool.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace kiln {

class ThreadPool;
struct LayerInfo;

// The fused epilogue activation ('activation' attribute of Gemm and Conv layers), applied after the
// bias and the residual have been added: y = act(acc + bias + residual).
struct Activation {
  enum Kind { None, Relu, Clip, Sigmoid, Tanh, LeakyRelu, HardSigmoid, HardSwish, Gelu, GeluTanh, Silu } kind = None;
  float lo = 0, hi = 0;        // Clip bounds
  float alpha = 0, beta = 0;   // LeakyRelu slope; HardSigmoid alpha, beta
  template <typename V>
  V apply(V v) const {
    switch (kind) {
      case Relu: return v < V(0) ? V(0) : v;
      case Clip: return v < V(lo) ? V(lo) : (v > V(hi) ? V(hi) : v);
      case Sigmoid: return V(1) / (V(1) + std::exp(-v));
      case Tanh: return std::tanh(v);
      case LeakyRelu: return v < V(0) ? V(alpha) * v : v;
      case HardSigmoid: return std::max(V(0), std::min(V(1), V(alpha) * v + V(beta)));
      case HardSwish: return v * std::max(V(0), std::min(V(1), v / V(6) + V(0.5)));
      case Gelu: return V(0.5) * v * (V(1) + std::erf(v * V(0.70710678118654752440)));
      case GeluTanh: return V(0.5) * v * (V(1) + std::tanh(V(0.79788456080286535588) * (v + V(0.044715) * v * v * v)));
      case Silu: return v / (V(1) + std::exp(-v));
      default: return v;
    }
  }
  // Applies the activation to a row in place: the choice is made once per row, so each loop body is
  // one simple function (Relu and Clip vectorize).
  void apply_row(float* p, int64_t n) const {
    switch (kind) {
      case None: return;
      case Relu: for (int64_t i = 0; i < n; ++i) p[i] = p[i] < 0.f ? 0.f : p[i]; return;
      case Clip: for (int64_t i = 0; i < n; ++i) p[i] = p[i] < lo ? lo : (p[i] > hi ? hi : p[i]); return;
      default: for (int64_t i = 0; i < n; ++i) p[i] = apply(p[i]); return;
    }
  }
};
// Reads attribute 'activation' ('none' | 'relu' | 'clip' | 'sigmoid' | 'tanh' | 'leaky_relu' |
// 'hard_sigmoid' | 'hard_swish' | 'gelu' | 'gelu_tanh' | 'silu'), with 'activation_min'/'activation_max'
// for clip and 'activation_alpha'/'activation_beta' for leaky_relu and hard_sigmoid. Throws naming the
// layer for an unknown activation.
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
  Matrix bias;      // bias.p == nullptr: none; strides may be 0 (broadcast)
  Matrix residual;  // residual.p == nullptr: none; added (with weight 1) after the bias
  Activation act;
};

// Columns of one packed B panel (the microkernel's register tile is MR x NR).
constexpr int64_t NR = 16;

// Scratch floats gemm() needs in `workspace` for these sizes.
size_t workspace_floats(int64_t M, int64_t N, int64_t K);

// C (row stride ldc, unit column stride) = epilogue(A x B). `workspace` holds workspace_floats(M, N, K)
// floats, 64-byte aligned. `pool` may be nullptr (single-threaded).
void gemm(int64_t M, int64_t N, int64_t K, Matrix A, Matrix B, float* C, int64_t ldc, const Epilogue& ep, ThreadPool* pool,
          float* workspace);

// The prepacked path, for an A known before the run (Conv weights, packed once in prepare()) and a B
// that a caller packs straight from its own layout (Conv's im2col goes directly into panels, with no
// column matrix). One parallel_for over column blocks (and row blocks when there are few of those)
// packs each block's B panels and multiplies them, so a layer syncs the pool once.
//
// Floats A takes packed: MR-row panels per KC-deep slice.
size_t packed_a_floats(int64_t M, int64_t K);
// Packs A (M x K) into `dst` (packed_a_floats(M, K) floats).
void pack_a_all(int64_t M, int64_t K, Matrix A, float* dst);
// Writes rows [p0, p0+kc) x columns [j0, j0+NR) of B into dst[k * NR + c], 0 for columns >= N.
using PackB = std::function<void(int64_t j0, int64_t p0, int64_t kc, float* dst)>;
// B panels packed from a plain matrix.
PackB matrix_packer(Matrix B, int64_t N);
size_t packed_workspace_floats(int64_t M, int64_t N, int64_t K);
// C = epilogue(A x B) with A from pack_a_all; `workspace` holds packed_workspace_floats(M, N, K) floats.
void gemm_packed(int64_t M, int64_t N, int64_t K, const float* packed_a, const PackB& pack_b, float* C, int64_t ldc,
                 const Epilogue& ep, ThreadPool* pool, float* workspace);

// The path for a B known before the run and a small A (Conv 1x1 on a tiny map, computed transposed):
// B (K x N) packed once into NR-column panels, A packed per call into the workspace.
size_t packed_b_floats(int64_t K, int64_t N);
void pack_b_all(int64_t K, int64_t N, Matrix B, float* dst);
size_t prepacked_workspace_floats(int64_t M, int64_t K);
// C (row stride ldc, column stride ccs) = epilogue(A x B) with B from pack_b_all; `workspace` holds
// prepacked_workspace_floats(M, K) floats.
void gemm_prepacked(int64_t M, int64_t N, int64_t K, Matrix A, const float* packed_b, float* C, int64_t ldc, int64_t ccs,
                    const Epilogue& ep, ThreadPool* pool, float* workspace);

// Whether the AVX2/FMA microkernel is in use on this CPU.
bool has_avx2();

}  // namespace sgemm
}  // namespace kiln

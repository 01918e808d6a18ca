// The float32 GEMM core (sgemm.h): packing, the AVX-512, AVX2/FMA and portable microkernels, the threaded
// driver, and the epilogue (alpha, beta * bias, activation) applied as each C tile is stored.
#include "sgemm.h"

#include <algorithm>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KILN_X86 1
#endif

#include "../tactic.h"
#include "../threadpool.h"

namespace kiln {

Activation parse_activation(const LayerInfo& L) {
  Activation a;
  std::string s = L.op->s("activation", "none");
  static const std::pair<const char*, Activation::Kind> kinds[] = {
      {"none", Activation::None},       {"relu", Activation::Relu},           {"clip", Activation::Clip},
      {"sigmoid", Activation::Sigmoid}, {"tanh", Activation::Tanh},           {"leaky_relu", Activation::LeakyRelu},
      {"hard_sigmoid", Activation::HardSigmoid}, {"hard_swish", Activation::HardSwish}, {"gelu", Activation::Gelu},
      {"gelu_tanh", Activation::GeluTanh}, {"silu", Activation::Silu}};
  bool known = false;
  for (auto& [n, k] : kinds)
    if (s == n) a.kind = k, known = true;
  if (!known) fail("INTERNAL", "layer '" + L.op->name + "' (" + L.op->kind + "): unknown epilogue activation '" + s + "'");
  if (a.kind == Activation::Clip) {
    a.lo = static_cast<float>(L.op->f("activation_min"));
    a.hi = static_cast<float>(L.op->f("activation_max"));
  }
  a.alpha = static_cast<float>(L.op->f("activation_alpha", 0));
  a.beta = static_cast<float>(L.op->f("activation_beta", 0));
  return a;
}

namespace sgemm {
namespace {

constexpr int64_t MR = 6;
constexpr int64_t KC = 256;  // depth of one packed slice
constexpr int64_t MC = 96;   // rows of C per task (16 panels of MR)
constexpr int64_t NC = 192;  // columns of C per task (12 panels of NR)

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// acc[MR][NR] = sum_k a[k][0..MR) (outer) b[k][0..NR)
void kernel_portable(int64_t kc, const float* a, const float* b, float* acc) {
  float c[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k, a += MR, b += NR)
    for (int64_t r = 0; r < MR; ++r)
      for (int64_t j = 0; j < NR; ++j) c[r][j] += a[r] * b[j];
  std::memcpy(acc, c, sizeof(c));
}

#ifdef KILN_X86
__attribute__((target("avx2,fma"))) void kernel_avx2(int64_t kc, const float* a, const float* b, float* acc) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
         c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int64_t k = 0; k < kc; ++k, a += MR, b += NR) {
    __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    __m256 x = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(x, b0, c00);
    c01 = _mm256_fmadd_ps(x, b1, c01);
    x = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(x, b0, c10);
    c11 = _mm256_fmadd_ps(x, b1, c11);
    x = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(x, b0, c20);
    c21 = _mm256_fmadd_ps(x, b1, c21);
    x = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(x, b0, c30);
    c31 = _mm256_fmadd_ps(x, b1, c31);
    x = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(x, b0, c40);
    c41 = _mm256_fmadd_ps(x, b1, c41);
    x = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(x, b0, c50);
    c51 = _mm256_fmadd_ps(x, b1, c51);
  }
  _mm256_storeu_ps(acc + 0 * NR, c00);
  _mm256_storeu_ps(acc + 0 * NR + 8, c01);
  _mm256_storeu_ps(acc + 1 * NR, c10);
  _mm256_storeu_ps(acc + 1 * NR + 8, c11);
  _mm256_storeu_ps(acc + 2 * NR, c20);
  _mm256_storeu_ps(acc + 2 * NR + 8, c21);
  _mm256_storeu_ps(acc + 3 * NR, c30);
  _mm256_storeu_ps(acc + 3 * NR + 8, c31);
  _mm256_storeu_ps(acc + 4 * NR, c40);
  _mm256_storeu_ps(acc + 4 * NR + 8, c41);
  _mm256_storeu_ps(acc + 5 * NR, c50);
  _mm256_storeu_ps(acc + 5 * NR + 8, c51);
}

// The same MR x NR tile with one zmm register per row. Six accumulators alone would leave the FMA
// units waiting on latency, so even and odd depth steps go to two sets of six (summed at the end):
// twelve independent chains, as the AVX2 kernel has.
__attribute__((target("avx512f"))) void kernel_avx512(int64_t kc, const float* a, const float* b, float* acc) {
  static_assert(MR == 6 && NR == 16, "kernel_avx512 is written for a 6 x 16 tile");
  __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
  __m512 d0 = c0, d1 = c0, d2 = c0, d3 = c0, d4 = c0, d5 = c0;
  int64_t k = 0;
  for (; k + 2 <= kc; k += 2, a += 2 * MR, b += 2 * NR) {
    __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + NR);
    c0 = _mm512_fmadd_ps(_mm512_set1_ps(a[0]), b0, c0);
    c1 = _mm512_fmadd_ps(_mm512_set1_ps(a[1]), b0, c1);
    c2 = _mm512_fmadd_ps(_mm512_set1_ps(a[2]), b0, c2);
    c3 = _mm512_fmadd_ps(_mm512_set1_ps(a[3]), b0, c3);
    c4 = _mm512_fmadd_ps(_mm512_set1_ps(a[4]), b0, c4);
    c5 = _mm512_fmadd_ps(_mm512_set1_ps(a[5]), b0, c5);
    d0 = _mm512_fmadd_ps(_mm512_set1_ps(a[MR + 0]), b1, d0);
    d1 = _mm512_fmadd_ps(_mm512_set1_ps(a[MR + 1]), b1, d1);
    d2 = _mm512_fmadd_ps(_mm512_set1_ps(a[MR + 2]), b1, d2);
    d3 = _mm512_fmadd_ps(_mm512_set1_ps(a[MR + 3]), b1, d3);
    d4 = _mm512_fmadd_ps(_mm512_set1_ps(a[MR + 4]), b1, d4);
    d5 = _mm512_fmadd_ps(_mm512_set1_ps(a[MR + 5]), b1, d5);
  }
  if (k < kc) {
    __m512 b0 = _mm512_loadu_ps(b);
    c0 = _mm512_fmadd_ps(_mm512_set1_ps(a[0]), b0, c0);
    c1 = _mm512_fmadd_ps(_mm512_set1_ps(a[1]), b0, c1);
    c2 = _mm512_fmadd_ps(_mm512_set1_ps(a[2]), b0, c2);
    c3 = _mm512_fmadd_ps(_mm512_set1_ps(a[3]), b0, c3);
    c4 = _mm512_fmadd_ps(_mm512_set1_ps(a[4]), b0, c4);
    c5 = _mm512_fmadd_ps(_mm512_set1_ps(a[5]), b0, c5);
  }
  _mm512_storeu_ps(acc + 0 * NR, _mm512_add_ps(c0, d0));
  _mm512_storeu_ps(acc + 1 * NR, _mm512_add_ps(c1, d1));
  _mm512_storeu_ps(acc + 2 * NR, _mm512_add_ps(c2, d2));
  _mm512_storeu_ps(acc + 3 * NR, _mm512_add_ps(c3, d3));
  _mm512_storeu_ps(acc + 4 * NR, _mm512_add_ps(c4, d4));
  _mm512_storeu_ps(acc + 5 * NR, _mm512_add_ps(c5, d5));
}
#endif

using Kernel = void (*)(int64_t, const float*, const float*, float*);

bool detect_avx512() {
#ifdef KILN_X86
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}

bool detect_avx2() {
#ifdef KILN_X86
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

Kernel pick_kernel() {
#ifdef KILN_X86
  static const bool avx512 = detect_avx512();
  if (avx512) return kernel_avx512;
  if (has_avx2()) return kernel_avx2;
#endif
  return kernel_portable;
}

// Packs rows [i0, i0+MR) x depth [p0, p0+kc) of A as a[k][r], zero past M.
void pack_a(const Matrix& A, int64_t M, int64_t i0, int64_t p0, int64_t kc, float* dst) {
  int64_t rows = std::min(MR, M - i0);
  for (int64_t k = 0; k < kc; ++k) {
    const float* src = A.p + (p0 + k) * A.cs + i0 * A.rs;
    float* d = dst + k * MR;
    int64_t r = 0;
    for (; r < rows; ++r) d[r] = src[r * A.rs];
    for (; r < MR; ++r) d[r] = 0.f;
  }
}

// Packs depth [p0, p0+kc) x columns [j0, j0+NR) of B as b[k][c], zero past N.
void pack_b(const Matrix& B, int64_t N, int64_t j0, int64_t p0, int64_t kc, float* dst) {
  int64_t cols = std::min(NR, N - j0);
  for (int64_t k = 0; k < kc; ++k) {
    const float* src = B.p + (p0 + k) * B.rs + j0 * B.cs;
    float* d = dst + k * NR;
    int64_t c = 0;
    if (B.cs == 1)
      for (; c < cols; ++c) d[c] = src[c];
    else
      for (; c < cols; ++c) d[c] = src[c * B.cs];
    for (; c < NR; ++c) d[c] = 0.f;
  }
}

// Finishes row i of a C tile: c[0..cols) (columns j0..) = alpha * a (the first depth slice sets,
// later ones add); the last one adds beta * bias and the residual and applies the activation.
void finish_row(float* c, const float* a, int64_t i, int64_t j0, int64_t cols, const Epilogue& ep, bool first, bool last) {
  if (first)
    for (int64_t j = 0; j < cols; ++j) c[j] = ep.alpha * a[j];
  else
    for (int64_t j = 0; j < cols; ++j) c[j] += ep.alpha * a[j];
  if (!last) return;
  if (ep.bias.p) {
    const float* b = ep.bias.p + i * ep.bias.rs + j0 * ep.bias.cs;
    int64_t bs = ep.bias.cs;
    for (int64_t j = 0; j < cols; ++j) c[j] += ep.beta * b[j * bs];
  }
  if (ep.residual.p) {
    const float* z = ep.residual.p + i * ep.residual.rs + j0 * ep.residual.cs;
    int64_t zs = ep.residual.cs;
    for (int64_t j = 0; j < cols; ++j) c[j] += z[j * zs];
  }
  ep.act.apply_row(c, cols);
}

// Stores one accumulated tile into C (unit column stride).
void store_tile(const float* acc, int64_t i0, int64_t j0, int64_t rows, int64_t cols, float* C, int64_t ldc, const Epilogue& ep,
                bool first, bool last) {
  for (int64_t r = 0; r < rows; ++r) finish_row(C + (i0 + r) * ldc + j0, acc + r * NR, i0 + r, j0, cols, ep, first, last);
}

// Stores a whole-depth tile into a C with column stride ccs (a transposed output): each row is
// finished in a contiguous buffer, then scattered.
void store_tile_strided(const float* acc, int64_t i0, int64_t j0, int64_t rows, int64_t cols, float* C, int64_t ldc,
                        int64_t ccs, const Epilogue& ep) {
  float row[NR];
  for (int64_t r = 0; r < rows; ++r) {
    finish_row(row, acc + r * NR, i0 + r, j0, cols, ep, true, true);
    float* c = C + (i0 + r) * ldc + j0 * ccs;
    for (int64_t j = 0; j < cols; ++j) c[j * ccs] = row[j];
  }
}

}  // namespace

bool has_avx2() {
  static const bool yes = detect_avx2();
  return yes;
}

size_t workspace_floats(int64_t M, int64_t N, int64_t K) {
  int64_t kc = std::min(K, KC);
  return static_cast<size_t>((round_up(M, MR) + round_up(N, NR)) * kc + 16);
}

void gemm(int64_t M, int64_t N, int64_t K, Matrix A, Matrix B, float* C, int64_t ldc, const Epilogue& ep, ThreadPool* pool,
          float* ws) {
  if (M <= 0 || N <= 0) return;
  auto par = [&](int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    if (pool) pool->parallel_for(n, grain, fn);
    else fn(0, n);
  };
  if (K <= 0) {
    float zero[MR * NR] = {};
    for (int64_t i = 0; i < M; i += MR)
      for (int64_t j = 0; j < N; j += NR) store_tile(zero, i, j, std::min(MR, M - i), std::min(NR, N - j), C, ldc, ep, true, true);
    return;
  }
  Kernel kern = pick_kernel();
  int64_t mpanels = (M + MR - 1) / MR, npanels = (N + NR - 1) / NR;
  float* Ap = ws;
  float* Bp = ws + round_up(M, MR) * std::min(K, KC);
  int64_t mblocks = (M + MC - 1) / MC, nblocks = (N + NC - 1) / NC;
  for (int64_t p0 = 0; p0 < K; p0 += KC) {
    int64_t kc = std::min(KC, K - p0);
    bool first = p0 == 0, last = p0 + kc >= K;
    par(mpanels, std::max<int64_t>(1, 4096 / (kc * MR)), [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) pack_a(A, M, p * MR, p0, kc, Ap + p * MR * kc);
    });
    par(npanels, std::max<int64_t>(1, 4096 / (kc * NR)), [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) pack_b(B, N, p * NR, p0, kc, Bp + p * NR * kc);
    });
    par(mblocks * nblocks, 1, [&](int64_t b, int64_t e) {
      alignas(64) float acc[MR * NR];
      for (int64_t t = b; t < e; ++t) {
        int64_t mb = t / nblocks, nb = t % nblocks;
        int64_t i_end = std::min(M, (mb + 1) * MC), j_end = std::min(N, (nb + 1) * NC);
        for (int64_t j = nb * NC; j < j_end; j += NR) {
          const float* bp = Bp + (j / NR) * NR * kc;
          for (int64_t i = mb * MC; i < i_end; i += MR) {
            kern(kc, Ap + (i / MR) * MR * kc, bp, acc);
            store_tile(acc, i, j, std::min(MR, M - i), std::min(NR, N - j), C, ldc, ep, first, last);
          }
        }
      }
    });
  }
}

size_t packed_a_floats(int64_t M, int64_t K) { return static_cast<size_t>(round_up(M, MR) * K); }

void pack_a_all(int64_t M, int64_t K, Matrix A, float* dst) {
  int64_t Mp = round_up(M, MR);
  for (int64_t p0 = 0; p0 < K; p0 += KC) {
    int64_t kc = std::min(KC, K - p0);
    for (int64_t i = 0; i < M; i += MR) pack_a(A, M, i, p0, kc, dst + p0 * Mp + i * kc);
  }
}

PackB matrix_packer(Matrix B, int64_t N) {
  return [B, N](int64_t j0, int64_t p0, int64_t kc, float* dst) { pack_b(B, N, j0, p0, kc, dst); };
}

namespace {
// Columns of C per task of gemm_packed: a quarter of the panels, 1 to 4 of them, so there are at
// least 4 tasks when N allows. With fewer column blocks than that the rows are split too (up to 4
// row blocks, each packing its own copy of B), so a layer with a tiny spatial output (Conv at 4x4)
// still uses both cores. Measured on resnet-tiny's 64x576x64 conv: 4-panel blocks split 4 ways over
// rows took 0.20 ms, 1-panel blocks 0.09 ms.
int64_t col_block(int64_t N) { return std::clamp<int64_t>((N + NR - 1) / NR / 4, 1, 4) * NR; }
int64_t row_blocks(int64_t M, int64_t N) {
  int64_t nblocks = (N + col_block(N) - 1) / col_block(N), mpanels = (M + MR - 1) / MR;
  return nblocks >= 4 ? 1 : std::min(mpanels, (4 + nblocks - 1) / nblocks);
}
}  // namespace

size_t packed_workspace_floats(int64_t M, int64_t N, int64_t K) {
  return static_cast<size_t>(row_blocks(M, N) * round_up(N, NR) * std::min(K, KC) + 16);
}

void gemm_packed(int64_t M, int64_t N, int64_t K, const float* Ap, const PackB& pack_b, float* C, int64_t ldc,
                 const Epilogue& ep, ThreadPool* pool, float* ws) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) fail("INTERNAL", "sgemm::gemm_prepacked: empty depth");
  Kernel kern = pick_kernel();
  int64_t Mp = round_up(M, MR), Np = round_up(N, NR), kcmax = std::min(K, KC);
  int64_t NB = col_block(N), nblocks = (N + NB - 1) / NB, mblocks = row_blocks(M, N), mpanels = Mp / MR;
  auto task = [&](int64_t b, int64_t e) {
    alignas(64) float acc[MR * NR];
    for (int64_t t = b; t < e; ++t) {
      int64_t mb = t / nblocks, nb = t % nblocks;
      int64_t j0 = nb * NB, j1 = std::min(N, j0 + NB);
      int64_t ip0 = mb * mpanels / mblocks, ip1 = (mb + 1) * mpanels / mblocks;
      float* bws = ws + mb * Np * kcmax;  // this row block's B panels: tasks never share one
      for (int64_t p0 = 0; p0 < K; p0 += KC) {
        int64_t kc = std::min(KC, K - p0);
        for (int64_t j = j0; j < j1; j += NR) pack_b(j, p0, kc, bws + j * kcmax);
        for (int64_t ip = ip0; ip < ip1; ++ip) {
          const float* ap = Ap + p0 * Mp + ip * MR * kc;
          for (int64_t j = j0; j < j1; j += NR) {
            kern(kc, ap, bws + j * kcmax, acc);
            store_tile(acc, ip * MR, j, std::min(MR, M - ip * MR), std::min(NR, N - j), C, ldc, ep, p0 == 0, p0 + kc >= K);
          }
        }
      }
    }
  };
  // Below ~32K multiply-adds (about 2 us) the pool's hand-off costs more than the second core gives.
  if (!pool || M * N * K < 32768) task(0, mblocks * nblocks);
  else pool->parallel_for(mblocks * nblocks, 1, task);
}

size_t packed_b_floats(int64_t K, int64_t N) { return static_cast<size_t>(round_up(N, NR) * K); }

void pack_b_all(int64_t K, int64_t N, Matrix B, float* dst) {
  int64_t Np = round_up(N, NR);
  for (int64_t p0 = 0; p0 < K; p0 += KC) {
    int64_t kc = std::min(KC, K - p0);
    for (int64_t j = 0; j < N; j += NR) pack_b(B, N, j, p0, kc, dst + p0 * Np + j * kc);
  }
}

size_t prepacked_workspace_floats(int64_t M, int64_t K) { return packed_a_floats(M, K) + 16; }

void gemm_prepacked(int64_t M, int64_t N, int64_t K, Matrix A, const float* Bp, float* C, int64_t ldc, int64_t ccs,
                    const Epilogue& ep, ThreadPool* pool, float* ws) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) fail("INTERNAL", "sgemm::gemm_prepacked: empty depth");
  Kernel kern = pick_kernel();
  int64_t Mp = round_up(M, MR), Np = round_up(N, NR), mpanels = Mp / MR, npanels = Np / NR;
  pack_a_all(M, K, A, ws);
  // one task per column panel group: a quarter of the panels, 1 to 4 of them
  int64_t per = std::clamp<int64_t>(npanels / 4, 1, 4), tasks = (npanels + per - 1) / per;
  auto task = [&](int64_t b, int64_t e) {
    alignas(64) float acc[MR * NR], sum[MR * NR];
    for (int64_t jp = b * per; jp < std::min(npanels, e * per); ++jp) {
      int64_t j = jp * NR;
      for (int64_t ip = 0; ip < mpanels; ++ip) {
        for (int64_t p0 = 0; p0 < K; p0 += KC) {
          int64_t kc = std::min(KC, K - p0);
          kern(kc, ws + p0 * Mp + ip * MR * kc, Bp + p0 * Np + j * kc, p0 == 0 ? sum : acc);
          if (p0 > 0)
            for (int64_t q = 0; q < MR * NR; ++q) sum[q] += acc[q];
        }
        int64_t rows = std::min(MR, M - ip * MR), cols = std::min(NR, N - j);
        if (ccs == 1) store_tile(sum, ip * MR, j, rows, cols, C, ldc, ep, true, true);
        else store_tile_strided(sum, ip * MR, j, rows, cols, C, ldc, ccs, ep);
      }
    }
  };
  if (!pool || M * N * K < 32768) task(0, tasks);
  else pool->parallel_for(tasks, 1, task);
}

}  // namespace sgemm
}  // namespace kiln

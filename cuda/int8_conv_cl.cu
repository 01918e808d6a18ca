// The channels-last int8 implicit GEMM (launch interface in native/cuda/int8_kernels.h, tactic
// cuda.int8_conv.mma_cl.bmN in native/cuda/int8_tactics.cc): the fast path of int8 engines, whose
// convolutions run NHWC (src/passes/layout-assignment.ts).
//
// What it needs (checked by the tactic): X stored [N, spatial, C] with int8 values (not uint8) and zero
// point 0, Cg a multiple of 16 and X 16-byte aligned, W constant. Then a 16-byte run of the window
// (K in W's channels-last order: tap-major, channel-minor) is 16 consecutive channels of one input
// pixel, so the gather is one 16-byte asynchronous copy (cp.async) per run, zero-filled where the
// window leaves the image (zero is the zero point, so padding adds nothing: no corrections).
//
// A block computes BM output positions x BN output channels of one group (the shapes below: warps of
// 32 x 32 or larger, each (WM / 16) x (WN / 8) mma.sync.m16n8k32 s8·s8→s32 per 32-deep step, fragments
// loaded by ldmatrix.x4), over K in 64-deep tiles through a 3-4 stage shared-memory pipeline: the
// copies of the next tiles are in flight while tile t is multiplied. Shared rows are 80 bytes apart,
// so the 8 rows of each ldmatrix phase hit 32 distinct banks. The epilogue stages the accumulators in
// shared memory and writes 4 channels per thread step (store_tile in int8_epilogue.cuh, the CPU's
// rounding); with split K (below) from the summed partial products.
#include <type_traits>
#include <vector>

#include "int8_epilogue.cuh"
#include "int8_mma.cuh"

namespace kiln {
namespace i8cu {
namespace {

constexpr int kRow = kMmaBK + 16;  // shared row stride in bytes

// A block shape: BM output positions x BN output channels, warps of WM x WN (each WM / 16 x WN / 8
// mma tiles per 32-deep step), STAGES tiles of K in flight. The thread of index tid copies the 16-byte
// run tid % 4 of rows tid / 4 + j * (threads / 4) of each A and B tile.
template <int BM_, int BN_, int WM, int WN, int STAGES, int MIN_BLOCKS = 1>
struct Shape {
  static constexpr int BM = BM_, BN = BN_, kStages = STAGES, kWarpsN = BN / WN, kThreads = (BM / WM) * kWarpsN * 32, kMinBlocks = MIN_BLOCKS;
  static constexpr int kMT = WM / 16, kNT = WN / 8, kWM = WM, kWN = WN;
  static constexpr int kARows = BM * 4 / kThreads, kBRows = BN * 4 / kThreads;
  static constexpr int kStageBytes = (BM + BN) * kRow, kSmem = STAGES * kStageBytes;
  static_assert(kARows >= 1 && kBRows >= 1 && kNT % 2 == 0, "shape");
};
// The shapes by ClTile (int8_kernels.h): 64 x 64 and 128 x 64 with 32 x 32 warps (4 and 3 stages:
// 40 and 45 KB of shared memory), 128 x 128 and 256 x 128 with 64 x 64 warps (twice the multiplies
// per byte of shared memory read; 80 and 90 KB).
using Shape64 = Shape<64, 64, 32, 32, 4>;
using Shape128 = Shape<128, 64, 32, 32, 3>;
using Shape128x128 = Shape<128, 128, 64, 64, 4>;
using Shape256x128 = Shape<256, 128, 64, 64, 3>;
// 128 x 128 with 8 warps of 32 x 64 (more warps to hide latency than the 4 of 64 x 64; 60 KB; two
// blocks per SM: at most 128 registers)
using Shape128x128w8 = Shape<128, 128, 32, 64, 3, 2>;
// 64 x 64 in 3 stages, six blocks per SM (at most 80 registers; 30 KB): for layers with few K tiles,
// whose blocks spend most of their time waiting on the first tile and in the epilogue
using Shape64x6 = Shape<64, 64, 32, 32, 3, 6>;
// 128 x 64 in 4 warps of 64 x 32 (twice the outputs per thread of Shape128: its fixed costs spread
// over more of them; 46 KB)
using Shape128w4 = Shape<128, 64, 64, 32, 3, 2>;

// Split K (`split` > 1, for grids too small to fill the GPU): blockIdx.z = group * split + part; each
// part sums its share of the K tiles into `sums` (int32 atomics: exact, in any order), and the last part
// to finish a tile (an arrival counter per tile) reads the sums back and runs the epilogue. `sums` and
// `arrivals` are zeroed before the launch.
struct SplitK {
  int split = 1;
  int32_t* sums = nullptr;      // [positions, M]
  unsigned* arrivals = nullptr;  // one per output tile
};

template <class S>
__global__ void __launch_bounds__(S::kThreads, S::kMinBlocks) mma_cl_kernel(Geom g, const int8_t* __restrict__ x, const int8_t* __restrict__ wp, Epilogue ep, int K, int Kp,
                                                              int Mgp, int positions, SplitK sk, bool quads, int fast, bool res_pf) {
  constexpr int BM = S::BM, BN = S::BN, kStages = S::kStages, kMT = S::kMT, kNT = S::kNT, kRowStep = S::kThreads / 4;
  extern __shared__ __align__(16) int8_t smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wm = warp / S::kWarpsN, wn = warp % S::kWarpsN;
  const int gq = lane >> 2, tq = lane & 3;
  const int grp = sk.split == 1 ? blockIdx.z : blockIdx.z / sk.split, part = sk.split == 1 ? 0 : blockIdx.z % sk.split, m0 = blockIdx.y * BN, p0 = blockIdx.x * BM;
  const int osz = g.out[0] * g.out[1] * g.out[2];
  const int64_t isz = static_cast<int64_t>(g.in[0]) * g.in[1] * g.in[2];
  const bool pointwise = is_pointwise(g);

  // This thread's A rows: the window origin (bz, by, bx) of the row's output position, and the offset
  // of that origin's pixel in X (channel 0 of the group), which may lie outside X (never read there).
  const int run = tid & 3, r0 = tid >> 2;
  int bz[S::kARows], by[S::kARows], bx[S::kARows];
  int64_t xoff[S::kARows];
#pragma unroll
  for (int j = 0; j < S::kARows; ++j) {
    const int p = p0 + r0 + j * kRowStep;
    if (pointwise) {  // 1x1, stride 1, no padding: output position p reads input pixel p
      bz[j] = p < positions ? 0 : -(1 << 29), by[j] = bx[j] = 0;
      xoff[j] = static_cast<int64_t>(p) * g.C + static_cast<int64_t>(grp) * g.Cg;
      continue;
    }
    const int pp = p < positions ? p : 0;
    const int n = pp / osz, o = pp % osz;
    int z;
    window_origin(g, o, z, by[j], bx[j]);
    bz[j] = p < positions ? z : -(1 << 29);  // a row past the end: always out of range
    xoff[j] = (static_cast<int64_t>(n) * isz + (static_cast<int64_t>(bz[j]) * g.in[1] + by[j]) * g.in[2] + bx[j]) * g.C + static_cast<int64_t>(grp) * g.Cg;
  }

  // this part's K tiles [first, first + tiles)
  const int all = Kp / kMmaBK, share = sk.split == 1 ? all : (all + sk.split - 1) / sk.split, first = part * share;
  const int tiles = min(share, all - first);

  // The window position of this thread's run in the next tile to load: k = kc + tap * Cg, the tap
  // (kz, ky, kx) of the window; advanced by one tile per load without divisions.
  int kn = first * kMmaBK + run * 16, kc = 0, kx = 0, ky = 0, kz = 0;
  if (kn < K && g.k[0] * g.k[1] * g.k[2] == 1) {
    kc = kn;  // a 1x1 window: one tap
  } else if (kn < K) {
    const int tap = kn / g.Cg;
    kc = kn - tap * g.Cg;
    kx = tap % g.k[2];
    ky = (tap / g.k[2]) % g.k[1];
    kz = tap / (g.k[2] * g.k[1]);
  }
  const int8_t* wrow[S::kBRows];
#pragma unroll
  for (int j = 0; j < S::kBRows; ++j) {
    const int mrow = m0 + r0 + j * kRowStep;  // rows past Mgp (blocks of 128 over 64-padded W) read zeros
    wrow[j] = mrow < Mgp ? wp + (static_cast<int64_t>(grp) * Mgp + mrow) * Kp + run * 16 : nullptr;
  }

  auto load_tile = [&](int stage, int k0) {
    int8_t* as = smem + stage * S::kStageBytes;
    int8_t* bs = as + BM * kRow;
    const bool kin = kn < K;
    const int dz = kz * g.d[0], dy = ky * g.d[1], dx = kx * g.d[2];
    const int64_t tap = ((static_cast<int64_t>(dz) * g.in[1] + dy) * g.in[2] + dx) * g.C + kc;
#pragma unroll
    for (int j = 0; j < S::kARows; ++j) {
      const bool ok = kin && static_cast<unsigned>(bz[j] + dz) < static_cast<unsigned>(g.in[0]) && static_cast<unsigned>(by[j] + dy) < static_cast<unsigned>(g.in[1]) &&
                      static_cast<unsigned>(bx[j] + dx) < static_cast<unsigned>(g.in[2]);
      copy16(as + (r0 + j * kRowStep) * kRow + run * 16, ok ? x + xoff[j] + tap : x, ok ? 16 : 0);
    }
#pragma unroll
    for (int j = 0; j < S::kBRows; ++j) copy16(bs + (r0 + j * kRowStep) * kRow + run * 16, wrow[j] ? wrow[j] + k0 : wp, wrow[j] ? 16 : 0);
    // the next tile's window position
    kn += kMmaBK;
    advance_window(g, kMmaBK, kc, kx, ky, kz);
  };

  int32_t acc[kMT][kNT][4] = {};

  // The residual tile (int8/uint8, rows p0.., channels m0.. of the group) into shared memory past the
  // pipeline's stages, with the first tile's copies: its reads overlap the main loop instead of
  // stalling the epilogue (res_pf: the host checked the alignment; M and Mg multiples of 16).
  uint8_t* res_tile = res_pf ? reinterpret_cast<uint8_t*>(smem + S::kSmem) : nullptr;
  if (res_pf) {
    const uint8_t* res = static_cast<const uint8_t*>(ep.residual) + static_cast<int64_t>(grp) * g.Mg + m0;
#pragma unroll 1
    for (int q = tid; q < BM * (BN / 16); q += S::kThreads) {
      const int r = q / (BN / 16), c = (q % (BN / 16)) * 16;
      const bool ok = p0 + r < positions && m0 + c < g.Mg;
      copy16(res_tile + r * BN + c, ok ? res + static_cast<int64_t>(p0 + r) * g.M + c : ep.residual, ok ? 16 : 0);
    }
  }
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < tiles) load_tile(s, (first + s) * kMmaBK);
    copy_commit();
  }
  for (int t = 0; t < tiles; ++t) {
    copy_wait<kStages - 2>();
    __syncthreads();  // tile t is in shared memory, and every warp is done with tile t - 1's stage
    const int next = t + kStages - 1;
    if (next < tiles) load_tile(next % kStages, (first + next) * kMmaBK);
    copy_commit();
    // this lane's ldmatrix rows: A matrices (rows 0-7 | 8-15) x (bytes 0-15 | 16-31) of a 16-row
    // tile; B matrices (bytes 0-15 | 16-31) x (channels 0-7 | 8-15) of a 16-channel pair of n-tiles
    const int8_t* stage = smem + (t % kStages) * S::kStageBytes;
    const int8_t* as = stage + (wm * S::kWM + (lane & 15)) * kRow + (lane >> 4) * 16;
    const int8_t* bs = stage + BM * kRow + (wn * S::kWN + (lane >> 4) * 8 + (lane & 7)) * kRow + ((lane >> 3) & 1) * 16;
#pragma unroll
    for (int kk = 0; kk < kMmaBK; kk += 32) {
      uint32_t af[kMT][4], bf[kNT][2];
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) ldmatrix4(af[mt], as + mt * 16 * kRow + kk);
#pragma unroll
      for (int np = 0; np < kNT / 2; ++np) {
        uint32_t b4[4];
        ldmatrix4(b4, bs + np * 16 * kRow + kk);
        bf[2 * np][0] = b4[0], bf[2 * np][1] = b4[1], bf[2 * np + 1][0] = b4[2], bf[2 * np + 1][1] = b4[3];
      }
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) mma_s8(acc[mt][nt], af[mt], bf[nt]);
    }
  }
  copy_wait<0>();

  // The epilogue: the accumulators go through shared memory (rows of BN + 8 int32: the fragments'
  // 8-byte stores hit distinct banks), kRows output positions at a time, and every thread then takes
  // runs of 4 channels in a rolled loop: 16-byte shared loads, 4-byte (float32: 16-byte) residual loads
  // and stores along the channels, coalesced, and one copy of the epilogue's code (unrolled per
  // element, the kernel outgrew the instruction cache).
  constexpr int kLd = BN + 8, kPasses = (BM * kLd * 4 + S::kSmem - 1) / S::kSmem, kRows = BM / kPasses;
  static_assert(kRows % S::kWM == 0, "epilogue passes");
  int32_t* tile = reinterpret_cast<int32_t*>(smem);
#pragma unroll 1
  for (int pass = 0; pass < kPasses; ++pass) {
    __syncthreads();  // the pipeline's (or the last pass's) reads of shared memory are done
    if (wm * S::kWM / kRows == pass) {
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
        for (int hr = 0; hr < 2; ++hr)
#pragma unroll
          for (int nt = 0; nt < kNT; ++nt)
            *reinterpret_cast<int2*>(tile + (wm * S::kWM - pass * kRows + mt * 16 + gq + hr * 8) * kLd + wn * S::kWN + nt * 8 + tq * 2) =
                make_int2(acc[mt][nt][hr * 2], acc[mt][nt][hr * 2 + 1]);
    }
    __syncthreads();
    const int pbase = p0 + pass * kRows;
    if (sk.split > 1) {
      // add this part's sums, then the last part of the tile takes them all (kPasses is 1)
#pragma unroll 1
      for (int q = tid; q < kRows * BN; q += S::kThreads) {
        const int r = q / BN, c = q % BN;
        if (pbase + r < positions && m0 + c < g.Mg) atomicAdd(&sk.sums[static_cast<int64_t>(pbase + r) * g.M + grp * g.Mg + m0 + c], tile[r * kLd + c]);
      }
      __threadfence();
      __syncthreads();
      __shared__ unsigned last;
      if (tid == 0) last = atomicAdd(&sk.arrivals[(static_cast<int64_t>(grp) * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x], 1u) == static_cast<unsigned>(sk.split - 1);
      __syncthreads();
      if (!last) return;
      __threadfence();
#pragma unroll 1
      for (int q = tid; q < kRows * BN; q += S::kThreads) {
        const int r = q / BN, c = q % BN;
        if (pbase + r < positions && m0 + c < g.Mg) tile[r * kLd + c] = __ldcg(&sk.sums[static_cast<int64_t>(pbase + r) * g.M + grp * g.Mg + m0 + c]);
      }
      __syncthreads();
    }
    store_tile<BN, S::kThreads>(ep, tile, kLd, kRows, pbase, positions, g, grp, m0, quads, fast, res_pf ? res_tile + pass * kRows * BN : nullptr);
  }
}

template <class S>
cudaError_t launch(const Geom& g, int positions, int K, int split, const int8_t* x, const int8_t* wpacked, const Epilogue& ep, const SplitK& sk, cudaStream_t s) {
  // the pipeline's stages, and room for a prefetched residual tile (BM x BN bytes)
  constexpr int kMaxSmem = S::kSmem + S::BM * S::BN;
  if (kMaxSmem > 48 * 1024) {
    // once per process (the attribute holds for every later launch on the device)
    static const cudaError_t set = cudaFuncSetAttribute(mma_cl_kernel<S>, cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxSmem);
    if (set != cudaSuccess) return set;
  }
  const int Mgp = mma_mgp(g);
  dim3 grid((positions + S::BM - 1) / S::BM, (Mgp + S::BN - 1) / S::BN, g.G * split);
  const bool quads = g.Mg % 4 == 0 && quad_ok(ep);
  const int fast = quads ? fast_quad_kind(ep) : -1;
  // the residual is prefetched for the fast epilogue: int8/uint8, 16-byte runs of whole groups' channels
  const bool res_pf = fast >= 0 && ep.residual && split == 1 && g.M % 16 == 0 && g.Mg % 16 == 0 && reinterpret_cast<uintptr_t>(ep.residual) % 16 == 0;
  mma_cl_kernel<S><<<grid, S::kThreads, res_pf ? kMaxSmem : S::kSmem, s>>>(g, x, wpacked, ep, K, mma_kp(g), Mgp, positions, sk, quads, fast, res_pf);
  return cudaGetLastError();
}

// A block gathers kIm2colRows rows of A (output positions) in shared memory, one thread per position
// and window row (kz, ky) at a time (the row's k[2] * Cg values, kx then c, are consecutive both in A
// and, inside the image, in X; zeros outside it: zero point 0), zeros past K up to Kc, then stores
// them in 16-byte runs (Kc a multiple of 16).
constexpr int kIm2colRows = 32, kIm2colThreads = 256;
__global__ void __launch_bounds__(kIm2colThreads) im2col_cl_kernel(Geom g, const int8_t* __restrict__ x, int8_t* __restrict__ a, int positions, int K, int Kc) {
  extern __shared__ __align__(16) int8_t rows_smem[];
  const int rows = g.k[0] * g.k[1], run = g.k[2] * g.Cg, p0 = blockIdx.x * kIm2colRows;
  const int osz = g.out[0] * g.out[1] * g.out[2];
  for (int i = threadIdx.x; i < kIm2colRows * rows; i += kIm2colThreads) {
    const int r = i / rows, row = i - r * rows, p = p0 + r;
    int8_t* dst = rows_smem + r * Kc + row * run;
    if (p >= positions) continue;
    const int ky = row % g.k[1], kz = row / g.k[1];
    const int n = p / osz;
    int iz, iy, ix0;
    window_origin(g, p - n * osz, iz, iy, ix0);
    iz += kz * g.d[0], iy += ky * g.d[1];
    const bool zy = static_cast<unsigned>(iz) < static_cast<unsigned>(g.in[0]) && static_cast<unsigned>(iy) < static_cast<unsigned>(g.in[1]);
    const int8_t* xrow = x + ((static_cast<int64_t>(n) * g.in[0] + (zy ? iz : 0)) * g.in[1] + (zy ? iy : 0)) * static_cast<int64_t>(g.in[2]) * g.C;
    for (int kx = 0; kx < g.k[2]; ++kx) {
      const int ix = ix0 + kx * g.d[2];
      const bool ok = zy && static_cast<unsigned>(ix) < static_cast<unsigned>(g.in[2]);
      for (int c = 0; c < g.Cg; ++c) dst[kx * g.Cg + c] = ok ? __ldg(xrow + static_cast<int64_t>(ix) * g.C + c) : 0;
    }
  }
  for (int i = threadIdx.x; i < kIm2colRows * (Kc - K); i += kIm2colThreads) rows_smem[(i / (Kc - K)) * Kc + K + i % (Kc - K)] = 0;
  __syncthreads();
  const int n16 = min(kIm2colRows, positions - p0) * Kc / 16;
  int4* out = reinterpret_cast<int4*>(a + static_cast<int64_t>(p0) * Kc);
  for (int i = threadIdx.x; i < n16; i += kIm2colThreads) out[i] = reinterpret_cast<const int4*>(rows_smem)[i];
}

// Space-to-depth (conv_s2d_cl): U[n, uy, ux, (dy * sx + dx) * cpad + c] = X[n, sy * uy + dy, sx * ux + dx, c],
// zero past X's edges and for c >= C; one thread per 16-byte run of U's channels.
__global__ void __launch_bounds__(256) s2d_kernel(Geom g, int cpad, int Cs, int U1, int U2, const int8_t* __restrict__ x, int8_t* __restrict__ u, int64_t runs) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= runs) return;
  const int nq = Cs / 16, q = static_cast<int>(i % nq);
  const int64_t pix = i / nq;
  const int ux = static_cast<int>(pix % U2), uy = static_cast<int>(pix / U2 % U1), n = static_cast<int>(pix / (static_cast<int64_t>(U2) * U1));
  const int sy = g.s[1], sx = g.s[2];
  uint32_t w[4] = {0, 0, 0, 0};
#pragma unroll 4
  for (int b = 0; b < 16; ++b) {
    const int bb = q * 16 + b, d = bb / cpad, c = bb - d * cpad, dy = d / sx, iy = sy * uy + dy, ix = sx * ux + (d - dy * sx);
    if (c < g.C && iy < g.in[1] && ix < g.in[2])
      w[b >> 2] |= static_cast<uint32_t>(static_cast<uint8_t>(__ldg(x + ((static_cast<int64_t>(n) * g.in[1] + iy) * g.in[2] + ix) * g.C + c))) << (8 * (b & 3));
  }
  reinterpret_cast<int4*>(u)[i] = make_int4(static_cast<int>(w[0]), static_cast<int>(w[1]), static_cast<int>(w[2]), static_cast<int>(w[3]));
}

// floor(a / b) for b > 0
int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// the channels of a block of pixels: sy * sx * cpad with cpad >= C the least that makes it a multiple of 16
int s2d_cpad(const Geom& g) {
  int c = g.C;
  while (g.s[1] * g.s[2] * c % 16 != 0) ++c;
  return c;
}

}  // namespace

bool s2d_fits(const Geom& g) {
  if (!g.channels_last || g.G != 1 || g.Cg % 16 == 0 || g.k[0] != 1 || g.s[0] != 1 || g.p[0] != 0 || g.in[0] != 1 || g.out[0] != 1 || g.d[1] != 1 ||
      g.d[2] != 1 || (g.s[1] < 2 && g.s[2] < 2) || g.s[1] > 16 || g.s[2] > 16 || g.C > 64)
    return false;
  const Geom g2 = s2d_geom(g);
  return static_cast<int64_t>(g2.N) * g2.in[1] * g2.in[2] * g2.C < (int64_t{1} << 31) && g2.C * g2.k[1] * g2.k[2] <= (1 << 20);
}

Geom s2d_geom(const Geom& g) {
  Geom g2 = g;
  g2.C = g2.Cg = g.s[1] * g.s[2] * s2d_cpad(g);
  for (int i = 1; i < 3; ++i) {
    // window tap k reads block offset floor((k - p) / s): offsets j0 .. j1
    const int j0 = floor_div(-g.p[i], g.s[i]), j1 = floor_div(g.k[i] - 1 - g.p[i], g.s[i]);
    g2.k[i] = j1 - j0 + 1, g2.p[i] = -j0, g2.s[i] = 1;
    g2.in[i] = (g.in[i] + g.s[i] - 1) / g.s[i];
  }
  return g2;
}

size_t s2d_bytes(const Geom& g) {
  const Geom g2 = s2d_geom(g);
  return (static_cast<size_t>(g2.N) * g2.in[1] * g2.in[2] * g2.C + 255) / 256 * 256;
}

void pack_s2d_weights(const Geom& g, const int8_t* w, int8_t* dst) {
  const Geom g2 = s2d_geom(g);
  const int cpad = s2d_cpad(g), sy = g.s[1], sx = g.s[2], j0y = -g2.p[1], j0x = -g2.p[2];
  std::vector<int8_t> w2(static_cast<size_t>(g.M) * g2.k[1] * g2.k[2] * g2.C, 0);
  for (int m = 0; m < g.M; ++m)
    for (int jy = 0; jy < g2.k[1]; ++jy)
      for (int jx = 0; jx < g2.k[2]; ++jx)
        for (int dy = 0; dy < sy; ++dy)
          for (int dx = 0; dx < sx; ++dx) {
            const int ky = sy * (jy + j0y) + dy + g.p[1], kx = sx * (jx + j0x) + dx + g.p[2];
            if (ky < 0 || ky >= g.k[1] || kx < 0 || kx >= g.k[2]) continue;
            for (int c = 0; c < g.C; ++c)
              w2[((static_cast<size_t>(m) * g2.k[1] + jy) * g2.k[2] + jx) * g2.C + (dy * sx + dx) * cpad + c] = w[((static_cast<size_t>(m) * g.k[1] + ky) * g.k[2] + kx) * g.C + c];
          }
  pack_mma_weights(g2, w2.data(), dst);
}

cudaError_t conv_s2d_cl(const Geom& g, ClTile t, const int8_t* x, const int8_t* wpacked, const Epilogue& ep, void* workspace, cudaStream_t s) {
  if (!s2d_fits(g)) return cudaErrorInvalidValue;
  const Geom g2 = s2d_geom(g);
  const int64_t runs = static_cast<int64_t>(g2.N) * g2.in[1] * g2.in[2] * (g2.C / 16);
  if (runs <= 0 || g.M <= 0) return cudaSuccess;
  s2d_kernel<<<static_cast<unsigned>((runs + 255) / 256), 256, 0, s>>>(g, s2d_cpad(g), g2.C, g2.in[1], g2.in[2], x, static_cast<int8_t*>(workspace), runs);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  return conv_mma_cl(g2, t, 1, static_cast<const int8_t*>(workspace), wpacked, ep, nullptr, s);
}

Geom im2col_geom(const Geom& g) {
  Geom g2;
  const int K = g.Cg * g.k[0] * g.k[1] * g.k[2];
  g2.N = 1, g2.C = g2.Cg = (K + 15) / 16 * 16, g2.M = g2.Mg = g.M, g2.channels_last = true;
  g2.in[2] = g2.out[2] = g.N * g.out[0] * g.out[1] * g.out[2];
  return g2;
}

size_t im2col_bytes(const Geom& g) {
  const Geom g2 = im2col_geom(g);
  return (static_cast<size_t>(g2.in[2]) * g2.C + 255) / 256 * 256;
}

cudaError_t im2col_cl(const Geom& g, const int8_t* x, void* workspace, cudaStream_t s) {
  const Geom g2 = im2col_geom(g);
  const int positions = g2.in[2], K = g.Cg * g.k[0] * g.k[1] * g.k[2];
  if (positions <= 0) return cudaSuccess;
  if (g.G != 1) return cudaErrorInvalidValue;
  const int smem = kIm2colRows * g2.C;
  if (smem > 48 * 1024) return cudaErrorInvalidValue;  // K <= 1536
  im2col_cl_kernel<<<(positions + kIm2colRows - 1) / kIm2colRows, kIm2colThreads, smem, s>>>(g, x, static_cast<int8_t*>(workspace), positions, K, g2.C);
  return cudaGetLastError();
}

cudaError_t conv_im2col_cl(const Geom& g, ClTile t, const int8_t* x, const int8_t* wpacked, const Epilogue& ep, void* workspace, cudaStream_t s) {
  const Geom g2 = im2col_geom(g);
  if (g2.in[2] <= 0 || g.M <= 0) return cudaSuccess;
  cudaError_t e = im2col_cl(g, x, workspace, s);
  if (e != cudaSuccess) return e;
  return conv_mma_cl(g2, t, 1, static_cast<const int8_t*>(workspace), wpacked, ep, nullptr, s);
}

int cl_bm(ClTile t) { return t == kCl64 || t == kCl64x6 ? 64 : t == kCl256x128 ? 256 : 128; }
int cl_bn(ClTile t) { return t == kCl64 || t == kCl64x6 || t == kCl128 || t == kCl128w4 ? 64 : 128; }

int mma_cl_tiles(const Geom& g, ClTile t) {
  const int positions = g.N * g.out[0] * g.out[1] * g.out[2];
  return (positions + cl_bm(t) - 1) / cl_bm(t) * ((mma_mgp(g) + cl_bn(t) - 1) / cl_bn(t)) * g.G;
}

bool mma_cl_fits(const Geom& g, bool u8, int pad8) {
  return g.channels_last && !u8 && pad8 == 0 && g.Cg % 16 == 0 && g.C % 16 == 0 && g.G <= 65535 && g.Cg * g.k[0] * g.k[1] * g.k[2] <= (1 << 30);
}

cudaError_t conv_mma_cl(const Geom& g, ClTile t, int split, const int8_t* x, const int8_t* wpacked, const Epilogue& ep, void* workspace, cudaStream_t s) {
  const int positions = g.N * g.out[0] * g.out[1] * g.out[2];
  if (positions <= 0 || g.M <= 0) return cudaSuccess;
  const int K = g.Cg * g.k[0] * g.k[1] * g.k[2];
  SplitK sk;
  if (split > 1) {
    size_t sums = mma_cl_sums_bytes(g);
    cudaError_t e = cudaMemsetAsync(workspace, 0, sums + static_cast<size_t>(mma_cl_tiles(g, t)) * sizeof(unsigned), s);
    if (e != cudaSuccess) return e;
    sk.split = split;
    sk.sums = static_cast<int32_t*>(workspace);
    sk.arrivals = reinterpret_cast<unsigned*>(static_cast<uint8_t*>(workspace) + sums);
  }
  switch (t) {
    case kCl64: return launch<Shape64>(g, positions, K, sk.split, x, wpacked, ep, sk, s);
    case kCl128: return launch<Shape128>(g, positions, K, sk.split, x, wpacked, ep, sk, s);
    case kCl128x128: return launch<Shape128x128>(g, positions, K, sk.split, x, wpacked, ep, sk, s);
    case kCl256x128: return launch<Shape256x128>(g, positions, K, sk.split, x, wpacked, ep, sk, s);
    case kCl128x128w8: return launch<Shape128x128w8>(g, positions, K, sk.split, x, wpacked, ep, sk, s);
    case kCl64x6: return launch<Shape64x6>(g, positions, K, sk.split, x, wpacked, ep, sk, s);
    case kCl128w4: return launch<Shape128w4>(g, positions, K, sk.split, x, wpacked, ep, sk, s);
  }
  return cudaErrorInvalidValue;
}

}  // namespace i8cu
}  // namespace kiln

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
// A block computes BM output positions x 64 output channels of one group (BM = 64: 4 warps, 128:
// 8 warps; warps of 32 x 32, each 2 x 4 mma.sync.m16n8k32 s8·s8→s32 per 32-deep step, fragments
// loaded by ldmatrix.x4: 4 per step instead of 16 32-bit loads), over K in 64-deep tiles through a
// 4-stage (BM 64) or 3-stage (BM 128) shared-memory pipeline: the copies of the next tiles are in
// flight while tile t is multiplied. Shared rows are 80 bytes apart, so the 8 rows of each ldmatrix
// phase hit 32 distinct banks. The epilogue is int8_epilogue.cuh's put(), element by element (the
// CPU's rounding), from the accumulators; with split K (below) from the summed partial products.
#include "int8_epilogue.cuh"
#include "int8_mma.cuh"

namespace kiln {
namespace i8cu {
namespace {

// Pipeline depth: 4 stages for 64-position blocks (40 KB of shared memory), 3 for 128 (45 KB).
template <int BM>
__host__ __device__ constexpr int stages() { return BM == 64 ? 4 : 3; }
constexpr int kRow = kMmaBK + 16;  // shared row stride in bytes

// 16 bytes global → shared, asynchronously; the bytes past `src_bytes` (0 or 16) are zero-filled.
__device__ __forceinline__ void copy16(void* smem, const void* gmem, int src_bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes));
#endif
}
__device__ __forceinline__ void copy_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}
template <int N>
__device__ __forceinline__ void copy_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

// Four 8x8 matrices of 16-bit elements (here: 8 rows x 16 bytes) from shared memory, one row address
// per lane (lanes 8i..8i+7 give matrix i's rows): the m16n8k32 int8 fragments are exactly those of
// m16n8k16 f16 with each 16-bit element a pair of bytes.
__device__ __forceinline__ void ldmatrix4(uint32_t (&r)[4], const void* smem) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
#endif
}

// Split K (`split` > 1, for grids too small to fill the GPU): blockIdx.z = group * split + part; each
// part sums its share of the K tiles into `sums` (int32 atomics: exact, in any order), and the last part
// to finish a tile (an arrival counter per tile) reads the sums back and runs the epilogue. `sums` and
// `arrivals` are zeroed before the launch.
struct SplitK {
  int split = 1;
  int32_t* sums = nullptr;      // [positions, M]
  unsigned* arrivals = nullptr;  // one per output tile
};

template <int BM>
__global__ void __launch_bounds__(BM * 2) mma_cl_kernel(Geom g, const int8_t* __restrict__ x, const int8_t* __restrict__ wp, Epilogue ep, int K, int Kp,
                                                         int Mgp, int positions, SplitK sk) {
  constexpr int kThreadsPerBlock = BM * 2;
  constexpr int kBRuns = 64 * 4 / kThreadsPerBlock;  // 16-byte runs of the W tile per thread
  constexpr int kStages = stages<BM>();
  __shared__ __align__(16) int8_t As[kStages][BM * kRow];
  __shared__ __align__(16) int8_t Bs[kStages][64 * kRow];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wm = warp >> 1, wn = warp & 1;
  const int gq = lane >> 2, tq = lane & 3;
  const int grp = blockIdx.z / sk.split, part = blockIdx.z % sk.split, m0 = blockIdx.y * 64, p0 = blockIdx.x * BM;
  const int osz = g.out[0] * g.out[1] * g.out[2];
  const int64_t isz = static_cast<int64_t>(g.in[0]) * g.in[1] * g.in[2];

  // This thread copies run `run` (bytes run * 16 ..) of rows r0 and r0 + BM / 2 of each A tile.
  const int run = tid & 3, r0 = tid >> 2;
  int bz[2], by[2], bx[2];
  bool pv[2];
  const int8_t* xrow[2];
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    const int p = p0 + r0 + j * (BM / 2);
    pv[j] = p < positions;
    const int pp = pv[j] ? p : 0;
    const int n = pp / osz, o = pp % osz;
    const int ox = o % g.out[2], oy = (o / g.out[2]) % g.out[1], oz = o / (g.out[2] * g.out[1]);
    bz[j] = oz * g.s[0] - g.p[0];
    by[j] = oy * g.s[1] - g.p[1];
    bx[j] = ox * g.s[2] - g.p[2];
    xrow[j] = x + static_cast<int64_t>(n) * isz * g.C + static_cast<int64_t>(grp) * g.Cg;
  }
  const int8_t* wbase = wp + (static_cast<int64_t>(grp) * Mgp + m0) * Kp;

  auto load_tile = [&](int stage, int k0) {
    const int k = k0 + run * 16;
    int c = 0, kx = 0, ky = 0, kz = 0;
    if (k < K) {
      const int tap = k / g.Cg;
      c = k - tap * g.Cg;
      kx = tap % g.k[2];
      ky = (tap / g.k[2]) % g.k[1];
      kz = tap / (g.k[2] * g.k[1]);
    }
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int iz = bz[j] + kz * g.d[0], iy = by[j] + ky * g.d[1], ix = bx[j] + kx * g.d[2];
      const bool ok = pv[j] && k < K && iz >= 0 && iz < g.in[0] && iy >= 0 && iy < g.in[1] && ix >= 0 && ix < g.in[2];
      const int8_t* src = ok ? xrow[j] + ((static_cast<int64_t>(iz) * g.in[1] + iy) * g.in[2] + ix) * g.C + c : x;
      copy16(&As[stage][(r0 + j * (BM / 2)) * kRow + run * 16], src, ok ? 16 : 0);
    }
#pragma unroll
    for (int j = 0; j < kBRuns; ++j) {
      const int q = tid + j * kThreadsPerBlock, row = q >> 2, brun = q & 3;
      copy16(&Bs[stage][row * kRow + brun * 16], wbase + static_cast<int64_t>(row) * Kp + k0 + brun * 16, 16);
    }
  };

  int32_t acc[2][4][4] = {};

  // this part's K tiles [first, first + tiles)
  const int all = Kp / kMmaBK, share = (all + sk.split - 1) / sk.split, first = part * share;
  const int tiles = min(share, all - first);
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
    const int8_t* as = As[t % kStages] + (wm * 32 + (lane & 15)) * kRow + (lane >> 4) * 16;
    const int8_t* bs = Bs[t % kStages] + (wn * 32 + (lane >> 4) * 8 + (lane & 7)) * kRow + ((lane >> 3) & 1) * 16;
#pragma unroll
    for (int kk = 0; kk < kMmaBK; kk += 32) {
      uint32_t af[2][4], bf[4][2];
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) ldmatrix4(af[mt], as + mt * 16 * kRow + kk);
#pragma unroll
      for (int np = 0; np < 2; ++np) {
        uint32_t b4[4];
        ldmatrix4(b4, bs + np * 16 * kRow + kk);
        bf[2 * np][0] = b4[0], bf[2 * np][1] = b4[1], bf[2 * np + 1][0] = b4[2], bf[2 * np + 1][1] = b4[3];
      }
#pragma unroll
      for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) mma_s8(acc[mt][nt], af[mt], bf[nt]);
    }
  }
  copy_wait<0>();

  // every output element this thread holds: f(acc, pp, mg) for position pp, channel mg of the group
  auto each_output = [&](auto f) {
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const int pp = p0 + wm * 32 + mt * 16 + gq + hr * 8;
        if (pp >= positions) continue;
#pragma unroll
        for (int nt = 0; nt < 4; ++nt)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int mg = m0 + wn * 32 + nt * 8 + tq * 2 + e;
            if (mg < g.Mg) f(acc[mt][nt][hr * 2 + e], pp, mg);
          }
      }
  };
  if (sk.split > 1) {
    // add this part's sums, then the last part of the tile takes them all
    each_output([&](int32_t& a, int pp, int mg) { atomicAdd(&sk.sums[static_cast<int64_t>(pp) * g.M + grp * g.Mg + mg], a); });
    __threadfence();
    __syncthreads();
    __shared__ unsigned last;
    if (tid == 0) last = atomicAdd(&sk.arrivals[(static_cast<int64_t>(grp) * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x], 1u) == static_cast<unsigned>(sk.split - 1);
    __syncthreads();
    if (!last) return;
    __threadfence();
    each_output([&](int32_t& a, int pp, int mg) { a = __ldcg(&sk.sums[static_cast<int64_t>(pp) * g.M + grp * g.Mg + mg]); });
  }
  each_output([&](int32_t& a, int pp, int mg) {
    const int m = grp * g.Mg + mg;
    put(ep, static_cast<int64_t>(pp) * g.M + m, m, a);
  });
}

}  // namespace

int mma_cl_tiles(const Geom& g, int bm) {
  const int positions = g.N * g.out[0] * g.out[1] * g.out[2];
  return (positions + bm - 1) / bm * (mma_mgp(g) / kMmaBN) * g.G;
}

bool mma_cl_fits(const Geom& g, bool u8, int pad8) {
  return g.channels_last && !u8 && pad8 == 0 && g.Cg % 16 == 0 && g.C % 16 == 0 && g.G <= 65535 && g.Cg * g.k[0] * g.k[1] * g.k[2] <= (1 << 30);
}

cudaError_t conv_mma_cl(const Geom& g, int bm, int split, const int8_t* x, const int8_t* wpacked, const Epilogue& ep, void* workspace, cudaStream_t s) {
  const int positions = g.N * g.out[0] * g.out[1] * g.out[2];
  if (positions <= 0 || g.M <= 0) return cudaSuccess;
  const int K = g.Cg * g.k[0] * g.k[1] * g.k[2];
  SplitK sk;
  if (split > 1) {
    size_t sums = mma_cl_sums_bytes(g);
    cudaError_t e = cudaMemsetAsync(workspace, 0, sums + static_cast<size_t>(mma_cl_tiles(g, bm)) * sizeof(unsigned), s);
    if (e != cudaSuccess) return e;
    sk.split = split;
    sk.sums = static_cast<int32_t*>(workspace);
    sk.arrivals = reinterpret_cast<unsigned*>(static_cast<uint8_t*>(workspace) + sums);
  }
  if (bm == 128) {
    dim3 grid((positions + 127) / 128, mma_mgp(g) / kMmaBN, g.G * sk.split);
    mma_cl_kernel<128><<<grid, 256, 0, s>>>(g, x, wpacked, ep, K, mma_kp(g), mma_mgp(g), positions, sk);
  } else {
    dim3 grid((positions + 63) / 64, mma_mgp(g) / kMmaBN, g.G * sk.split);
    mma_cl_kernel<64><<<grid, 128, 0, s>>>(g, x, wpacked, ep, K, mma_kp(g), mma_mgp(g), positions, sk);
  }
  return cudaGetLastError();
}

}  // namespace i8cu
}  // namespace kiln

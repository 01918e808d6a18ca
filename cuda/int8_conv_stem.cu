// The stem kernel (launch interface in native/cuda/int8_kernels.h, tactic cuda.int8_conv.stem in
// native/cuda/int8_tactics.cc): a CNN's first convolution, few input channels at stride 2 (ResNet's
// 7x7 stride 2 over 3), optionally with the max pool after it (kind Int8ConvPool, made by
// src/passes/conv-pool-fusion.ts), as one kernel.
//
// The convolution is the space-to-depth one of conv_s2d_cl (2x2 blocks of up to 4 channels are 16
// channels of a block pixel U; the 7x7 window becomes 4x4 blocks at stride 1), but a block computes a
// 2-D region of output positions (16 x 16, or with the pool the 15 x 17 conv outputs under 7 x 8 pool
// outputs) from one patch of U in shared memory: it gathers the patch from X itself (no U tensor), and
// its A fragments are ldmatrix loads at each tap's offset into the patch, so every input byte is read
// from global memory about once per block instead of once per tap. W (64 channels x 256) stays in
// shared memory for the block. 8 warps of 32 positions x 64 channels, mma.sync.m16n8k32 s8·s8→s32.
//
// The epilogue requantizes from the fragments (the folded form, as FastQuad in int8_epilogue.cuh with
// no residual: equal to the CPU's), stages the int8 outputs in shared memory, and either stores them
// in 16-byte runs or max-pools them there (taps outside the convolution's output are skipped, as
// ONNX's MaxPool skips its padding) and stores the pooled ones: the convolution's output never
// reaches global memory.
#include <algorithm>

#include "int8_epilogue.cuh"
#include "int8_mma.cuh"

namespace kiln {
namespace i8cu {
namespace {

constexpr int kStemM = 64;                  // output channels
constexpr int kStemTaps = 16;               // 4 x 4 block taps
constexpr int kStemK = kStemTaps * 16;      // 256
constexpr int kWRow = kStemK + 16;          // shared W row stride (bytes): ldmatrix phases hit distinct banks
constexpr int kCtRow = kStemM + 16;         // staged output row stride (bytes)
constexpr int kRegion = 256;                // positions per block (8 warps x 32)
constexpr int kStemThreads = 256;

struct StemArgs {
  int N, C, H, W;        // X [N, H, W, C], C <= 4
  int OH, OW;            // the convolution's output
  int py, px;            // s2d window padding (block pixels)
  int CH, CW;            // the block's region of conv outputs (CH * CW <= kRegion)
  int ty, tx;            // tiles per image (rows, columns)
  int sty, stx;          // a tile's step in output rows / columns (conv outputs, or pool outputs)
  int pool;              // max pool after the convolution
  int pk[2], ps[2], pp[2], POH, POW;
  int prw;               // patch row (block pixels): CW + 3
  int patch_px;          // patch pixels: (CH + 3) * (CW + 3)
};

template <bool SIGNED>
__global__ void __launch_bounds__(kStemThreads, 2) stem_kernel(StemArgs a, const int8_t* __restrict__ x, const int8_t* __restrict__ wp, Epilogue ep) {
  extern __shared__ __align__(16) int8_t smem[];
  int8_t* wsm = smem;                        // [64][kWRow]
  int8_t* patch = smem + kStemM * kWRow;     // [patch_px][16]
  int8_t* ctile = smem;                      // after the products: [kRegion][kCtRow] over W and the patch
  float* fm = reinterpret_cast<float*>(smem + max(kStemM * kWRow + a.patch_px * 16, kRegion * kCtRow));
  float* fb = fm + kStemM;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int n = blockIdx.y, tile_r = blockIdx.x / a.tx, tile_c = blockIdx.x % a.tx;
  // the region's first conv output (may lie before the image: the pool's padding)
  const int cy0 = a.pool ? tile_r * a.sty * a.ps[0] - a.pp[0] : tile_r * a.sty;
  const int cx0 = a.pool ? tile_c * a.stx * a.ps[1] - a.pp[1] : tile_c * a.stx;
  const int uy0 = cy0 - a.py, ux0 = cx0 - a.px;  // the patch's first block pixel

  // W: 64 rows of 256 bytes, asynchronously
  for (int q = tid; q < kStemM * (kStemK / 16); q += kStemThreads) copy16(wsm + (q >> 4) * kWRow + (q & 15) * 16, wp + q * 16, 16);
  copy_commit();
  if (tid < kStemM) fm[tid] = __ldg(ep.fmult + tid), fb[tid] = fold_bias_at(ep, tid);
  // the patch: block pixel (uy, ux) is X's 2x2 pixels from (2 uy, 2 ux), channel c of pixel (dy, dx)
  // at byte (dy * 2 + dx) * 4 + c (word dy * 2 + dx); zeros outside X and past C
  const int64_t img = static_cast<int64_t>(n) * a.H * a.W * a.C;
  for (int q = tid; q < a.patch_px; q += kStemThreads) {
    const int uy = uy0 + q / a.prw, ux = ux0 + q % a.prw;
    uint32_t w[4] = {0, 0, 0, 0};
    if (uy >= 0 && ux >= 0) {
#pragma unroll
      for (int d = 0; d < 4; ++d) {
        const int iy = 2 * uy + (d >> 1), ix = 2 * ux + (d & 1);
        if (iy >= a.H || ix >= a.W) continue;
        const int8_t* px = x + img + (static_cast<int64_t>(iy) * a.W + ix) * a.C;
        for (int c = 0; c < a.C; ++c) w[d] |= static_cast<uint32_t>(static_cast<uint8_t>(__ldg(px + c))) << (8 * c);
      }
    }
    reinterpret_cast<int4*>(patch)[q] = make_int4(static_cast<int>(w[0]), static_cast<int>(w[1]), static_cast<int>(w[2]), static_cast<int>(w[3]));
  }
  copy_wait<0>();
  __syncthreads();

  // The products: warp w takes region positions [32 w, 32 w + 32) (two 16-row m-tiles) x 64 channels.
  // K step s covers taps 2s (bytes 0-15 of the k32 fragment) and 2s + 1 (bytes 16-31): lanes 0-15
  // give rows 0-15 at tap 2s, lanes 16-31 the same rows at tap 2s + 1.
  const int npos = a.CH * a.CW, half = lane >> 4;
  int abase[2];
#pragma unroll
  for (int mt = 0; mt < 2; ++mt) {
    int i = warp * 32 + mt * 16 + (lane & 15);
    if (i >= npos) i = 0;  // rows past the region: computed, never stored
    abase[mt] = ((i / a.CW) * a.prw + i % a.CW) * 16;
  }
  const int8_t* bs = wsm + ((lane >> 4) * 8 + (lane & 7)) * kWRow + ((lane >> 3) & 1) * 16;
  int32_t acc[2][8][4] = {};
#pragma unroll
  for (int ks = 0; ks < kStemTaps / 2; ++ks) {
    const int tap = 2 * ks + half, toff = ((tap >> 2) * a.prw + (tap & 3)) * 16;
    uint32_t af[2][4], bf[8][2];
#pragma unroll
    for (int mt = 0; mt < 2; ++mt) ldmatrix4(af[mt], patch + abase[mt] + toff);
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      uint32_t b4[4];
      ldmatrix4(b4, bs + np * 16 * kWRow + ks * 32);
      bf[2 * np][0] = b4[0], bf[2 * np][1] = b4[1], bf[2 * np + 1][0] = b4[2], bf[2 * np + 1][1] = b4[3];
    }
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) mma_s8(acc[mt][nt], af[mt], bf[nt]);
  }

  // Requantized from the fragments (thread: rows gq, gq + 8 of each m-tile, channels nt * 8 + 2 tq,
  // + 1) into the staged tile, which overwrites W and the patch once every warp is done with them.
  const int gq = lane >> 2, tq = lane & 3;
  const float lo = ep.f_lo, hi = ep.f_hi;
  auto q8 = [&](int32_t v, int c) {
    const float f = __fmaf_rn(__int2float_rn(v), fm[c], fb[c]);
    return fold_bits(f, lo, hi) & 0xFFu;
  };
  __syncthreads();
#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      const int i = warp * 32 + mt * 16 + gq + hr * 8;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        const int c = nt * 8 + tq * 2;
        *reinterpret_cast<uint16_t*>(ctile + i * kCtRow + c) = static_cast<uint16_t>(q8(acc[mt][nt][hr * 2], c) | (q8(acc[mt][nt][hr * 2 + 1], c + 1) << 8));
      }
    }
  __syncthreads();

  uint8_t* y = static_cast<uint8_t*>(ep.out);
  if (!a.pool) {
    // 16-byte runs: 4 per position, consecutive threads along a row of the region (contiguous in Y)
    for (int q = tid; q < npos * 4; q += kStemThreads) {
      const int i = q >> 2, r = i / a.CW, cy = cy0 + r, cx = cx0 + i % a.CW;
      if (cy >= a.OH || cx >= a.OW) continue;
      *reinterpret_cast<int4*>(y + ((static_cast<int64_t>(n) * a.OH + cy) * a.OW + cx) * kStemM + (q & 3) * 16) = *reinterpret_cast<const int4*>(ctile + i * kCtRow + (q & 3) * 16);
    }
    return;
  }
  // the pool: a thread per 16 channels of a pool output, the max over its window's taps inside the
  // convolution's output
  const int prows = (a.CH - a.pk[0]) / a.ps[0] + 1, pcols = (a.CW - a.pk[1]) / a.ps[1] + 1;
  for (int q = tid; q < prows * pcols * 4; q += kStemThreads) {
    const int pi = q >> 2, pr = pi / pcols, pc = pi % pcols, oy = tile_r * a.sty + pr, ox = tile_c * a.stx + pc;
    if (oy >= a.POH || ox >= a.POW) continue;
    uint32_t best[4];
    bool any = false;
    for (int ky = 0; ky < a.pk[0]; ++ky) {
      const int rr = pr * a.ps[0] + ky, cy = cy0 + rr;
      if (cy < 0 || cy >= a.OH) continue;
      for (int kx = 0; kx < a.pk[1]; ++kx) {
        const int cc = pc * a.ps[1] + kx, cx = cx0 + cc;
        if (cx < 0 || cx >= a.OW) continue;
        const uint4 v = *reinterpret_cast<const uint4*>(ctile + (rr * a.CW + cc) * kCtRow + (q & 3) * 16);
        const uint32_t vw[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int j = 0; j < 4; ++j) best[j] = !any ? vw[j] : SIGNED ? __vmaxs4(best[j], vw[j]) : __vmaxu4(best[j], vw[j]);
        any = true;
      }
    }
    if (!any) best[0] = best[1] = best[2] = best[3] = 0;  // a window wholly in the padding (cuda.pool.2d's 0)
    *reinterpret_cast<uint4*>(y + ((static_cast<int64_t>(n) * a.POH + oy) * a.POW + ox) * kStemM + (q & 3) * 16) = make_uint4(best[0], best[1], best[2], best[3]);
  }
}

// Pool outputs per tile (rows r, columns c) whose conv region fits kRegion positions, the region
// CW at most 17 wide: (c - 1) * s + k <= 17
bool pool_tile(const int (&k)[2], const int (&s)[2], int& r, int& c) {
  c = (17 - k[1]) / s[1] + 1;
  const int CW = (c - 1) * s[1] + k[1];
  if (c < 1 || CW > 17) return false;
  r = ((kRegion / CW) - k[0]) / s[0] + 1;
  return r >= 1 && (r - 1) * s[0] + k[0] <= kRegion / CW;
}

}  // namespace

bool stem_fits(const Geom& g) {
  if (!s2d_fits(g) || g.M != kStemM || g.Mg != kStemM || g.C > 4 || g.s[1] != 2 || g.s[2] != 2) return false;
  const Geom g2 = s2d_geom(g);
  return g2.C == 16 && g2.k[1] == 4 && g2.k[2] == 4 && static_cast<int64_t>(g.N) * g.in[1] * g.in[2] * g.C < (int64_t{1} << 31);
}

bool stem_pool_fits(const StemPool& p) {
  int r = 0, c = 0;
  return p.k[0] >= 1 && p.k[1] >= 1 && p.s[0] >= 1 && p.s[1] >= 1 && p.p[0] >= 0 && p.p[1] >= 0 && p.p[0] < p.k[0] && p.p[1] < p.k[1] && pool_tile(p.k, p.s, r, c);
}

bool stem_epilogue_fits(const Epilogue& ep) {
  return ep.fold && !ep.residual && !ep.corr && (ep.out_type == kOutI8 || ep.out_type == kOutU8) && reinterpret_cast<uintptr_t>(ep.out) % 16 == 0;
}

cudaError_t conv_stem_cl(const Geom& g, const StemPool* pool, const int8_t* x, const int8_t* wpacked, const Epilogue& ep, cudaStream_t s) {
  if (!stem_fits(g) || !stem_epilogue_fits(ep) || (pool && !stem_pool_fits(*pool))) return cudaErrorInvalidValue;
  if (g.N <= 0 || g.out[1] <= 0 || g.out[2] <= 0) return cudaSuccess;
  const Geom g2 = s2d_geom(g);
  StemArgs a{};
  a.N = g.N, a.C = g.C, a.H = g.in[1], a.W = g.in[2], a.OH = g.out[1], a.OW = g.out[2], a.py = g2.p[1], a.px = g2.p[2];
  if (pool) {
    int r = 0, c = 0;
    pool_tile(pool->k, pool->s, r, c);
    a.pool = 1;
    for (int i = 0; i < 2; ++i) a.pk[i] = pool->k[i], a.ps[i] = pool->s[i], a.pp[i] = pool->p[i];
    a.POH = pool->out[0], a.POW = pool->out[1];
    if (a.POH <= 0 || a.POW <= 0) return cudaSuccess;
    a.sty = r, a.stx = c;
    a.CH = (r - 1) * a.ps[0] + a.pk[0], a.CW = (c - 1) * a.ps[1] + a.pk[1];
    a.ty = (a.POH + r - 1) / r, a.tx = (a.POW + c - 1) / c;
  } else {
    a.sty = a.stx = a.CH = a.CW = 16;
    a.ty = (a.OH + 15) / 16, a.tx = (a.OW + 15) / 16;
  }
  a.prw = a.CW + 3;
  a.patch_px = (a.CH + 3) * a.prw;
  const size_t smem = std::max<size_t>(kStemM * kWRow + a.patch_px * 16, kRegion * kCtRow) + 2 * kStemM * sizeof(float);
  if (smem > 48 * 1024) return cudaErrorInvalidValue;
  const dim3 grid(a.ty * a.tx, g.N);
  if (grid.x > 0x7FFFFFFF || g.N > 65535) return cudaErrorInvalidValue;
  if (ep.out_type == kOutI8) stem_kernel<true><<<grid, kStemThreads, smem, s>>>(a, x, wpacked, ep);
  else stem_kernel<false><<<grid, kStemThreads, smem, s>>>(a, x, wpacked, ep);
  return cudaGetLastError();
}

}  // namespace i8cu
}  // namespace kiln

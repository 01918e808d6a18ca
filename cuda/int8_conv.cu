// Int8 convolution kernels (launch interface and epilogue in native/cuda/int8_kernels.h; tactics in
// native/cuda/int8_tactics.cc, which also run Int8Gemm through them as a channels-last 1x1 conv).
// Variants:
// - conv_direct: one thread per output element, the reference's loops (any group, stride, pad,
//   dilation, layout); int32 sums of (x - zp) * w. Always applicable: the one that always runs.
// - conv_mma: implicit GEMM on tensor cores. A block computes 64 output positions x 64 output
//   channels of one group; 4 warps of 32x32, each 2x4 mma.sync.m16n8k32 (s8·s8→s32) per 32-deep
//   step. Per 64-deep K tile every thread gathers 32 window values of one position (odometer over
//   the window in W's storage order, padding = the zero point) and loads 32 bytes of packed W; the
//   next tile's loads are issued before the current tile's MMAs. Shared rows are 80 bytes apart, so
//   the fragment loads of a warp (8 rows x 4 words) hit 32 distinct banks.
//   Fragment layouts (PTX ISA, mma.m16n8k32 .s8): with g = lane / 4 and t = lane % 4, A registers
//   0..3 hold row g cols 4t..4t+3, row g+8 cols 4t.., row g cols 16+4t.., row g+8 cols 16+4t..;
//   B registers 0..1 hold column g rows 4t..4t+3 and 16+4t..; C registers 0..3 hold (g, 2t),
//   (g, 2t+1), (g+8, 2t), (g+8, 2t+1). Bytes are little-endian: element 0 is the low byte.
#include <cstring>

#include "int8_epilogue.cuh"
#include "int8_mma.cuh"
#include "kern.cuh"

namespace kiln {
namespace i8cu {
namespace {

using cuk::grid_for;  // blocks for a grid-stride loop (kern.cuh)
using cuk::kThreads;

__device__ __forceinline__ int load_x(const void* x, bool u8, int64_t i) {
  return u8 ? static_cast<int>(static_cast<const uint8_t*>(x)[i]) : static_cast<int>(static_cast<const int8_t*>(x)[i]);
}

template <bool CL>
__global__ void direct_kernel(Geom g, Input in, int zp, const int8_t* __restrict__ w, Epilogue ep, int64_t total) {
  const int isz = g.in[0] * g.in[1] * g.in[2], osz = g.out[0] * g.out[1] * g.out[2], ks = g.k[0] * g.k[1] * g.k[2];
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int m, o, n;
    if (CL) {
      m = static_cast<int>(i % g.M);
      o = static_cast<int>((i / g.M) % osz);
      n = static_cast<int>(i / (static_cast<int64_t>(g.M) * osz));
    } else {
      o = static_cast<int>(i % osz);
      m = static_cast<int>((i / osz) % g.M);
      n = static_cast<int>(i / (static_cast<int64_t>(osz) * g.M));
    }
    int ox = o % g.out[2], oy = (o / g.out[2]) % g.out[1], oz = o / (g.out[2] * g.out[1]);
    int grp = m / g.Mg;
    int32_t acc = 0;
    for (int c = 0; c < g.Cg; ++c) {
      int cc = grp * g.Cg + c;
      for (int kz = 0; kz < g.k[0]; ++kz) {
        int iz = oz * g.s[0] - g.p[0] + kz * g.d[0];
        if (iz < 0 || iz >= g.in[0]) continue;
        for (int ky = 0; ky < g.k[1]; ++ky) {
          int iy = oy * g.s[1] - g.p[1] + ky * g.d[1];
          if (iy < 0 || iy >= g.in[1]) continue;
          for (int kx = 0; kx < g.k[2]; ++kx) {
            int ix = ox * g.s[2] - g.p[2] + kx * g.d[2];
            if (ix < 0 || ix >= g.in[2]) continue;
            int sp = (iz * g.in[1] + iy) * g.in[2] + ix, kp = (kz * g.k[1] + ky) * g.k[2] + kx;
            int64_t xi = CL ? (static_cast<int64_t>(n) * isz + sp) * g.C + cc : (static_cast<int64_t>(n) * g.C + cc) * isz + sp;
            int wi = CL ? (m * ks + kp) * g.Cg + c : (m * g.Cg + c) * ks + kp;
            acc += (load_x(in.x, in.u8, xi) - zp) * static_cast<int>(w[wi]);
          }
        }
      }
    }
    put(ep, i, m, acc);
  }
}


// ---- tensor-core implicit GEMM ----------------------------------------------------------------
constexpr int kMmaThreads = 128;
constexpr int kLds = kMmaBK + 16;  // shared row stride in bytes (see the header comment)

// The window digits of one K index, in W's storage order: (c, kz, ky, kx) or, channels-last,
// (kz, ky, kx, c); step() advances to the next K index.
template <bool CL>
struct Window {
  int c, kz, ky, kx;
  __device__ __forceinline__ void start(const Geom& g, int k) {
    int ks = g.k[0] * g.k[1] * g.k[2], kp;
    if (CL) {
      c = k % g.Cg;
      kp = k / g.Cg;
    } else {
      c = k / ks;
      kp = k % ks;
    }
    kx = kp % g.k[2];
    ky = (kp / g.k[2]) % g.k[1];
    kz = kp / (g.k[2] * g.k[1]);
  }
  __device__ __forceinline__ void step(const Geom& g) {
    if (CL && ++c < g.Cg) return;
    if (CL) c = 0;
    if (++kx < g.k[2]) return;
    kx = 0;
    if (++ky < g.k[1]) return;
    ky = 0;
    if (++kz < g.k[0]) return;
    kz = 0;
    if (!CL) ++c;
  }
};

template <bool CL>
__global__ void __launch_bounds__(kMmaThreads) mma_kernel(Geom g, Input in, int pad8, const int8_t* __restrict__ wp, Epilogue ep, int K, int Kp,
                                                           int Mgp, int positions, bool quads, int fast) {
  __shared__ __align__(16) uint8_t As[kMmaBM * kLds];
  __shared__ __align__(16) uint8_t Bs[kMmaBN * kLds];
  constexpr int kLdt = kMmaBN + 8;  // the channels-last epilogue's int32 tile (int8_conv_cl.cu's layout)
  __shared__ __align__(16) int32_t Ts[CL ? kMmaBM * kLdt : 4];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wm = warp >> 1, wn = warp & 1;
  const int gq = lane >> 2, tq = lane & 3;
  const int grp = blockIdx.z, m0 = blockIdx.y * kMmaBN, p0 = blockIdx.x * kMmaBM;
  const int isz = g.in[0] * g.in[1] * g.in[2], osz = g.out[0] * g.out[1] * g.out[2];

  // This thread gathers row r (one output position), K bytes [half * 32, half * 32 + 32) of each tile.
  const int r = tid & (kMmaBM - 1), half = tid >> 6;
  const int p = p0 + r;
  const bool pv = p < positions;
  int bz = 0, by = 0, bx = 0;
  int64_t xbase = 0;
  if (pv) {
    int n = p / osz, o = p % osz;
    window_origin(g, o, bz, by, bx);
    xbase = CL ? static_cast<int64_t>(n) * isz * g.C + grp * g.Cg : (static_cast<int64_t>(n) * g.C + grp * g.Cg) * isz;
  }
  const uint8_t* xb = static_cast<const uint8_t*>(in.x) + xbase;
  const uint8_t flip = in.u8 ? 0x80 : 0;  // uint8 x as the int8 value x - 128
  // This thread loads row wr of the packed W tile, bytes [wh * 32, wh * 32 + 32).
  const int wr = tid >> 1, wh = tid & 1;
  const int8_t* wrow = wp + (static_cast<int64_t>(grp) * Mgp + m0 + wr) * Kp + wh * 32;

  uint32_t av[8];
  uint4 bv[2];
  auto load_tile = [&](int k0) {
    int k = k0 + half * 32;
    Window<CL> win;
    win.start(g, k < K ? k : 0);
#pragma unroll
    for (int q = 0; q < 8; ++q) {
      uint32_t word = 0;
#pragma unroll
      for (int b = 0; b < 4; ++b, ++k) {
        uint32_t v = 0;
        if (k < K) {
          int iz = bz + win.kz * g.d[0], iy = by + win.ky * g.d[1], ix = bx + win.kx * g.d[2];
          if (pv && iz >= 0 && iz < g.in[0] && iy >= 0 && iy < g.in[1] && ix >= 0 && ix < g.in[2]) {
            int sp = (iz * g.in[1] + iy) * g.in[2] + ix;
            v = static_cast<uint32_t>(xb[CL ? static_cast<int64_t>(sp) * g.C + win.c : static_cast<int64_t>(win.c) * isz + sp] ^ flip);
          } else {
            v = static_cast<uint32_t>(pad8) & 0xffu;
          }
          win.step(g);
        }
        word |= v << (8 * b);
      }
      av[q] = word;
    }
    const uint4* src = reinterpret_cast<const uint4*>(wrow + k0);
    bv[0] = src[0];
    bv[1] = src[1];
  };

  int32_t acc[2][4][4];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0;

  load_tile(0);
  for (int k0 = 0; k0 < Kp; k0 += kMmaBK) {
    uint4* as = reinterpret_cast<uint4*>(As + r * kLds + half * 32);
    as[0] = make_uint4(av[0], av[1], av[2], av[3]);
    as[1] = make_uint4(av[4], av[5], av[6], av[7]);
    uint4* bs = reinterpret_cast<uint4*>(Bs + wr * kLds + wh * 32);
    bs[0] = bv[0];
    bs[1] = bv[1];
    __syncthreads();
    if (k0 + kMmaBK < Kp) load_tile(k0 + kMmaBK);
#pragma unroll
    for (int kk = 0; kk < kMmaBK; kk += 32) {
      uint32_t af[2][4], bf[4][2];
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
        const uint8_t* a0 = As + (wm * 32 + mt * 16 + gq) * kLds + kk + tq * 4;
        af[mt][0] = *reinterpret_cast<const uint32_t*>(a0);
        af[mt][1] = *reinterpret_cast<const uint32_t*>(a0 + 8 * kLds);
        af[mt][2] = *reinterpret_cast<const uint32_t*>(a0 + 16);
        af[mt][3] = *reinterpret_cast<const uint32_t*>(a0 + 8 * kLds + 16);
      }
#pragma unroll
      for (int nt = 0; nt < 4; ++nt) {
        const uint8_t* b0 = Bs + (wn * 32 + nt * 8 + gq) * kLds + kk + tq * 4;
        bf[nt][0] = *reinterpret_cast<const uint32_t*>(b0);
        bf[nt][1] = *reinterpret_cast<const uint32_t*>(b0 + 16);
      }
#pragma unroll
      for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) mma_s8(acc[mt][nt], af[mt], bf[nt]);
    }
    __syncthreads();
  }

  if constexpr (CL) {
    // through shared memory: 4 channels per thread step, coalesced (store_tile)
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt)
          *reinterpret_cast<int2*>(Ts + (wm * 32 + mt * 16 + gq + hr * 8) * kLdt + wn * 32 + nt * 8 + tq * 2) = make_int2(acc[mt][nt][hr * 2], acc[mt][nt][hr * 2 + 1]);
    __syncthreads();
    store_tile<kMmaBN, kMmaThreads>(ep, Ts, kLdt, kMmaBM, p0, positions, g, grp, m0, quads, fast);
  } else {
    // NCHW: element by element from the fragments
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const int pp = p0 + wm * 32 + mt * 16 + gq + hr * 8;
        if (pp >= positions) continue;
        const int n = pp / osz, o = pp % osz;
#pragma unroll
        for (int nt = 0; nt < 4; ++nt)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int mg = m0 + wn * 32 + nt * 8 + tq * 2 + e;
            if (mg >= g.Mg) continue;
            const int m = grp * g.Mg + mg;
            put(ep, (static_cast<int64_t>(n) * g.M + m) * osz + o, m, acc[mt][nt][hr * 2 + e]);
          }
      }
  }
}

}  // namespace

cudaError_t conv_direct(const Geom& g, Input x, int zp, const int8_t* w, const Epilogue& ep, cudaStream_t s) {
  int64_t total = static_cast<int64_t>(g.N) * g.M * g.out[0] * g.out[1] * g.out[2];
  if (total <= 0) return cudaSuccess;
  if (g.channels_last)
    direct_kernel<true><<<grid_for(total), kThreads, 0, s>>>(g, x, zp, w, ep, total);
  else
    direct_kernel<false><<<grid_for(total), kThreads, 0, s>>>(g, x, zp, w, ep, total);
  return cudaGetLastError();
}

void pack_mma_weights(const Geom& g, const int8_t* w, int8_t* dst) {
  const int K = g.Cg * g.k[0] * g.k[1] * g.k[2], Kp = mma_kp(g), Mgp = mma_mgp(g);
  std::memset(dst, 0, static_cast<size_t>(g.G) * Mgp * Kp);
  for (int m = 0; m < g.M; ++m)
    std::memcpy(dst + (static_cast<size_t>(m / g.Mg) * Mgp + m % g.Mg) * Kp, w + static_cast<size_t>(m) * K, static_cast<size_t>(K));
}

cudaError_t conv_mma(const Geom& g, Input x, int pad8, const int8_t* wpacked, const Epilogue& ep, cudaStream_t s) {
  const int positions = g.N * g.out[0] * g.out[1] * g.out[2];
  if (positions <= 0 || g.M <= 0) return cudaSuccess;
  const int K = g.Cg * g.k[0] * g.k[1] * g.k[2];
  dim3 grid((positions + kMmaBM - 1) / kMmaBM, mma_mgp(g) / kMmaBN, g.G);
  const bool quads = g.Mg % 4 == 0 && quad_ok(ep);
  if (g.channels_last)
    mma_kernel<true><<<grid, kMmaThreads, 0, s>>>(g, x, pad8, wpacked, ep, K, mma_kp(g), mma_mgp(g), positions, quads, quads ? fast_quad_kind(ep) : -1);
  else
    mma_kernel<false><<<grid, kMmaThreads, 0, s>>>(g, x, pad8, wpacked, ep, K, mma_kp(g), mma_mgp(g), positions, false, -1);
  return cudaGetLastError();
}

}  // namespace i8cu
}  // namespace kiln

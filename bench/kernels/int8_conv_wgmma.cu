// EXPERIMENT, not a tactic: the channels-last int8 implicit GEMM of cuda/int8_conv_cl.cu on Hopper's
// warpgroup MMA (wgmma.mma_async m64n128k32 s8·s8→s32, sm_90a), for bench/kernels/int8_conv_cl.cu's
// kernel benchmark (scripts/gpu.sh kbench builds it in with -DKILN_KBENCH_WGMMA; columns wgmma and
// wgmma.k128). Every output equals conv_direct's; it is no faster than mma.sync (eighth session,
// bench/results/logs-2026-11-25-s8/kbench-3-wgmma-pipelined.log): the cp.async gathers, not the
// multiplies, bound it.
//
// A block: 128 output positions x 128 channels, two warpgroups of 64 positions each; K in 64- or
// 128-byte tiles (BK) through a 4-stage cp.async pipeline (the mma_cl gathers: 16 channels of one pixel
// per 16-byte copy, zero-filled outside the image). Shared tiles are in wgmma's no-swizzle K-major
// layout: 8-row x 16-byte core matrices of 128 contiguous bytes, the BK / 16 of a row group's K bytes
// side by side (K-direction offset 128 B), row groups 8 * BK bytes apart. Each tile: fence.proxy.async
// (cp.async wrote through the generic proxy), a barrier, BK / 32 wgmma k32 per warpgroup, commit, and
// wait_group 1 (the previous tile's multiplies retire while this one's run). The epilogue is
// store_tile's (int8_epilogue.cuh), from the accumulators staged in shared memory.
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "cuda/int8_epilogue.cuh"
#include "cuda/int8_mma.cuh"
#include "native/cuda/int8_kernels.h"

namespace kiln {
namespace i8cu {
namespace {

constexpr int kBM = 128, kBN = 128, kStages = 4, kThreads = 256;
constexpr int kLd = kBN + 8;  // the epilogue tile's row stride (int32)
template <int BK>
struct Tiles {
  static constexpr int kStageA = kBM * BK, kStageB = kBN * BK, kStageBytes = kStageA + kStageB;
  static constexpr int kSmem = (kStages * kStageBytes > kBM * kLd * 4 ? kStages * kStageBytes : kBM * kLd * 4) + 1024;  // + alignment slack
  static constexpr int kRuns = BK / 16, kRowStep = kThreads / kRuns, kRows = kBM / kRowStep;  // a thread's 16-byte runs per tile
};

// byte offset of 16-byte chunk c (0 .. BK / 16 - 1) of row r in a tile of the core-matrix layout
template <int BK>
__device__ __forceinline__ int cm_offset(int r, int c) { return (r >> 3) * (8 * BK) + c * 128 + (r & 7) * 16; }

// wgmma shared-memory matrix descriptor: start address, leading (K) and stride (M/N) byte offsets, no swizzle
__device__ __forceinline__ uint64_t smem_desc(const void* p, int lbo, int sbo) {
  const uint64_t a = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  return ((a & 0x3FFFF) >> 4) | (static_cast<uint64_t>((lbo >> 4) & 0x3FFF) << 16) | (static_cast<uint64_t>((sbo >> 4) & 0x3FFF) << 32);
}

__device__ __forceinline__ void copy16(void* smem, const void* gmem, int src_bytes) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void copy_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void copy_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// d (64 int32 per thread, the m64n128 accumulator fragment) += A (64 x 32 int8, descriptor a) x
// B (128 x 32 int8, descriptor b)ᵀ; scale_d 0: d = A x Bᵀ.
__device__ __forceinline__ void wgmma_m64n128k32_s8(int32_t (&d)[64], uint64_t a, uint64_t b, int scale_d) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p;\n}\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]), "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]), "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]), "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31]), "+r"(d[32]), "+r"(d[33]), "+r"(d[34]), "+r"(d[35]), "+r"(d[36]), "+r"(d[37]), "+r"(d[38]), "+r"(d[39]), "+r"(d[40]), "+r"(d[41]), "+r"(d[42]), "+r"(d[43]), "+r"(d[44]), "+r"(d[45]), "+r"(d[46]), "+r"(d[47]), "+r"(d[48]), "+r"(d[49]), "+r"(d[50]), "+r"(d[51]), "+r"(d[52]), "+r"(d[53]), "+r"(d[54]), "+r"(d[55]), "+r"(d[56]), "+r"(d[57]), "+r"(d[58]), "+r"(d[59]), "+r"(d[60]), "+r"(d[61]), "+r"(d[62]), "+r"(d[63])
      : "l"(a), "l"(b), "r"(scale_d));
#endif
}

// One sm_90a instruction with a memory clobber (nothing on other targets).
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define KILN_SM90A_ASM(text) asm volatile(text ::: "memory")
#else
#define KILN_SM90A_ASM(text)
#endif
__device__ __forceinline__ void wgmma_fence() { KILN_SM90A_ASM("wgmma.fence.sync.aligned;\n"); }
__device__ __forceinline__ void wgmma_commit() { KILN_SM90A_ASM("wgmma.commit_group.sync.aligned;\n"); }
__device__ __forceinline__ void wgmma_wait_all() { KILN_SM90A_ASM("wgmma.wait_group.sync.aligned 0;\n"); }
__device__ __forceinline__ void wgmma_wait_one() { KILN_SM90A_ASM("wgmma.wait_group.sync.aligned 1;\n"); }
__device__ __forceinline__ void fence_proxy_async() { KILN_SM90A_ASM("fence.proxy.async.shared::cta;\n"); }
#undef KILN_SM90A_ASM

template <int BK>
__global__ void __launch_bounds__(kThreads) wgmma_conv_kernel(Geom g, const int8_t* __restrict__ x, const int8_t* __restrict__ wp, Epilogue ep, int K,
                                                              int Kp, int Mgp, int positions, bool quads, int fast) {
  extern __shared__ int8_t smem_raw[];
  int8_t* smem = reinterpret_cast<int8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~static_cast<uintptr_t>(1023));
  const int tid = threadIdx.x, wg = tid >> 7;
  const int grp = blockIdx.z, m0 = blockIdx.y * kBN, p0 = blockIdx.x * kBM;
  const int osz = g.out[0] * g.out[1] * g.out[2];
  const int64_t isz = static_cast<int64_t>(g.in[0]) * g.in[1] * g.in[2];

  // this thread's rows (r0 and r0 + 64 of the A and B tiles) and 16-byte run of each K tile
  using T = Tiles<BK>;
  constexpr int kStageA = T::kStageA, kStageBytes = T::kStageBytes, R = T::kRows;
  const int run = tid % T::kRuns, r0 = tid / T::kRuns;
  int bz[R], by[R], bx[R];
  int64_t xoff[R];
  const int8_t* wrow[R];
#pragma unroll
  for (int j = 0; j < R; ++j) {
    const int p = p0 + r0 + j * T::kRowStep;
    const int pp = p < positions ? p : 0;
    const int n = pp / osz, o = pp % osz;
    const int ox = o % g.out[2], oy = (o / g.out[2]) % g.out[1], oz = o / (g.out[2] * g.out[1]);
    bz[j] = p < positions ? oz * g.s[0] - g.p[0] : -(1 << 29);
    by[j] = oy * g.s[1] - g.p[1];
    bx[j] = ox * g.s[2] - g.p[2];
    xoff[j] = (static_cast<int64_t>(n) * isz + (static_cast<int64_t>(bz[j]) * g.in[1] + by[j]) * g.in[2] + bx[j]) * g.C + static_cast<int64_t>(grp) * g.Cg;
    const int mrow = m0 + r0 + j * T::kRowStep;
    wrow[j] = mrow < Mgp ? wp + (static_cast<int64_t>(grp) * Mgp + mrow) * Kp + run * 16 : nullptr;
  }
  int kn = run * 16, kc = run * 16 < K ? run * 16 % g.Cg : 0, kx = 0, ky = 0, kz = 0;
  if (kn < K) {
    const int tap = kn / g.Cg;
    kx = tap % g.k[2];
    ky = (tap / g.k[2]) % g.k[1];
    kz = tap / (g.k[2] * g.k[1]);
  }
  auto load_tile = [&](int stage, int k0) {
    int8_t* as = smem + stage * kStageBytes;
    int8_t* bs = as + kStageA;
    const bool kin = kn < K;
    const int dz = kz * g.d[0], dy = ky * g.d[1], dx = kx * g.d[2];
    const int64_t tap = ((static_cast<int64_t>(dz) * g.in[1] + dy) * g.in[2] + dx) * g.C + kc;
#pragma unroll
    for (int j = 0; j < R; ++j) {
      const bool ok = kin && static_cast<unsigned>(bz[j] + dz) < static_cast<unsigned>(g.in[0]) && static_cast<unsigned>(by[j] + dy) < static_cast<unsigned>(g.in[1]) &&
                      static_cast<unsigned>(bx[j] + dx) < static_cast<unsigned>(g.in[2]);
      copy16(as + cm_offset<BK>(r0 + j * T::kRowStep, run), ok ? x + xoff[j] + tap : x, ok ? 16 : 0);
      copy16(bs + cm_offset<BK>(r0 + j * T::kRowStep, run), wrow[j] ? wrow[j] + k0 : wp, wrow[j] ? 16 : 0);
    }
    kn += BK;
    advance_window(g, BK, kc, kx, ky, kz);
  };

  int32_t acc[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) acc[i] = 0;
  // Tiles t + 1 .. t + kStages - 2 are in flight while tile t is multiplied, and the multiply of tile
  // t - 1 may still run (wgmma.wait_group 1): a stage is refilled once both warpgroups are past the
  // wait that retired the multiply reading it (the barrier at the top of the next turn).
  const int tiles = Kp / BK;
#pragma unroll
  for (int s = 0; s < kStages - 2; ++s) {
    if (s < tiles) load_tile(s, s * BK);
    copy_commit();
  }
  for (int t = 0; t < tiles; ++t) {
    copy_wait<kStages - 3>();
    fence_proxy_async();
    __syncthreads();  // tile t is in shared memory for the async proxy; tile t - 2's multiplies are done
    const int next = t + kStages - 2;
    if (next < tiles) load_tile(next % kStages, next * BK);
    copy_commit();
    const int8_t* as = smem + (t % kStages) * kStageBytes + wg * 8 * (8 * BK);  // this warpgroup's 64 rows
    const int8_t* bs = smem + (t % kStages) * kStageBytes + kStageA;
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < BK / 32; ++kk) wgmma_m64n128k32_s8(acc, smem_desc(as + kk * 256, 128, 8 * BK), smem_desc(bs + kk * 256, 128, 8 * BK), 1);
    wgmma_commit();
    wgmma_wait_one();
  }
  wgmma_wait_all();
  copy_wait<0>();
  __syncthreads();

  // the m64n128 fragment: warp w of the warpgroup holds rows 16w + lane / 4 (+ 8), columns
  // 8j + 2 (lane % 4) (+ 1) in acc[4j .. 4j + 3]
  int32_t* tile = reinterpret_cast<int32_t*>(smem);
  const int lane = tid & 31, w = (tid >> 5) & 3;
  const int row = wg * 64 + w * 16 + (lane >> 2), col = 2 * (lane & 3);
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    *reinterpret_cast<int2*>(tile + row * kLd + 8 * j + col) = make_int2(acc[4 * j], acc[4 * j + 1]);
    *reinterpret_cast<int2*>(tile + (row + 8) * kLd + 8 * j + col) = make_int2(acc[4 * j + 2], acc[4 * j + 3]);
  }
  __syncthreads();
  store_tile<kBN, kThreads>(ep, tile, kLd, kBM, p0, positions, g, grp, m0, quads, fast);
}

template <int BK>
cudaError_t launch_wgmma(const Geom& g, const int8_t* x, const int8_t* wpacked, const Epilogue& ep, cudaStream_t s) {
  const int positions = g.N * g.out[0] * g.out[1] * g.out[2];
  if (positions <= 0 || g.M <= 0) return cudaSuccess;
  if (mma_kp(g) % BK != 0) return cudaErrorNotSupported;  // packed W's rows end on a tile
  constexpr int kSmem = Tiles<BK>::kSmem;
  static const cudaError_t set = cudaFuncSetAttribute(wgmma_conv_kernel<BK>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (set != cudaSuccess) return set;
  const int Mgp = mma_mgp(g);
  const dim3 grid((positions + kBM - 1) / kBM, (Mgp + kBN - 1) / kBN, g.G);
  const bool quads = g.Mg % 4 == 0 && quad_ok(ep);
  wgmma_conv_kernel<BK><<<grid, kThreads, kSmem, s>>>(g, x, wpacked, ep, g.Cg * g.k[0] * g.k[1] * g.k[2], mma_kp(g), Mgp, positions, quads,
                                                  quads ? fast_quad_kind(ep) : -1);
  return cudaGetLastError();
}

}  // namespace

// For the kernel benchmark: mma_cl_fits(g) geometries, W packed by pack_mma_weights; bk 64 or 128
// (128: cudaErrorNotSupported unless the packed K is a multiple of 128).
cudaError_t conv_wgmma(const Geom& g, int bk, const int8_t* x, const int8_t* wpacked, const Epilogue& ep, cudaStream_t s) {
  return bk == 128 ? launch_wgmma<128>(g, x, wpacked, ep, s) : launch_wgmma<64>(g, x, wpacked, ep, s);
}

}  // namespace i8cu
}  // namespace kiln

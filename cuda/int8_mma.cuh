// What the implicit-GEMM kernels share (cuda/int8_conv.cu, cuda/int8_conv_cl.cu): the window origin
// of an output position, the window walk of the channels-last gathers, the asynchronous copies and
// ldmatrix loads of shared-memory tiles (cuda/int8_conv_stem.cu too), and the int8 tensor-core
// multiply-accumulate: mma.sync.m16n8k32 s8·s8→s32, c += a·b for one warp (fragment layouts in
// int8_conv.cu's header). sm_80 or newer; compiles to nothing for older targets.
#pragma once

#include <cstdint>

#include "cuda/int8_kernels.h"

namespace kiln {
namespace i8cu {

// The window origin (z, y, x) of output position o of an image (0 .. out[0] * out[1] * out[2] - 1):
// its coordinates times the stride, minus the padding.
__device__ __forceinline__ void window_origin(const Geom& g, int o, int& bz, int& by, int& bx) {
  const int ox = o % g.out[2], oy = (o / g.out[2]) % g.out[1], oz = o / (g.out[2] * g.out[1]);
  bz = oz * g.s[0] - g.p[0], by = oy * g.s[1] - g.p[1], bx = ox * g.s[2] - g.p[2];
}

// A window position k = kc + tap * Cg (the tap (kz, ky, kx); K in channel-minor order) moved `step`
// further, without divisions.
__device__ __forceinline__ void advance_window(const Geom& g, int step, int& kc, int& kx, int& ky, int& kz) {
  kc += step;
  while (kc >= g.Cg) {
    kc -= g.Cg;
    if (++kx == g.k[2]) {
      kx = 0;
      if (++ky == g.k[1]) ky = 0, ++kz;
    }
  }
}

__device__ __forceinline__ void mma_s8(int32_t (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

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

}  // namespace i8cu
}  // namespace kiln

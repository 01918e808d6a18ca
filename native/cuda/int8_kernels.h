// The CUDA int8 kernels' launch interface (kernels in cuda/int8_conv.cu and cuda/int8_gemm.cu, tactics
// in native/cuda/int8_tactics.cc and native/cuda/int8_gemm_cublaslt.cc). Everything a kernel needs
// travels by value in these plain structs; device arrays (channel multipliers, zero-point corrections,
// packed weights) are made once by the tactic's prepare().
//
// One geometry serves both kinds: an Int8Gemm Y[M, N] = A[M, K]·W[N, K]ᵀ is a channels-last 1x1
// convolution of one image with M positions, K input and N output channels. Sizes are int32: the
// tactics refuse layers with a tensor of 2^31 elements or more.
//
// The epilogue of one output element i of channel c with int32 sum acc is the CPU's (qgemm_int8.h):
//   v = act(float(acc - corr[c]) * mult[c] + bias[c] + residual[i]), stored as float32 or as
//   saturate(round_half_even(v / y_scale) + y_zero_point) in int8/uint8, every step rounded as the
//   CPU rounds it (no contracted multiply-adds), so requantized outputs equal the reference's; with
//   `fold` (an int8/uint8 output, no activation, ReLU or Clip) the folded form of
//   native/cpu/int8_fold.h instead: v = fma(float(acc - corr[c]), fmult[c], fbias[c]),
//   v = fma(residual - r_zp, f_res, v), round_half_even(clamp(v, f_lo, f_hi)).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "../cpu/int8_fold.h"
#include "../cpu/sgemm.h"

namespace kiln {
namespace i8cu {

enum OutType : int { kOutF32 = 0, kOutI8 = 1, kOutU8 = 2 };

struct Epilogue {
  const float* mult = nullptr;     // [channels] x_scale * w_scale[c]
  const int32_t* corr = nullptr;   // [channels] subtracted from the sums (nullptr: none)
  const float* bias = nullptr;     // [channels] or nullptr
  const void* residual = nullptr;  // the output's shape, or nullptr: float32, or int8/uint8 (res_type)
  int res_type = kOutF32;          // kOutF32, kOutI8 or kOutU8
  float r_scale = 1, r_zp = 0;     // an int8/uint8 residual is (r - r_zp) * r_scale
  void* out = nullptr;
  int out_type = kOutF32;
  float y_scale = 1, y_zp = 0;
  int act = Activation::None;
  float lo = 0, hi = 0, alpha = 0, beta = 0;
  // the folded form (fold_epilogue): fmult [channels] mult / y_scale; fbias [channels] bias / y_scale
  // + y_zp, or nullptr: computed from bias (a bias that is not a constant)
  bool fold = false;
  const float* fmult = nullptr;
  const float* fbias = nullptr;
  float f_res = 0, f_lo = 0, f_hi = 0;
};

// Sets e's folded form from its types, scales and activation (host; int8::fold_for), with the device
// arrays fmult and fbias (made from int8::fold_mult / fold_bias) that the caller owns.
inline void fold_epilogue(Epilogue& e, const float* fmult, const float* fbias) {
  Activation act;
  act.kind = static_cast<Activation::Kind>(e.act), act.lo = e.lo, act.hi = e.hi;
  const int8::Fold f = int8::fold_for(e.out_type != kOutF32, e.out_type == kOutI8, e.y_scale, static_cast<int32_t>(e.y_zp), act, e.res_type == kOutF32, e.r_scale);
  e.fold = f.on, e.f_res = f.res, e.f_lo = f.lo, e.f_hi = f.hi;
  e.fmult = f.on ? fmult : nullptr;
  e.fbias = f.on ? fbias : nullptr;
}

// Canonical 3-D convolution geometry (1-D and 2-D have leading spatial dims of 1), as conv_geom.h.
struct Geom {
  int N = 1, C = 1, M = 1, G = 1, Cg = 1, Mg = 1;
  int in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, k[3] = {1, 1, 1}, s[3] = {1, 1, 1}, d[3] = {1, 1, 1}, p[3] = {0, 0, 0};
  bool channels_last = false;  // X [N, spatial, C], W [M, k, Cg], Y [N, spatial, M]
};

// A 1x1 stride-1 window without padding: output position p reads input pixel p.
__host__ __device__ inline bool is_pointwise(const Geom& g) {
  return g.k[0] == 1 && g.k[1] == 1 && g.k[2] == 1 && g.s[0] == 1 && g.s[1] == 1 && g.s[2] == 1 && g.p[0] == 0 && g.p[1] == 0 && g.p[2] == 0 && g.out[0] == g.in[0] &&
         g.out[1] == g.in[1] && g.out[2] == g.in[2];
}

// The activation tensor: int8, or uint8 (x_u8) read by the kernels as the int8 value x - 128.
struct Input {
  const void* x = nullptr;
  bool u8 = false;
};

// One thread per output element, plain loops over the window: sums of (x - zp) * w with the layer's
// own zero point `zp` and W as stored ([M, Cg, k] or channels-last [M, k, Cg]).
cudaError_t conv_direct(const Geom& g, Input x, int zp, const int8_t* w, const Epilogue& ep, cudaStream_t s);

// Tensor-core implicit GEMM (mma.sync m16n8k32 s8·s8→s32): rows are the output positions of an image
// group, columns its output channels, K the window (W's storage order per output channel). W comes
// packed by pack_mma_weights; padding reads `pad8`, the zero point in the int8 domain (zp - 128 for
// uint8), and ep.corr must hold pad8 * (the sum of the channel's weights), so that padding adds
// nothing. Needs sm_80 or newer.
constexpr int kMmaBM = 64, kMmaBN = 64, kMmaBK = 64;
inline int mma_kp(const Geom& g) { return (g.Cg * g.k[0] * g.k[1] * g.k[2] + kMmaBK - 1) / kMmaBK * kMmaBK; }
inline int mma_mgp(const Geom& g) { return (g.Mg + kMmaBN - 1) / kMmaBN * kMmaBN; }
// Host: W (M rows of K = Cg * k values) into [G][mma_mgp][mma_kp] bytes, zero-filled.
void pack_mma_weights(const Geom& g, const int8_t* w, int8_t* dst);
cudaError_t conv_mma(const Geom& g, Input x, int pad8, const int8_t* wpacked, const Epilogue& ep, cudaStream_t s);

// Channels-last implicit GEMM (cuda/int8_conv_cl.cu): int8 X with zero point 0, Cg and C multiples of
// 16, X 16-byte aligned; W packed by pack_mma_weights (channels-last order). ClTile names the block
// shape, positions x channels: 64 x 64 and 128 x 64 (warps of 32 x 32), 128 x 128 and 256 x 128
// (warps of 64 x 64, for large layers), 128 x 128 in 8 warps of 32 x 64 (kCl128x128w8), 64 x 64 with
// six blocks per SM (kCl64x6: 3 stages, fewer registers; for layers of few K tiles), 128 x 64 in 4
// warps of 64 x 32 (kCl128w4). mma_cl_fits
// says whether the geometry and activations qualify (the alignment is the caller's). split > 1 divides K among that many blocks per output tile (for
// grids too small for the GPU); it needs a workspace of mma_cl_workspace(g, t) bytes (int32 sums and
// arrival counters, zeroed by the launch). mma_cl_tiles: output tiles (blocks without split).
enum ClTile : int { kCl64 = 0, kCl128 = 1, kCl128x128 = 2, kCl256x128 = 3, kCl128x128w8 = 4, kCl64x6 = 5, kCl128w4 = 6 };
int cl_bm(ClTile t);
int cl_bn(ClTile t);
bool mma_cl_fits(const Geom& g, bool u8, int pad8);
int mma_cl_tiles(const Geom& g, ClTile t);
inline size_t mma_cl_sums_bytes(const Geom& g) {
  return (static_cast<size_t>(g.N) * g.out[0] * g.out[1] * g.out[2] * g.M * sizeof(int32_t) + 255) / 256 * 256;
}
inline size_t mma_cl_workspace(const Geom& g, ClTile t) { return mma_cl_sums_bytes(g) + static_cast<size_t>(mma_cl_tiles(g, t)) * sizeof(unsigned); }
cudaError_t conv_mma_cl(const Geom& g, ClTile t, int split, const int8_t* x, const int8_t* wpacked, const Epilogue& ep, void* workspace, cudaStream_t s);

// Layers whose channels are not a multiple of 16 (the stem's 3) through the same kernel: X's windows
// gathered into A [positions, Kc] (Kc: K rounded up to 16; im2col_bytes of workspace), then A x W^T
// as the 1x1 convolution im2col_geom(g) with conv_mma_cl (tile t). W packed by pack_mma_weights for
// im2col_geom(g) from rows of Kc values (W's channels-last rows, zero-padded). Channels-last int8 X
// with zero point 0, one group.
Geom im2col_geom(const Geom& g);
size_t im2col_bytes(const Geom& g);
// The gather alone: A [positions, Kc] (im2col_bytes(g) at `workspace`; K <= 1536).
cudaError_t im2col_cl(const Geom& g, const int8_t* x, void* workspace, cudaStream_t s);
cudaError_t conv_im2col_cl(const Geom& g, ClTile t, const int8_t* x, const int8_t* wpacked, const Epilogue& ep, void* workspace, cudaStream_t s);

// Strided layers with few channels (the stem's 7x7 stride 2 over 3) as stride-1 ones over blocks of
// s[1] x s[2] pixels (space-to-depth, as TensorRT's MLPerf ResNet stem): X rearranged into U [N,
// ceil(in / s), s[1] * s[2] * cpad] (s2d_bytes of workspace; cpad >= C makes the channels a multiple of
// 16), then conv_mma_cl on s2d_geom(g) (window ceil-ish(k / s), stride 1) with W rearranged and
// packed by pack_s2d_weights (W channels-last [M, k, C]; zeros where a block tap falls outside the
// window). 2-D, one group, dilation 1, int8 X with zero point 0; s2d_fits says whether g qualifies.
bool s2d_fits(const Geom& g);
Geom s2d_geom(const Geom& g);
size_t s2d_bytes(const Geom& g);
void pack_s2d_weights(const Geom& g, const int8_t* w, int8_t* dst);
cudaError_t conv_s2d_cl(const Geom& g, ClTile t, const int8_t* x, const int8_t* wpacked, const Epilogue& ep, void* workspace, cudaStream_t s);

// The stem kernel (cuda/int8_conv_stem.cu): the layers conv_s2d_cl takes with stride 2, at most 4
// channels, a 4x4 block window (ResNet's 7x7 stride 2 pad 3) and 64 output channels, each block a 2-D
// region of outputs from one patch of X in shared memory; with `pool` the max pool after it (kind
// Int8ConvPool) in the same kernel, Y then the pool's output. W packed by pack_s2d_weights. The
// epilogue: the folded form, an int8/uint8 output 16-byte aligned, no residual and no corrections.
struct StemPool {
  int k[2] = {1, 1}, s[2] = {1, 1}, p[2] = {0, 0};  // window, strides, leading pads (rows, columns)
  int out[2] = {0, 0};                              // the pool's output size
};
bool stem_fits(const Geom& g);
bool stem_pool_fits(const StemPool& p);
bool stem_epilogue_fits(const Epilogue& ep);
cudaError_t conv_stem_cl(const Geom& g, const StemPool* pool, const int8_t* x, const int8_t* wpacked, const Epilogue& ep, cudaStream_t s);

// The streaming pointwise kernel (cuda/int8_conv_pw.cu): 1x1 stride-1 channels-last convolutions of
// one group with C 64 or 128 and M a multiple of 256 (ResNet's layers that end a bottleneck), a
// persistent grid (two blocks per SM of `sms`) whose blocks keep a 256-channel slice of W in shared
// memory and stream tiles of 64 positions, the next tile's X and residual in flight during this one's
// products. W packed by pack_mma_weights; X 16-byte aligned; the epilogue: the folded form, an
// int8/uint8 output, no residual or an int8/uint8 one (both 16-byte aligned), no corrections.
bool pw_fits(const Geom& g);
bool pw_epilogue_fits(const Epilogue& ep);
cudaError_t conv_pw_cl(const Geom& g, const int8_t* x, const int8_t* wpacked, const Epilogue& ep, int sms, cudaStream_t s);

// The epilogue over an int32 product acc [rows, cols] (row-major, channel = column) into ep.out.
cudaError_t gemm_epilogue(const int32_t* acc, int64_t rows, int64_t cols, const Epilogue& ep, cudaStream_t s);

// y[i] = int8(x[i] - 128) for n bytes (n a multiple of 4, both 4-byte aligned).
cudaError_t shift_u8(const uint8_t* x, int8_t* y, int64_t n, cudaStream_t s);

}  // namespace i8cu
}  // namespace kiln

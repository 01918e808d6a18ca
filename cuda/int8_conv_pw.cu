// The streaming pointwise kernel (launch interface in native/cuda/int8_kernels.h, tactic
// cuda.int8_conv.pw.bn256 in native/cuda/int8_tactics.cc): 1x1 stride-1 channels-last convolutions
// with few input channels (K 64 or 128) and many outputs, with or without an int8 residual — ResNet's
// 64→256 and 128→512 layers that end a bottleneck. They move bytes, not multiplies: layer1's reads 6
// MB of X and 26 MB of residual and writes 26 MB per batch of 32, against 3 GOP of products.
//
// A block keeps a 256-channel slice of W (and its epilogue constants) in shared memory and walks
// tiles of 64 output positions (persistent: tile blockIdx.x, then every gridDim.x-th), two tiles in
// flight: while tile t is multiplied and requantized, tile t + 1's X rows and residual are already
// arriving by cp.async. 8 warps of 32 positions x 64 channels, mma.sync.m16n8k32 s8·s8→s32 over the
// whole K. The epilogue reads each output's residual byte from the staged tile, writes its output byte
// over it (the folded form, as FastQuad in int8_epilogue.cuh: equal to the CPU's), and the tile then
// leaves in 16-byte coalesced stores.
#include <algorithm>

#include "int8_epilogue.cuh"
#include "int8_mma.cuh"

namespace kiln {
namespace i8cu {
namespace {

constexpr int kPwBM = 64, kPwBN = 256, kPwThreads = 256;
constexpr int kPwRRow = kPwBN + 16;  // staged residual / output row (bytes): fragment accesses spread over banks

template <int K>
struct PwShape {
  static constexpr int kXRow = K + 16, kWRow = K + 16;
  static constexpr int kW = kPwBN * kWRow, kX = kPwBM * kXRow, kR = kPwBM * kPwRRow, kStage = kX + kR;
  static constexpr int kSmem = kW + 2 * kStage + 2 * kPwBN * static_cast<int>(sizeof(float));
};

// RES: kNoResidual or kOutI8 / kOutU8 (the residual's type)
template <int K, int RES>
__global__ void __launch_bounds__(kPwThreads, 2) pw_kernel(int positions, int N, const int8_t* __restrict__ x, const int8_t* __restrict__ wp, Epilogue ep) {
  using S = PwShape<K>;
  extern __shared__ __align__(16) int8_t smem[];
  int8_t* wsm = smem;
  float* fm = reinterpret_cast<float*>(smem + S::kW + 2 * S::kStage);
  float* fb = fm + kPwBN;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wm = warp >> 2, wn = warp & 3;
  const int n0 = blockIdx.y * kPwBN, tiles = (positions + kPwBM - 1) / kPwBM;
  const uint8_t* res = static_cast<const uint8_t*>(ep.residual);
  uint8_t* out = static_cast<uint8_t*>(ep.out);

  // W's slice: rows n0.., K bytes each (packed rows of K: K is a multiple of 64)
  for (int q = tid; q < kPwBN * (K / 16); q += kPwThreads) {
    const int r = q / (K / 16), c = (q % (K / 16)) * 16;
    copy16(wsm + r * S::kWRow + c, wp + static_cast<int64_t>(n0 + r) * K + c, 16);
  }
  for (int c = tid; c < kPwBN; c += kPwThreads) fm[c] = __ldg(ep.fmult + n0 + c), fb[c] = fold_bias_at(ep, n0 + c);
  // a tile's X rows and residual into stage s (rows past the end: zeros, never stored)
  auto issue = [&](int t, int s) {
    int8_t* xs = smem + S::kW + s * S::kStage;
    uint8_t* rs = reinterpret_cast<uint8_t*>(xs + S::kX);
    const int p0 = t * kPwBM;
    for (int q = tid; q < kPwBM * (K / 16); q += kPwThreads) {
      const int r = q / (K / 16), c = (q % (K / 16)) * 16;
      const bool ok = p0 + r < positions;
      copy16(xs + r * S::kXRow + c, ok ? x + static_cast<int64_t>(p0 + r) * K + c : x, ok ? 16 : 0);
    }
    if (RES != kNoResidual)
      for (int q = tid; q < kPwBM * (kPwBN / 16); q += kPwThreads) {
        const int r = q / (kPwBN / 16), c = (q % (kPwBN / 16)) * 16;
        const bool ok = p0 + r < positions;
        copy16(rs + r * kPwRRow + c, ok ? res + static_cast<int64_t>(p0 + r) * N + n0 + c : res, ok ? 16 : 0);
      }
  };
  int t = blockIdx.x;
  if (t < tiles) issue(t, 0);
  copy_commit();

  const int gq = lane >> 2, tq = lane & 3;
  const float lo = ep.f_lo, hi = ep.f_hi, f_res = ep.f_res, r_zp = ep.r_zp;
  for (int s = 0; t < tiles; t += gridDim.x, s ^= 1) {
    if (t + static_cast<int>(gridDim.x) < tiles) issue(t + gridDim.x, s ^ 1);
    copy_commit();
    copy_wait<1>();
    __syncthreads();  // tile t (and W) in shared memory
    const int8_t* xs = smem + S::kW + s * S::kStage;
    uint8_t* rs = reinterpret_cast<uint8_t*>(const_cast<int8_t*>(xs) + S::kX);
    int32_t acc[2][8][4] = {};
    const int8_t* as = xs + (wm * 32 + (lane & 15)) * S::kXRow + (lane >> 4) * 16;
    const int8_t* bs = wsm + (wn * 64 + (lane >> 4) * 8 + (lane & 7)) * S::kWRow + ((lane >> 3) & 1) * 16;
#pragma unroll
    for (int kk = 0; kk < K; kk += 32) {
      uint32_t af[2][4], bf[8][2];
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) ldmatrix4(af[mt], as + mt * 16 * S::kXRow + kk);
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        uint32_t b4[4];
        ldmatrix4(b4, bs + np * 16 * S::kWRow + kk);
        bf[2 * np][0] = b4[0], bf[2 * np][1] = b4[1], bf[2 * np + 1][0] = b4[2], bf[2 * np + 1][1] = b4[3];
      }
#pragma unroll
      for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) mma_s8(acc[mt][nt], af[mt], bf[nt]);
    }
    // each output byte over its residual byte (same thread, same address)
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        uint8_t* row = rs + (wm * 32 + mt * 16 + gq + hr * 8) * kPwRRow;
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
          const int c = wn * 64 + nt * 8 + tq * 2;
          uint32_t rb = 0;
          if (RES != kNoResidual) rb = *reinterpret_cast<const uint16_t*>(row + c);
          uint32_t q[2];
#pragma unroll
          for (int j = 0; j < 2; ++j) {
            float v = __fmaf_rn(__int2float_rn(acc[mt][nt][hr * 2 + j]), fm[c + j], fb[c + j]);
            if (RES != kNoResidual) {
              const int rq = RES == kOutI8 ? static_cast<int>(static_cast<int8_t>(rb >> (8 * j))) : static_cast<int>((rb >> (8 * j)) & 0xFFu);
              v = __fmaf_rn(__fsub_rn(__int2float_rn(rq), r_zp), f_res, v);
            }
            q[j] = fold_bits(v, lo, hi) & 0xFFu;
          }
          *reinterpret_cast<uint16_t*>(row + c) = static_cast<uint16_t>(q[0] | (q[1] << 8));
        }
      }
    __syncthreads();
    const int p0 = t * kPwBM;
    for (int q = tid; q < kPwBM * (kPwBN / 16); q += kPwThreads) {
      const int r = q / (kPwBN / 16), c = (q % (kPwBN / 16)) * 16;
      if (p0 + r < positions) *reinterpret_cast<int4*>(out + static_cast<int64_t>(p0 + r) * N + n0 + c) = *reinterpret_cast<const int4*>(rs + r * kPwRRow + c);
    }
    __syncthreads();  // stage s is free for the tile after next
  }
  copy_wait<0>();
}

template <int K, int RES>
cudaError_t pw_launch(int positions, int N, const int8_t* x, const int8_t* wp, const Epilogue& ep, int sms, cudaStream_t s) {
  constexpr int kSmem = PwShape<K>::kSmem;
  static const cudaError_t set = cudaFuncSetAttribute(pw_kernel<K, RES>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (set != cudaSuccess) return set;
  const int tiles = (positions + kPwBM - 1) / kPwBM, slices = N / kPwBN;
  // two blocks per SM over all slices
  const int gx = std::max(1, std::min(tiles, (2 * sms + slices - 1) / slices));
  pw_kernel<K, RES><<<dim3(gx, slices), kPwThreads, kSmem, s>>>(positions, N, x, wp, ep);
  return cudaGetLastError();
}

}  // namespace

bool pw_fits(const Geom& g) {
  return is_pointwise(g) && g.channels_last && g.G == 1 && (g.C == 64 || g.C == 128) && g.M % kPwBN == 0 && g.M / kPwBN <= 65535;
}

bool pw_epilogue_fits(const Epilogue& ep) {
  const bool res = !ep.residual || ((ep.res_type == kOutI8 || ep.res_type == kOutU8) && reinterpret_cast<uintptr_t>(ep.residual) % 16 == 0);
  return ep.fold && !ep.corr && (ep.out_type == kOutI8 || ep.out_type == kOutU8) && reinterpret_cast<uintptr_t>(ep.out) % 16 == 0 && res;
}

cudaError_t conv_pw_cl(const Geom& g, const int8_t* x, const int8_t* wpacked, const Epilogue& ep, int sms, cudaStream_t s) {
  if (!pw_fits(g) || !pw_epilogue_fits(ep) || reinterpret_cast<uintptr_t>(x) % 16 != 0) return cudaErrorInvalidValue;
  const int64_t positions = static_cast<int64_t>(g.N) * g.out[0] * g.out[1] * g.out[2];
  if (positions <= 0) return cudaSuccess;
  if (positions * std::max(g.C, g.M) >= (int64_t{1} << 31)) return cudaErrorInvalidValue;
  const int P = static_cast<int>(positions), res = !ep.residual ? 0 : ep.res_type == kOutI8 ? 1 : 2;
  if (g.C == 64) return res == 0 ? pw_launch<64, kNoResidual>(P, g.M, x, wpacked, ep, sms, s) : res == 1 ? pw_launch<64, kOutI8>(P, g.M, x, wpacked, ep, sms, s) : pw_launch<64, kOutU8>(P, g.M, x, wpacked, ep, sms, s);
  return res == 0 ? pw_launch<128, kNoResidual>(P, g.M, x, wpacked, ep, sms, s) : res == 1 ? pw_launch<128, kOutI8>(P, g.M, x, wpacked, ep, sms, s) : pw_launch<128, kOutU8>(P, g.M, x, wpacked, ep, sms, s);
}

}  // namespace i8cu
}  // namespace kiln

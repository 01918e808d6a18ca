// Kernel-level benchmark of the channels-last int8 convolution (cuda/int8_conv_cl.cu) on ResNet-50's
// convolution shapes, without Node or the addon: every block shape (ClTile) on every layer, timed with
// CUDA events over back-to-back launches, its output checked byte for byte against conv_direct (one
// thread per output and the general epilogue, equal to the CPU reference in test/gpu/int8.test.ts). Prints a table, the
// network's convolution time per shape (each layer weighted by how often ResNet-50 has it) and with the
// fastest shape per layer, to compare with an fp16 engine's layer times.
//
//   scripts/gpu.sh kbench                     (builds it with nvcc and runs it; KILN_KBENCH_ARGS; with
//                                              -DKILN_KBENCH_WGMMA for sm_90a also the wgmma experiment)
//   int8_conv_cl [--batch N]... [--reps R] [--only SUBSTRING] [--once]
//     default: batches 1 and 32, 50 repetitions, every layer; --once: one launch per shape and layer,
//     untimed (for a profiler: ncu --kernel-name regex:mma_cl_kernel)
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "native/cuda/int8_kernels.h"

#include "check.h"

using namespace kiln::i8cu;

#ifdef KILN_KBENCH_WGMMA
namespace kiln {
namespace i8cu {
cudaError_t conv_wgmma(const Geom& g, int bk, const int8_t* x, const int8_t* wpacked, const Epilogue& ep, cudaStream_t s);
}  // namespace i8cu
}  // namespace kiln
#endif

namespace {
// shape ti of the table on layer g
cudaError_t launch_shape(int ti, const Geom& g, const int8_t* x, const int8_t* w, const Epilogue& ep, cudaStream_t st);
}  // namespace

namespace {

// ep (scales, types and activation set) in the engine's folded form (native/cpu/int8_fold.h), with
// device arrays of mult / y_scale and bias / y_scale + y_zp that live as long as this
struct FoldArrays {
  float* fm = nullptr;
  float* fb = nullptr;
  FoldArrays(Epilogue& ep, const std::vector<float>& mult, const std::vector<float>& bias) {
    std::vector<float> m(mult.size()), b(bias.size());
    for (size_t c = 0; c < mult.size(); ++c)
      m[c] = kiln::int8::fold_mult(mult[c], ep.y_scale), b[c] = kiln::int8::fold_bias(bias[c], ep.y_scale, static_cast<int32_t>(ep.y_zp));
    CK(cudaMalloc(&fm, m.size() * sizeof(float)));
    CK(cudaMalloc(&fb, b.size() * sizeof(float)));
    CK(cudaMemcpy(fm, m.data(), m.size() * sizeof(float), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(fb, b.data(), b.size() * sizeof(float), cudaMemcpyHostToDevice));
    fold_epilogue(ep, fm, fb);
  }
  ~FoldArrays() {
    cudaFree(fm);
    cudaFree(fb);
  }
};

struct Layer {
  const char* name;
  int C, M, H, k, s, count;  // input C x H x H, M outputs, k x k window, stride s (pad k / 2)
  bool residual;             // the block's last 1x1 (adds the shortcut, then ReLU)
};

// torchvision ResNet-50 (v1.5: the stride on the 3x3), each shape with how many layers have it
const Layer kLayers[] = {
    {"l1 1x1 64-64", 64, 64, 56, 1, 1, 1, false},      {"l1 1x1 256-64", 256, 64, 56, 1, 1, 2, false},
    {"l1 3x3 64", 64, 64, 56, 3, 1, 3, false},          {"l1 1x1 64-256 +res", 64, 256, 56, 1, 1, 3, true},
    {"l1 down 64-256", 64, 256, 56, 1, 1, 1, false},   {"l2 1x1 256-128", 256, 128, 56, 1, 1, 1, false},
    {"l2 3x3 128 s2", 128, 128, 56, 3, 2, 1, false},   {"l2 1x1 512-128", 512, 128, 28, 1, 1, 3, false},
    {"l2 3x3 128", 128, 128, 28, 3, 1, 3, false},       {"l2 1x1 128-512 +res", 128, 512, 28, 1, 1, 4, true},
    {"l2 down 256-512 s2", 256, 512, 56, 1, 2, 1, false}, {"l3 1x1 512-256", 512, 256, 28, 1, 1, 1, false},
    {"l3 3x3 256 s2", 256, 256, 28, 3, 2, 1, false},   {"l3 1x1 1024-256", 1024, 256, 14, 1, 1, 5, false},
    {"l3 3x3 256", 256, 256, 14, 3, 1, 5, false},       {"l3 1x1 256-1024 +res", 256, 1024, 14, 1, 1, 6, true},
    {"l3 down 512-1024 s2", 512, 1024, 28, 1, 2, 1, false}, {"l4 1x1 1024-512", 1024, 512, 14, 1, 1, 1, false},
    {"l4 3x3 512 s2", 512, 512, 14, 3, 2, 1, false},   {"l4 1x1 2048-512", 2048, 512, 7, 1, 1, 2, false},
    {"l4 3x3 512", 512, 512, 7, 3, 1, 2, false},        {"l4 1x1 512-2048 +res", 512, 2048, 7, 1, 1, 3, true},
    {"l4 down 1024-2048 s2", 1024, 2048, 14, 1, 2, 1, false},
};

const ClTile kTiles[] = {kCl64, kCl128, kCl128x128, kCl256x128, kCl128x128w8, kCl64x6, kCl128w4};
#ifdef KILN_KBENCH_WGMMA
// the wgmma experiment (bench/kernels/int8_conv_wgmma.cu, sm_90a; K tiles of 64 and 128) as the last columns
const char* kTileNames[] = {"64x64", "128x64", "128x128", "256x128", "128x128w8", "64x64b6", "128x64w4", "wgmma", "wgmma.k128", "pw"};
constexpr int kShapes = 10;
#else
const char* kTileNames[] = {"64x64", "128x64", "128x128", "256x128", "128x128w8", "64x64b6", "128x64w4", "pw"};
constexpr int kShapes = 8;
#endif

}  // namespace

namespace {
int g_sms = 132;  // the device's SMs (the streaming pointwise kernel's grid)
cudaError_t launch_shape(int ti, const Geom& g, const int8_t* x, const int8_t* w, const Epilogue& ep, cudaStream_t st) {
  // the last column: the streaming pointwise kernel (cuda/int8_conv_pw.cu) where it takes the layer
  if (ti == kShapes - 1) return pw_fits(g) && pw_epilogue_fits(ep) ? conv_pw_cl(g, x, w, ep, g_sms, st) : cudaErrorNotSupported;
#ifdef KILN_KBENCH_WGMMA
  if (ti >= 7) return conv_wgmma(g, ti == 7 ? 64 : 128, x, w, ep, st);
#endif
  return conv_mma_cl(g, kTiles[ti], 1, x, w, ep, nullptr, st);
}
}  // namespace

int main(int argc, char** argv) {
  std::vector<int> batches;
  int reps = 50;
  const char* only = nullptr;
  bool once = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--batch") && i + 1 < argc) batches.push_back(std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    else if (!std::strcmp(argv[i], "--once")) once = true;
    else {
      std::fprintf(stderr, "usage: %s [--batch N]... [--reps R] [--only SUBSTRING] [--once]\n", argv[0]);
      return 2;
    }
  }
  if (batches.empty()) batches = {1, 32};
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device %s, %d SMs\n", prop.name, prop.multiProcessorCount);
  g_sms = prop.multiProcessorCount;
  std::mt19937 rng(7);
  cudaStream_t st;
  CK(cudaStreamCreate(&st));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  bool all_equal = true;
  for (int N : batches) {
    std::printf("\nbatch %d: us per launch (int8 TOPS)\n%-24s", N, "layer");
    for (const char* t : kTileNames) std::printf(" %17s", t);
    std::printf("\n");
    double total[kShapes] = {}, best_total = 0;
    for (const Layer& L : kLayers) {
      if (only && !std::strstr(L.name, only)) continue;
      Geom g;
      g.N = N, g.C = g.Cg = L.C, g.M = g.Mg = L.M, g.channels_last = true;
      g.in[1] = g.in[2] = L.H;
      const int OH = (L.H + 2 * (L.k / 2) - L.k) / L.s + 1;
      g.out[1] = g.out[2] = OH;
      g.k[1] = g.k[2] = L.k;
      g.s[1] = g.s[2] = L.s;
      g.p[1] = g.p[2] = L.k / 2;
      const size_t xs = static_cast<size_t>(N) * L.H * L.H * L.C, ys = static_cast<size_t>(N) * OH * OH * L.M, K = static_cast<size_t>(L.C) * L.k * L.k;
      std::vector<int8_t> hx(xs), hw(L.M * K), hr(ys), packed(static_cast<size_t>(mma_mgp(g)) * mma_kp(g));
      std::vector<float> mult(L.M), bias(L.M);
      for (auto& v : hx) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
      for (auto& v : hw) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
      for (auto& v : hr) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
      for (int m = 0; m < L.M; ++m) mult[m] = 1e-4f * (1 + m % 7), bias[m] = 0.01f * (m % 13) - 0.05f;
      pack_mma_weights(g, hw.data(), packed.data());
      int8_t *dx, *dw, *dr, *dy, *dw_plain;
      float *dm, *db;
      CK(cudaMalloc(&dx, xs));
      CK(cudaMalloc(&dw, packed.size()));
      CK(cudaMalloc(&dw_plain, hw.size()));
      CK(cudaMemcpy(dw_plain, hw.data(), hw.size(), cudaMemcpyHostToDevice));
      CK(cudaMalloc(&dr, ys));
      CK(cudaMalloc(&dy, ys));
      CK(cudaMalloc(&dm, L.M * sizeof(float)));
      CK(cudaMalloc(&db, L.M * sizeof(float)));
      CK(cudaMemcpy(dx, hx.data(), xs, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(dw, packed.data(), packed.size(), cudaMemcpyHostToDevice));
      CK(cudaMemcpy(dr, hr.data(), ys, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(dm, mult.data(), L.M * sizeof(float), cudaMemcpyHostToDevice));
      CK(cudaMemcpy(db, bias.data(), L.M * sizeof(float), cudaMemcpyHostToDevice));
      Epilogue ep;
      ep.mult = dm, ep.bias = db, ep.out = dy, ep.out_type = kOutI8, ep.y_scale = 0.05f, ep.act = kiln::Activation::Relu;
      if (L.residual) ep.residual = dr, ep.res_type = kOutI8, ep.r_scale = 0.04f;
      const FoldArrays folded(ep, mult, bias);
      const double ops = 2.0 * N * OH * OH * L.M * K;
      // the reference: one thread per output, the general epilogue (cuda.int8_conv.direct)
      std::vector<int8_t> want(ys), got(ys);
      CK(conv_direct(g, Input{dx, false}, 0, dw_plain, ep, st));
      CK(cudaStreamSynchronize(st));
      CK(cudaMemcpy(want.data(), dy, ys, cudaMemcpyDeviceToHost));
      std::printf("%-24s", L.name);
      double best = 1e30;
      for (int ti = 0; ti < kShapes; ++ti) {
        CK(cudaMemsetAsync(dy, 0, ys, st));
        const cudaError_t le = launch_shape(ti, g, dx, dw, ep, st);
        if (le == cudaErrorNotSupported) {  // this shape does not take this layer
          std::printf(" %17s", "-");
          continue;
        }
        CK(le);
        CK(cudaStreamSynchronize(st));
        CK(cudaMemcpy(got.data(), dy, ys, cudaMemcpyDeviceToHost));
        const bool eq = got == want;
        all_equal &= eq;
        if (once) continue;
        for (int w = 0; w < 3; ++w) CK(launch_shape(ti, g, dx, dw, ep, st));
        CK(cudaEventRecord(e0, st));
        for (int r = 0; r < reps; ++r) CK(launch_shape(ti, g, dx, dw, ep, st));
        CK(cudaEventRecord(e1, st));
        CK(cudaEventSynchronize(e1));
        float ms = 0;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        const double us = 1e3 * ms / reps;
        total[ti] += us * L.count;
        if (us < best) best = us;
        std::printf(" %8.1f (%5.0f)%s", us, ops / us * 1e-6, eq ? " " : "!");
      }
      best_total += best * L.count;
      std::printf("  x%d\n", L.count);
      for (void* p : {static_cast<void*>(dx), static_cast<void*>(dw), static_cast<void*>(dr), static_cast<void*>(dy), static_cast<void*>(dm), static_cast<void*>(db), static_cast<void*>(dw_plain)}) CK(cudaFree(p));
    }
    // the stem (3 channels, 7x7 stride 2): the NCHW-gather kernel (conv_mma, channels-last) against
    // im2col and space-to-depth (conv_im2col_cl, conv_s2d_cl), each then the channels-last kernel
    if (!only || std::strstr("stem 7x7 3-64", only)) {
      Geom g;
      g.N = N, g.C = g.Cg = 3, g.M = g.Mg = 64, g.channels_last = true;
      g.in[1] = g.in[2] = 224, g.out[1] = g.out[2] = 112, g.k[1] = g.k[2] = 7, g.s[1] = g.s[2] = 2, g.p[1] = g.p[2] = 3;
      const size_t xs = static_cast<size_t>(N) * 224 * 224 * 3, ys = static_cast<size_t>(N) * 112 * 112 * 64, K = 147;
      const Geom g2 = im2col_geom(g);
      std::vector<int8_t> hx(xs), hw(64 * K), wpad(64 * static_cast<size_t>(g2.C), 0), p1(static_cast<size_t>(mma_mgp(g)) * mma_kp(g)), p2(static_cast<size_t>(mma_mgp(g2)) * mma_kp(g2));
      for (auto& v : hx) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
      for (auto& v : hw) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
      for (int m = 0; m < 64; ++m) std::memcpy(wpad.data() + m * g2.C, hw.data() + m * K, K);
      pack_mma_weights(g, hw.data(), p1.data());
      pack_mma_weights(g2, wpad.data(), p2.data());
      const Geom g3 = s2d_geom(g);  // space-to-depth: 4x4 stride 1 over 2x2 blocks of 4 channels
      std::vector<int8_t> p3(static_cast<size_t>(mma_mgp(g3)) * mma_kp(g3));
      pack_s2d_weights(g, hw.data(), p3.data());
      std::vector<float> mult(64, 2e-3f), bias(64, 0.1f);
      int8_t *dx, *dw, *dw1, *dw2, *dw3, *dy;
      float *dm, *db;
      void* ws;
      CK(cudaMalloc(&dx, xs));
      CK(cudaMalloc(&dw, hw.size()));
      CK(cudaMalloc(&dw1, p1.size()));
      CK(cudaMalloc(&dw2, p2.size()));
      CK(cudaMalloc(&dw3, p3.size()));
      CK(cudaMemcpy(dw3, p3.data(), p3.size(), cudaMemcpyHostToDevice));
      CK(cudaMalloc(&dy, ys));
      CK(cudaMalloc(&dm, 64 * sizeof(float)));
      CK(cudaMalloc(&db, 64 * sizeof(float)));
      CK(cudaMalloc(&ws, std::max(im2col_bytes(g), s2d_bytes(g))));
      CK(cudaMemcpy(dx, hx.data(), xs, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(dw, hw.data(), hw.size(), cudaMemcpyHostToDevice));
      CK(cudaMemcpy(dw1, p1.data(), p1.size(), cudaMemcpyHostToDevice));
      CK(cudaMemcpy(dw2, p2.data(), p2.size(), cudaMemcpyHostToDevice));
      CK(cudaMemcpy(dm, mult.data(), 64 * sizeof(float), cudaMemcpyHostToDevice));
      CK(cudaMemcpy(db, bias.data(), 64 * sizeof(float), cudaMemcpyHostToDevice));
      Epilogue ep;
      ep.mult = dm, ep.bias = db, ep.out = dy, ep.out_type = kOutI8, ep.y_scale = 0.05f, ep.act = kiln::Activation::Relu;
      const FoldArrays folded(ep, mult, bias);
      std::vector<int8_t> want(ys), got(ys);
      CK(conv_direct(g, Input{dx, false}, 0, dw, ep, st));
      CK(cudaStreamSynchronize(st));
      CK(cudaMemcpy(want.data(), dy, ys, cudaMemcpyDeviceToHost));
      // the stem kernel with ResNet's max pool (3x3 stride 2 pad 1) checked against the pool of `want`
      StemPool pool;
      pool.k[0] = pool.k[1] = 3, pool.s[0] = pool.s[1] = 2, pool.p[0] = pool.p[1] = 1, pool.out[0] = pool.out[1] = 56;
      const size_t ps = static_cast<size_t>(N) * 56 * 56 * 64;
      std::vector<int8_t> pwant;
      const char* names[] = {"mma (gather)", "im2col 64x64", "im2col 128x64w4", "s2d 64x64", "s2d 64x64b6", "s2d 128x64", "s2d 128x64w4", "stem", "stem+pool"};
      const ClTile s2d_tiles[] = {kCl64, kCl64x6, kCl128, kCl128w4};
      std::printf("stem 7x7 3-64 (us):");
      for (int v = 0; v < 9; ++v) {
        auto launch = [&]() {
          if (v == 0) return conv_mma(g, Input{dx, false}, 0, dw1, ep, st);
          if (v < 3) return conv_im2col_cl(g, v == 1 ? kCl64 : kCl128w4, dx, dw2, ep, ws, st);
          if (v >= 7) return conv_stem_cl(g, v == 8 ? &pool : nullptr, dx, dw3, ep, st);
          return conv_s2d_cl(g, s2d_tiles[v - 3], dx, dw3, ep, ws, st);
        };
        // the reference: `want`, or for the pooled variant the pool of `want`
        if (v == 8 && pwant.empty()) {
          pwant.resize(ps);
          for (int n = 0; n < N; ++n)
            for (int py = 0; py < 56; ++py)
              for (int px = 0; px < 56; ++px)
                for (int c = 0; c < 64; ++c) {
                  int best = -1000;
                  for (int ky = 0; ky < 3; ++ky)
                    for (int kx = 0; kx < 3; ++kx) {
                      const int cy = 2 * py - 1 + ky, cx = 2 * px - 1 + kx;
                      if (cy >= 0 && cy < 112 && cx >= 0 && cx < 112) best = std::max<int>(best, want[((static_cast<size_t>(n) * 112 + cy) * 112 + cx) * 64 + c]);
                    }
                  pwant[((static_cast<size_t>(n) * 56 + py) * 56 + px) * 64 + c] = static_cast<int8_t>(best);
                }
        }
        const std::vector<int8_t>& ref = v == 8 ? pwant : want;
        CK(cudaMemsetAsync(dy, 0, ys, st));
        CK(launch());
        CK(cudaStreamSynchronize(st));
        got.resize(ref.size());
        CK(cudaMemcpy(got.data(), dy, ref.size(), cudaMemcpyDeviceToHost));
        const bool eq = got == ref;
        all_equal &= eq;
        if (once) continue;
        for (int w = 0; w < 3; ++w) CK(launch());
        CK(cudaEventRecord(e0, st));
        for (int r = 0; r < reps; ++r) CK(launch());
        CK(cudaEventRecord(e1, st));
        CK(cudaEventSynchronize(e1));
        float ms = 0;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        std::printf("  %s %.1f%s", names[v], 1e3 * ms / reps, eq ? "" : "!");
      }
      std::printf("\n");
      for (void* p : {static_cast<void*>(dx), static_cast<void*>(dw), static_cast<void*>(dw1), static_cast<void*>(dw2), static_cast<void*>(dw3), static_cast<void*>(dy), static_cast<void*>(dm), static_cast<void*>(db), ws}) CK(cudaFree(p));
    }
    std::printf("%-24s", "network (52 layers)");
    for (double t : total) std::printf(" %8.1f us       ", t);
    std::printf("\nfastest shape per layer: %.1f us\n", best_total);
  }
  std::printf("\noutputs %s\n", all_equal ? "equal to conv_direct for every shape" : "DIFFER from conv_direct (marked !)");
  return all_equal ? 0 : 1;
}

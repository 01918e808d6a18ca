// Experiment: cuBLASLt's int8 GEMM with an int8 output and its own epilogue on ResNet-50's 1x1 stride-1
// convolutions (channels-last: a 1x1 convolution is D[P, M] = X[P, C]·W[M, C]ᵀ), the layer as kiln's
// folded form computes it:
//   D = clamp(rint(relu(alpha[m]·acc + beta·R + bias[m])))
// with alpha a device vector (per output channel: CUBLASLT_POINTER_MODE_ALPHA_DEVICE_VECTOR_BETA_HOST),
// beta the residual's scale (host), bias float (CUBLASLT_EPILOGUE_RELU_BIAS). In cuBLASLt's column-major
// terms D is M x P (ld M), W is the transposed operand (K x M, ld K), X is K x P (ld K).
// Every algorithm of the heuristic is timed; its output is compared with a one-thread-per-output
// reference kernel (the count of bytes that differ, and by how much at most), and a plain copy of the
// layer's bytes gives the memory floor.
//
//   scripts/gpu.sh ltbench     (nvcc, links cublasLt; KILN_LTBENCH_ARGS: [--batch N]... [--reps R])
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "check.h"

namespace {

#define LT(x)                                                                                                \
  do {                                                                                                       \
    cublasStatus_t s_ = (x);                                                                                 \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                                       \
      std::fprintf(stderr, "%s:%d %s: status %d\n", __FILE__, __LINE__, #x, static_cast<int>(s_));           \
      std::exit(1);                                                                                          \
    }                                                                                                        \
  } while (0)

struct Layer {
  const char* name;
  int C, M, H, count;
  bool residual, relu;
};
// ResNet-50's 1x1 stride-1 convolutions (bench/kernels/int8_conv_cl.cu's names and counts)
const Layer kLayers[] = {
    {"l1 1x1 64-64", 64, 64, 56, 1, false, true},          {"l1 1x1 256-64", 256, 64, 56, 2, false, true},
    {"l1 1x1 64-256 +res", 64, 256, 56, 3, true, true},    {"l1 down 64-256", 64, 256, 56, 1, false, false},
    {"l2 1x1 256-128", 256, 128, 56, 1, false, true},      {"l2 1x1 512-128", 512, 128, 28, 3, false, true},
    {"l2 1x1 128-512 +res", 128, 512, 28, 4, true, true},  {"l3 1x1 512-256", 512, 256, 28, 1, false, true},
    {"l3 1x1 1024-256", 1024, 256, 14, 5, false, true},    {"l3 1x1 256-1024 +res", 256, 1024, 14, 6, true, true},
    {"l4 1x1 1024-512", 1024, 512, 14, 1, false, true},    {"l4 1x1 2048-512", 2048, 512, 7, 2, false, true},
    {"l4 1x1 512-2048 +res", 512, 2048, 7, 3, true, true},
};

__global__ void ref_kernel(const int8_t* x, const int8_t* w, const int8_t* r, const float* alpha, const float* bias, float beta, bool relu, int P, int C, int M,
                           int8_t* d) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<int64_t>(P) * M) return;
  const int m = static_cast<int>(i % M);
  const int64_t p = i / M;
  int acc = 0;
  for (int c = 0; c < C; ++c) acc += static_cast<int>(x[p * C + c]) * static_cast<int>(w[static_cast<int64_t>(m) * C + c]);
  float v = alpha[m] * static_cast<float>(acc) + bias[m];
  if (r) v += beta * static_cast<float>(r[i]);
  if (relu) v = fmaxf(v, 0.f);
  d[i] = static_cast<int8_t>(fminf(fmaxf(rintf(v), -128.f), 127.f));
}

__global__ void copy_kernel(const int4* a, int4* b, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) b[i] = a[i];
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> batches;
  int reps = 50;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--batch") && i + 1 < argc) batches.push_back(std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: %s [--batch N]... [--reps R]\n", argv[0]);
      return 2;
    }
  }
  if (batches.empty()) batches = {1, 32};
  cublasLtHandle_t lt;
  LT(cublasLtCreate(&lt));
  cudaStream_t st;
  CK(cudaStreamCreate(&st));
  const size_t kWs = 32 << 20;
  void* ws;
  CK(cudaMalloc(&ws, kWs));
  std::mt19937 rng(11);
  const Timer time_it(st, reps);
  for (int N : batches) {
    std::printf("\nbatch %d: us per launch; best cuBLASLt algorithm (of how many), copy floor, diffs against the reference\n", N);
    double sum_best = 0, sum_copy = 0;
    for (const Layer& L : kLayers) {
      const int P = N * L.H * L.H, C = L.C, M = L.M;
      std::vector<int8_t> hx(static_cast<size_t>(P) * C), hw(static_cast<size_t>(M) * C), hr(static_cast<size_t>(P) * M);
      std::uniform_int_distribution<int> dx(-40, 40), dw(-127, 127), dr(-100, 100);
      for (auto& v : hx) v = static_cast<int8_t>(dx(rng));
      for (auto& v : hw) v = static_cast<int8_t>(dw(rng));
      for (auto& v : hr) v = static_cast<int8_t>(dr(rng));
      std::vector<float> ha(M), hb(M);
      std::uniform_real_distribution<float> da(0.5f, 1.5f), db(-20.f, 20.f);
      for (int m = 0; m < M; ++m) ha[m] = da(rng) / (40.f * 60.f * std::sqrt(static_cast<float>(C)) / 8.f), hb[m] = db(rng);
      int8_t *x, *w, *r, *d, *dref;
      float *alpha, *bias;
      CK(cudaMalloc(&x, hx.size()));
      CK(cudaMalloc(&w, hw.size()));
      CK(cudaMalloc(&r, hr.size()));
      CK(cudaMalloc(&d, hr.size()));
      CK(cudaMalloc(&dref, hr.size()));
      CK(cudaMalloc(&alpha, M * sizeof(float)));
      CK(cudaMalloc(&bias, M * sizeof(float)));
      CK(cudaMemcpy(x, hx.data(), hx.size(), cudaMemcpyHostToDevice));
      CK(cudaMemcpy(w, hw.data(), hw.size(), cudaMemcpyHostToDevice));
      CK(cudaMemcpy(r, hr.data(), hr.size(), cudaMemcpyHostToDevice));
      CK(cudaMemcpy(alpha, ha.data(), M * sizeof(float), cudaMemcpyHostToDevice));
      CK(cudaMemcpy(bias, hb.data(), M * sizeof(float), cudaMemcpyHostToDevice));
      const float beta = L.residual ? 0.7f : 0.f;
      const int64_t outs = static_cast<int64_t>(P) * M;
      ref_kernel<<<static_cast<unsigned>((outs + 255) / 256), 256, 0, st>>>(x, w, L.residual ? r : nullptr, alpha, bias, beta, L.relu, P, C, M, dref);
      CK(cudaGetLastError());

      cublasLtMatmulDesc_t desc;
      LT(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32I, CUDA_R_32F));
      cublasOperation_t opT = CUBLAS_OP_T, opN = CUBLAS_OP_N;
      LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opT, sizeof(opT)));
      LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opN, sizeof(opN)));
      cublasLtPointerMode_t pm = CUBLASLT_POINTER_MODE_ALPHA_DEVICE_VECTOR_BETA_HOST;
      LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_POINTER_MODE, &pm, sizeof(pm)));
      cublasLtEpilogue_t epi = L.relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
      LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
      LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
      cudaDataType_t bt = CUDA_R_32F;
      LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof(bt)));
      cublasLtMatrixLayout_t la, lb, lc;
      LT(cublasLtMatrixLayoutCreate(&la, CUDA_R_8I, C, M, C));
      LT(cublasLtMatrixLayoutCreate(&lb, CUDA_R_8I, C, P, C));
      LT(cublasLtMatrixLayoutCreate(&lc, CUDA_R_8I, M, P, M));
      cublasLtMatmulPreference_t pref;
      LT(cublasLtMatmulPreferenceCreate(&pref));
      LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &kWs, sizeof(kWs)));
      constexpr int kAlgos = 16;
      cublasLtMatmulHeuristicResult_t res[kAlgos] = {};
      int got = 0;
      cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, lc, lc, pref, kAlgos, res, &got);
      double best = 1e30;
      int best_i = -1;
      long diffs = -1;
      int maxd = 0;
      std::vector<int8_t> hd(hr.size()), href(hr.size());
      for (int a = 0; hs == CUBLAS_STATUS_SUCCESS && a < got; ++a) {
        if (res[a].state != CUBLAS_STATUS_SUCCESS) continue;
        auto run = [&] {
          cublasStatus_t s = cublasLtMatmul(lt, desc, alpha, w, la, x, lb, &beta, L.residual ? r : d, lc, d, lc, &res[a].algo, ws, res[a].workspaceSize, st);
          if (s != CUBLAS_STATUS_SUCCESS) {
            std::fprintf(stderr, "%s algo %d: status %d\n", L.name, a, static_cast<int>(s));
            std::exit(1);
          }
        };
        CK(cudaMemsetAsync(d, 0, hr.size(), st));
        run();
        CK(cudaMemcpyAsync(hd.data(), d, hd.size(), cudaMemcpyDeviceToHost, st));
        CK(cudaMemcpyAsync(href.data(), dref, href.size(), cudaMemcpyDeviceToHost, st));
        CK(cudaStreamSynchronize(st));
        long nd = 0;
        int md = 0;
        for (size_t i = 0; i < hd.size(); ++i) {
          const int df = std::abs(static_cast<int>(hd[i]) - static_cast<int>(href[i]));
          nd += df != 0, md = df > md ? df : md;
        }
        const double us = time_it(run);
        if (us < best) best = us, best_i = a, diffs = nd, maxd = md;
      }
      const int64_t bytes = static_cast<int64_t>(P) * C + (L.residual ? 2 : 1) * outs;
      int4 *ca, *cb;
      CK(cudaMalloc(&ca, bytes + 16));
      CK(cudaMalloc(&cb, bytes + 16));
      const double cp = time_it([&] { copy_kernel<<<132 * 8, 256, 0, st>>>(ca, cb, bytes / 32); });  // half read, half written
      if (best_i < 0)
        std::printf("%-24s no algorithm (heuristic status %d, %d results)   copy %.1f\n", L.name, static_cast<int>(hs), got, cp);
      else
        std::printf("%-24s %7.1f (algo %d of %d)   copy %6.1f   diffs %ld of %lld (max %d)   x%d\n", L.name, best, best_i, got, cp, diffs, static_cast<long long>(outs), maxd,
                    L.count);
      if (best_i >= 0) sum_best += best * L.count;
      sum_copy += cp * L.count;
      cudaFree(ca), cudaFree(cb);
      cublasLtMatmulPreferenceDestroy(pref);
      cublasLtMatrixLayoutDestroy(la), cublasLtMatrixLayoutDestroy(lb), cublasLtMatrixLayoutDestroy(lc);
      cublasLtMatmulDescDestroy(desc);
      cudaFree(x), cudaFree(w), cudaFree(r), cudaFree(d), cudaFree(dref), cudaFree(alpha), cudaFree(bias);
    }
    std::printf("1x1 stride-1 layers, weighted by count: cuBLASLt %.1f us, copy floor %.1f us\n", sum_best, sum_copy);
  }
  return 0;
}

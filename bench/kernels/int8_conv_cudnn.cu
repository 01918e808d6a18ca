// Experiment: cuDNN's int8 convolutions through the graph (backend) API on ResNet-50's layers, as kiln's
// folded int8 epilogue computes them (channels-last int8 X and W, int8 Y):
//   Y = clamp(rint(act(alpha[m]·acc + bias[m] + beta·R)))
// written for cuDNN as one operation graph: conv (int32 accumulation) → ·s[m] → +b[m] (→ +R → ·beta)
// → ReLU → int8, with s = alpha/beta and b = bias/beta where there is a residual (so that R joins
// unscaled). Every engine configuration the heuristics (mode A, then the fallback list) give is
// finalized, checked against a one-thread-per-output reference kernel (how many outputs differ, by how
// much at most) and timed; the table lists the fastest correct one per layer next to the layer's count.
// --res-mode picks how the residual joins the graph (see g_res_mode).
//
//   scripts/gpu.sh cudnnbench   (nvcc, links cudnn; KILN_CUDNNBENCH_ARGS: [--batch N]... [--reps R] [--only S]
//                                [--res-mode M])
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../../native/cuda/cudnn_desc.h"
#include "check.h"

namespace {

struct Layer {
  const char* name;
  int C, M, H, k, s, count;
  bool residual, relu;
  int ho = 0;  // the output size where it is not (H + 2 * (k / 2) - k) / s + 1 (pre padding k / 2; post: what makes ho)
};
// bench/kernels/int8_conv_cl.cu's list (ResNet-50 after the stem)
const Layer kLayers[] = {
    {"l1 1x1 64-64", 64, 64, 56, 1, 1, 1, false, true},         {"l1 1x1 256-64", 256, 64, 56, 1, 1, 2, false, true},
    {"l1 3x3 64", 64, 64, 56, 3, 1, 3, false, true},            {"l1 1x1 64-256 +res", 64, 256, 56, 1, 1, 3, true, true},
    {"l1 down 64-256", 64, 256, 56, 1, 1, 1, false, false},     {"l2 1x1 256-128", 256, 128, 56, 1, 1, 1, false, true},
    {"l2 3x3 128 s2", 128, 128, 56, 3, 2, 1, false, true},      {"l2 1x1 512-128", 512, 128, 28, 1, 1, 3, false, true},
    {"l2 3x3 128", 128, 128, 28, 3, 1, 3, false, true},         {"l2 1x1 128-512 +res", 128, 512, 28, 1, 1, 4, true, true},
    {"l2 down 256-512 s2", 256, 512, 56, 1, 2, 1, false, false}, {"l3 1x1 512-256", 512, 256, 28, 1, 1, 1, false, true},
    {"l3 3x3 256 s2", 256, 256, 28, 3, 2, 1, false, true},      {"l3 1x1 1024-256", 1024, 256, 14, 1, 1, 5, false, true},
    {"l3 3x3 256", 256, 256, 14, 3, 1, 5, false, true},         {"l3 1x1 256-1024 +res", 256, 1024, 14, 1, 1, 6, true, true},
    {"l3 down 512-1024 s2", 512, 1024, 28, 1, 2, 1, false, false}, {"l4 1x1 1024-512", 1024, 512, 14, 1, 1, 1, false, true},
    {"l4 3x3 512 s2", 512, 512, 14, 3, 2, 1, false, true},      {"l4 1x1 2048-512", 2048, 512, 7, 1, 1, 2, false, true},
    {"l4 3x3 512", 512, 512, 7, 3, 1, 2, false, true},          {"l4 1x1 512-2048 +res", 512, 2048, 7, 1, 1, 3, true, true},
    {"l4 down 1024-2048 s2", 1024, 2048, 14, 1, 2, 1, false, false},
    // the stem (7x7 stride 2 pad 3 over 3 channels) after space-to-depth: 4x4 stride 1 over 2x2 blocks
    // of 4 (padded) channels, pre padding 2, post 1
    {"stem s2d 4x4 16-64", 16, 64, 112, 4, 1, 1, false, true, 112},
    // the stem with its 3 channels padded to 4, and as a GEMM over its windows (im2col: K = 147 -> 160)
    {"stem 7x7 s2 4-64", 4, 64, 224, 7, 2, 1, false, true},
    {"stem im2col 1x1 160-64", 160, 64, 112, 1, 1, 1, false, true},
};

// How the residual joins (--res-mode): 0: ·s' +b' +R ·beta (s' = s / beta, b' = b / beta: per-channel
// tensors only); 1: ·s +b, then + beta·R as the add's alpha2 (a scalar in the descriptor); 2: R·beta
// as its own op (a second branch), then added.
int g_res_mode = 0;

using kiln::cudnn_graph::Desc;

enum : int64_t { kX = 1, kW, kY, kS, kB, kZ, kBeta, kVirt = 100 };

struct Graph {
  std::vector<std::unique_ptr<Desc>> keep;
  std::vector<cudnnBackendDescriptor_t> ops;
  Desc* graph = nullptr;
  std::string why;
};

// The layer's operation graph (nullptr-free; graph->ok() says whether cuDNN took it).
std::unique_ptr<Graph> make_graph(cudnnHandle_t h, const Layer& L, int N, int P_out) {
  auto g = std::make_unique<Graph>();
  auto nhwc = [](const std::vector<int64_t>& d) { return std::vector<int64_t>{d[1] * d[2] * d[3], 1, d[3] * d[1], d[1]}; };
  auto tensor = [&](int64_t uid, const std::vector<int64_t>& d, cudnnDataType_t t, bool virt) -> Desc& {
    g->keep.push_back(std::make_unique<Desc>(CUDNN_BACKEND_TENSOR_DESCRIPTOR));
    Desc& x = *g->keep.back();
    std::vector<int64_t> s = nhwc(d);
    int64_t align = 16;
    bool v = virt;
    x.set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, &t)
        .set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, d.data(), 4)
        .set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, s.data(), 4)
        .set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, &uid)
        .set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, &align)
        .set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, &v)
        .finalize();
    if (!x.ok()) g->why = "tensor " + std::to_string(uid) + " status " + std::to_string(static_cast<int>(x.status()));
    return x;
  };
  const int64_t Ho = P_out;
  std::vector<int64_t> xd{N, L.C, L.H, L.H}, wd{L.M, L.C, L.k, L.k}, yd{N, L.M, Ho, Ho}, cd{1, L.M, 1, 1};
  Desc& X = tensor(kX, xd, CUDNN_DATA_INT8, false);
  Desc& W = tensor(kW, wd, CUDNN_DATA_INT8, false);
  int64_t vid = kVirt;
  Desc* cur = &tensor(vid++, yd, CUDNN_DATA_INT32, true);
  Desc& conv = *g->keep.emplace_back(std::make_unique<Desc>(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR));
  cudnnDataType_t fl = CUDNN_DATA_FLOAT;
  const int64_t pad = L.k / 2, str[2] = {L.s, L.s}, dil[2] = {1, 1}, pre[2] = {pad, pad};
  const int64_t p1 = kiln::cudnn_graph::post_padding(L.H, Ho, L.k, L.s, 1, pad), post[2] = {p1, p1};
  kiln::cudnn_graph::conv_desc(conv, CUDNN_DATA_INT32, str, dil, pre, post);
  {
    Desc& op = *g->keep.emplace_back(std::make_unique<Desc>(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR));
    float alpha = 1.f, beta = 0.f;
    op.set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, X)
        .set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, W)
        .set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, *cur)
        .set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, conv)
        .set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, &alpha)
        .set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, &beta)
        .finalize();
    if (!op.ok() && g->why.empty()) g->why = "conv op status " + std::to_string(static_cast<int>(op.status()));
    g->ops.push_back(op.get());
  }
  std::vector<std::pair<cudnnPointwiseMode_t, int64_t>> steps{{CUDNN_POINTWISE_MUL, kS}, {CUDNN_POINTWISE_ADD, kB}};
  if (L.residual && g_res_mode == 0) steps.push_back({CUDNN_POINTWISE_ADD, kZ}), steps.push_back({CUDNN_POINTWISE_MUL, kBeta});
  if (L.residual && g_res_mode >= 1) steps.push_back({CUDNN_POINTWISE_ADD, kZ});
  Desc* zscaled = nullptr;
  if (L.residual && g_res_mode == 2) {  // zs = R · beta[c]
    Desc& pw = *g->keep.emplace_back(std::make_unique<Desc>(CUDNN_BACKEND_POINTWISE_DESCRIPTOR));
    cudnnPointwiseMode_t mul = CUDNN_POINTWISE_MUL;
    pw.set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, &mul).set(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, &fl).finalize();
    Desc& z = tensor(kZ, yd, CUDNN_DATA_INT8, false);
    Desc& bt = tensor(kBeta, cd, CUDNN_DATA_FLOAT, false);
    zscaled = &tensor(vid++, yd, CUDNN_DATA_FLOAT, true);
    Desc& op = *g->keep.emplace_back(std::make_unique<Desc>(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR));
    op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw).set_desc(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, z).set_desc(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, bt)
        .set_desc(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, *zscaled).finalize();
    g->ops.push_back(op.get());
  }
  if (L.relu) steps.push_back({CUDNN_POINTWISE_RELU_FWD, 0});
  for (size_t i = 0; i < steps.size(); ++i) {
    const bool last = i + 1 == steps.size();
    Desc& pw = *g->keep.emplace_back(std::make_unique<Desc>(CUDNN_BACKEND_POINTWISE_DESCRIPTOR));
    pw.set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, &steps[i].first).set(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, &fl).finalize();
    Desc* b = nullptr;
    if (steps[i].second == kZ && zscaled) b = zscaled;
    else if (steps[i].second == kZ) b = &tensor(kZ, yd, CUDNN_DATA_INT8, false);
    else if (steps[i].second) b = &tensor(steps[i].second, cd, CUDNN_DATA_FLOAT, false);
    Desc& y = last ? tensor(kY, yd, CUDNN_DATA_INT8, false) : tensor(vid++, yd, CUDNN_DATA_FLOAT, true);
    Desc& op = *g->keep.emplace_back(std::make_unique<Desc>(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR));
    op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw).set_desc(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, *cur);
    if (b) op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, *b);
    if (steps[i].second == kZ && g_res_mode == 1) {
      float a1 = 1.f, a2 = 0.7f;  // beta (main's value)
      op.set(CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_FLOAT, &a1).set(CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2, CUDNN_TYPE_FLOAT, &a2);
    }
    op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y).finalize();
    if (!op.ok() && g->why.empty()) g->why = "pointwise op " + std::to_string(i) + " status " + std::to_string(static_cast<int>(op.status()));
    g->ops.push_back(op.get());
    cur = &y;
  }
  Desc& graph = *g->keep.emplace_back(std::make_unique<Desc>(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR));
  graph.set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, g->ops.data(), static_cast<int64_t>(g->ops.size()))
      .set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, &h)
      .finalize();
  if (!graph.ok() && g->why.empty()) g->why = "graph status " + std::to_string(static_cast<int>(graph.status()));
  g->graph = &graph;
  return g;
}

// Engine configurations for the graph from heuristics mode `m` (at most n).
std::vector<std::unique_ptr<Desc>> configs(const Graph& g, cudnnBackendHeurMode_t m, int n, int* status) {
  std::vector<std::unique_ptr<Desc>> out;
  Desc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
  heur.set_desc(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, *g.graph).set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, &m).finalize();
  *status = static_cast<int>(heur.status());
  if (!heur.ok()) return out;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int i = 0; i < n; ++i) out.push_back(std::make_unique<Desc>(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR)), raw.push_back(out.back()->get());
  int64_t got = 0;
  cudnnStatus_t s = cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n, &got, raw.data());
  *status = static_cast<int>(s);
  if (s != CUDNN_STATUS_SUCCESS) got = 0;
  out.resize(static_cast<size_t>(got));
  return out;
}

__global__ void ref_kernel(const int8_t* x, const int8_t* w, const int8_t* r, const float* alpha, const float* bias, float beta, bool relu, int N, int H, int C,
                           int M, int k, int s, int Ho, int8_t* y) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<int64_t>(N) * Ho * Ho * M) return;
  const int m = static_cast<int>(i % M);
  int64_t p = i / M;
  const int ox = static_cast<int>(p % Ho), oy = static_cast<int>((p / Ho) % Ho), n = static_cast<int>(p / (static_cast<int64_t>(Ho) * Ho));
  int acc = 0;
  for (int ky = 0; ky < k; ++ky)
    for (int kx = 0; kx < k; ++kx) {
      const int iy = oy * s + ky - k / 2, ix = ox * s + kx - k / 2;
      if (iy < 0 || iy >= H || ix < 0 || ix >= H) continue;
      const int8_t* xp = x + ((static_cast<int64_t>(n) * H + iy) * H + ix) * C;
      const int8_t* wp = w + ((static_cast<int64_t>(m) * k + ky) * k + kx) * C;
      for (int c = 0; c < C; ++c) acc += static_cast<int>(xp[c]) * static_cast<int>(wp[c]);
    }
  float v = alpha[m] * static_cast<float>(acc) + bias[m];
  if (r) v += beta * static_cast<float>(r[i]);
  if (relu) v = fmaxf(v, 0.f);
  y[i] = static_cast<int8_t>(fminf(fmaxf(rintf(v), -128.f), 127.f));
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> batches;
  int reps = 50;
  const char* only = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--batch") && i + 1 < argc) batches.push_back(std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    else if (!std::strcmp(argv[i], "--res-mode") && i + 1 < argc) g_res_mode = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: %s [--batch N]... [--reps R] [--only S] [--res-mode 0|1|2]\n", argv[0]);
      return 2;
    }
  }
  if (batches.empty()) batches = {32, 1};
  std::printf("cuDNN %zu\n", cudnnGetVersion());
  cudnnHandle_t h;
  if (cudnnCreate(&h) != CUDNN_STATUS_SUCCESS) return std::fprintf(stderr, "cudnnCreate failed\n"), 1;
  cudaStream_t st;
  CK(cudaStreamCreate(&st));
  cudnnSetStream(h, st);
  const int64_t kWs = int64_t(256) << 20;
  void* ws;
  CK(cudaMalloc(&ws, kWs));
  std::mt19937 rng(7);
  const Timer time_it(st, reps);
  for (int N : batches) {
    std::printf("\nbatch %d: us per launch of the fastest exact-or-one-step engine; engines tried; diffs against the reference\n", N);
    double sum = 0;
    bool all = true;
    for (const Layer& L : kLayers) {
      if (only && !std::strstr(L.name, only)) continue;
      const int Ho = L.ho ? L.ho : (L.H + 2 * (L.k / 2) - L.k) / L.s + 1;
      const int64_t xs = int64_t(N) * L.H * L.H * L.C, wsz = int64_t(L.M) * L.k * L.k * L.C, ys = int64_t(N) * Ho * Ho * L.M;
      std::vector<int8_t> hx(xs), hw(wsz), hr(ys);
      std::uniform_int_distribution<int> dx(-40, 40), dw(-127, 127), dr(-100, 100);
      for (auto& v : hx) v = static_cast<int8_t>(dx(rng));
      for (auto& v : hw) v = static_cast<int8_t>(dw(rng));
      for (auto& v : hr) v = static_cast<int8_t>(dr(rng));
      const float beta = L.residual ? 0.7f : 1.f;
      std::vector<float> ha(L.M), hb(L.M), hs(L.M), hbb(L.M), hbeta(L.M, beta);
      std::uniform_real_distribution<float> da(0.5f, 1.5f), db(-20.f, 20.f);
      const int K = L.C * L.k * L.k;
      for (int m = 0; m < L.M; ++m) {
        ha[m] = da(rng) / (40.f * 60.f * std::sqrt(static_cast<float>(K)) / 8.f), hb[m] = db(rng);
        const bool divide = L.residual && g_res_mode == 0;
        hs[m] = divide ? ha[m] / beta : ha[m], hbb[m] = divide ? hb[m] / beta : hb[m];
      }
      int8_t *x, *w, *r, *y, *yref;
      float *alpha, *bias, *sc, *bb, *bt;
      CK(cudaMalloc(&x, xs));
      CK(cudaMalloc(&w, wsz));
      CK(cudaMalloc(&r, ys));
      CK(cudaMalloc(&y, ys));
      CK(cudaMalloc(&yref, ys));
      for (float** p : {&alpha, &bias, &sc, &bb, &bt}) CK(cudaMalloc(p, L.M * sizeof(float)));
      CK(cudaMemcpy(x, hx.data(), xs, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(w, hw.data(), wsz, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(r, hr.data(), ys, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(alpha, ha.data(), L.M * 4, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(bias, hb.data(), L.M * 4, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(sc, hs.data(), L.M * 4, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(bb, hbb.data(), L.M * 4, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(bt, hbeta.data(), L.M * 4, cudaMemcpyHostToDevice));
      ref_kernel<<<static_cast<unsigned>((ys + 255) / 256), 256, 0, st>>>(x, w, L.residual ? r : nullptr, alpha, bias, beta, L.relu, N, L.H, L.C, L.M, L.k, L.s, Ho, yref);
      CK(cudaGetLastError());
      std::vector<int8_t> href(ys), hy(ys);
      CK(cudaMemcpy(href.data(), yref, ys, cudaMemcpyDeviceToHost));

      auto g = make_graph(h, L, N, Ho);
      double best = 1e30;
      int tried = 0, finalized = 0, hstatus = 0;
      long best_diffs = -1;
      int best_max = 0;
      std::string best_name, notes;
      if (g->graph->ok()) {
        for (cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
          auto cfgs = configs(*g, mode, 12, &hstatus);
          if (cfgs.empty()) {
            notes += std::string(mode == CUDNN_HEUR_MODE_A ? " A:" : " fallback:") + "none(status " + std::to_string(hstatus) + ")";
            continue;
          }
          for (size_t c = 0; c < cfgs.size(); ++c) {
            ++tried;
            Desc plan(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
            plan.set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, &h).set_desc(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, *cfgs[c]).finalize();
            int64_t wsn = 0, cnt = 0;
            if (!plan.ok() || cudnnBackendGetAttribute(plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &cnt, &wsn) != CUDNN_STATUS_SUCCESS ||
                wsn > kWs) {
              cudaGetLastError();
              continue;
            }
            ++finalized;
            std::vector<int64_t> uids{kX, kW, kY, kS, kB};
            std::vector<void*> ptrs{x, w, y, sc, bb};
            if (L.residual) uids.push_back(kZ), ptrs.push_back(r);
            if (L.residual && g_res_mode != 1) uids.push_back(kBeta), ptrs.push_back(bt);
            Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
            void* wsp = ws;
            pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, uids.data(), static_cast<int64_t>(uids.size()))
                .set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, ptrs.data(), static_cast<int64_t>(ptrs.size()))
                .set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, &wsp)
                .finalize();
            if (!pack.ok()) continue;
            CK(cudaMemsetAsync(y, 0x55, ys, st));
            if (cudnnBackendExecute(h, plan.get(), pack.get()) != CUDNN_STATUS_SUCCESS) {
              cudaGetLastError();
              continue;
            }
            CK(cudaMemcpyAsync(hy.data(), y, ys, cudaMemcpyDeviceToHost, st));
            CK(cudaStreamSynchronize(st));
            long nd = 0;
            int md = 0;
            for (int64_t i = 0; i < ys; ++i) {
              const int df = std::abs(static_cast<int>(hy[i]) - static_cast<int>(href[i]));
              nd += df != 0, md = df > md ? df : md;
            }
            const double us = time_it([&] { cudnnBackendExecute(h, plan.get(), pack.get()); });
            if (md <= 1 && us < best) best = us, best_diffs = nd, best_max = md, best_name = "rank " + std::to_string(c) + (mode == CUDNN_HEUR_MODE_A ? "" : " (fallback)");
            if (md > 1) notes += " [cfg " + std::to_string(c) + " max diff " + std::to_string(md) + "]";
          }
          if (best < 1e30) break;  // mode A gave a usable engine
        }
      } else {
        notes = " graph refused: " + g->why;
      }
      if (best < 1e30) {
        std::printf("%-24s %7.1f   (%d tried, %d finalized)  diffs %ld of %lld (max %d)  x%d  %s%s\n", L.name, best, tried, finalized, best_diffs,
                    static_cast<long long>(ys), best_max, L.count, best_name.c_str(), notes.c_str());
        sum += best * L.count;
      } else {
        all = false;
        std::printf("%-24s    none   (%d tried, %d finalized)%s\n", L.name, tried, finalized, notes.c_str());
      }
      cudaFree(x), cudaFree(w), cudaFree(r), cudaFree(y), cudaFree(yref);
      for (float* p : {alpha, bias, sc, bb, bt}) cudaFree(p);
    }
    std::printf("network (%s), weighted by count: %.1f us\n", all ? "every layer" : "layers with an engine only", sum);
  }
  cudnnDestroy(h);
  return 0;
}

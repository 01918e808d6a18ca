// Softmax family for the "cuda" backend, matching native/cpu/softmax.cc: kind 'Softmax', attr `op`
// 'Softmax' | 'LogSoftmax' | 'Hardmax' (1 at the first maximum), along n of the view [outer, n, inner]
// that TS computes. float32 and float16 (computed in float). Variants, both always applicable and
// timed against each other at build:
// - 'cuda.softmax.block': one block per group, its threads strided over the n elements (three passes:
//   max, Σexp, write), block reductions through warp shuffles. Best for long rows (inner == 1).
// - 'cuda.softmax.column': one thread per group walking its n elements serially; with inner > 1
//   neighbouring threads read neighbouring columns, so the loads coalesce.
#include <cfloat>

#include "kern.cuh"

namespace kiln {
namespace cuk {
namespace {

enum class SOp { Softmax, LogSoftmax, Hardmax };

struct SParams {
  int64_t outer, n, inner;
};

bool parse(const LayerInfo& L, SOp& op, SParams& p) {
  const std::string& s = L.op->s("op");
  if (s == "Softmax") op = SOp::Softmax;
  else if (s == "LogSoftmax") op = SOp::LogSoftmax;
  else if (s == "Hardmax") op = SOp::Hardmax;
  else return false;
  p.outer = L.op->i("outer");
  p.n = L.op->i("n");
  p.inner = L.op->i("inner");
  return p.outer * p.n * p.inner == L.in[0]->numel() && (L.in[0]->dtype == DType::F32 || L.in[0]->dtype == DType::F16);
}

struct MaxOp {
  __device__ float operator()(float a, float b) const { return a > b ? a : b; }
};
struct SumOp {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct MinI {
  __device__ long long operator()(long long a, long long b) const { return a < b ? a : b; }
};

template <typename T, SOp O>
__global__ void softmax_block(const T* __restrict__ x, T* __restrict__ y, SParams p) {
  __shared__ float sf[32];
  __shared__ long long si[32];
  for (int64_t g = blockIdx.x; g < p.outer * p.inner; g += gridDim.x) {
    int64_t base = (g / p.inner) * p.n * p.inner + g % p.inner, sd = p.inner;
    float m = -INFINITY;
    for (int64_t i = threadIdx.x; i < p.n; i += blockDim.x) m = fmaxf(m, ld(x[base + i * sd]));
    m = block_reduce(m, MaxOp{}, sf);
    if (O == SOp::Hardmax) {
      long long arg = p.n;
      for (int64_t i = threadIdx.x; i < p.n; i += blockDim.x)
        if (ld(x[base + i * sd]) == m && i < arg) arg = i;
      arg = block_reduce(arg, MinI{}, si);
      if (arg == p.n) arg = 0;  // no element equals the maximum (NaN): the CPU keeps the first
      for (int64_t i = threadIdx.x; i < p.n; i += blockDim.x) st(y[base + i * sd], i == arg ? 1.f : 0.f);
      continue;
    }
    float s = 0;
    for (int64_t i = threadIdx.x; i < p.n; i += blockDim.x) s += expf(ld(x[base + i * sd]) - m);
    s = block_reduce(s, SumOp{}, sf);
    if (O == SOp::Softmax) {
      float inv = 1.f / s;
      for (int64_t i = threadIdx.x; i < p.n; i += blockDim.x) st(y[base + i * sd], expf(ld(x[base + i * sd]) - m) * inv);
    } else {
      float ls = m + logf(s);
      for (int64_t i = threadIdx.x; i < p.n; i += blockDim.x) st(y[base + i * sd], ld(x[base + i * sd]) - ls);
    }
  }
}

template <typename T, SOp O>
__global__ void softmax_column(const T* __restrict__ x, T* __restrict__ y, SParams p) {
  int64_t groups = p.outer * p.inner;
  for (int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < groups; g += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t base = (g / p.inner) * p.n * p.inner + g % p.inner, sd = p.inner;
    float m = ld(x[base]);
    int64_t arg = 0;
    for (int64_t i = 1; i < p.n; ++i) {
      float v = ld(x[base + i * sd]);
      if (v > m) m = v, arg = i;
    }
    if (O == SOp::Hardmax) {
      for (int64_t i = 0; i < p.n; ++i) st(y[base + i * sd], i == arg ? 1.f : 0.f);
      continue;
    }
    float s = 0;
    for (int64_t i = 0; i < p.n; ++i) s += expf(ld(x[base + i * sd]) - m);
    if (O == SOp::Softmax) {
      float inv = 1.f / s;
      for (int64_t i = 0; i < p.n; ++i) st(y[base + i * sd], expf(ld(x[base + i * sd]) - m) * inv);
    } else {
      float ls = m + logf(s);
      for (int64_t i = 0; i < p.n; ++i) st(y[base + i * sd], ld(x[base + i * sd]) - ls);
    }
  }
}

template <bool kBlock>
class SoftmaxCuda : public Tactic {
 public:
  const char* name() const override { return kBlock ? "cuda.softmax.block" : "cuda.softmax.column"; }
  bool can_implement(const LayerInfo& L) const override {
    SOp op;
    SParams p;
    return parse(L, op, p);
  }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    SOp op;
    SParams p;
    parse(L, op, p);
    int64_t groups = p.outer * p.inner;
    if (groups == 0 || p.n == 0) return;
    cudaStream_t s = stream_of(ctx);
    dispatch_float(in[0].dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* x = in[0].as<T>();
      T* y = out[0].as<T>();
      auto go = [&](auto kernel) {
        if (kBlock) {
          unsigned blocks = static_cast<unsigned>(groups < 65535 * 16 ? groups : 65535 * 16);
          kernel<<<blocks, block_for(p.n), 0, s>>>(x, y, p);
        } else {
          kernel<<<grid_for(groups, 128), 128, 0, s>>>(x, y, p);
        }
      };
      switch (op) {
        case SOp::Softmax: go(kBlock ? softmax_block<T, SOp::Softmax> : softmax_column<T, SOp::Softmax>); break;
        case SOp::LogSoftmax: go(kBlock ? softmax_block<T, SOp::LogSoftmax> : softmax_column<T, SOp::LogSoftmax>); break;
        case SOp::Hardmax: go(kBlock ? softmax_block<T, SOp::Hardmax> : softmax_column<T, SOp::Hardmax>); break;
      }
    });
    check_launch(L, name());
  }
};

}  // namespace
}  // namespace cuk
KILN_REGISTER_TACTIC("cuda", "Softmax", cuk::SoftmaxCuda<true>);
KILN_REGISTER_TACTIC("cuda", "Softmax", cuk::SoftmaxCuda<false>);
}  // namespace kiln

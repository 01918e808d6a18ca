// Element-wise epilogues of the library tactics (see epilogue.h).
#include <cuda_fp16.h>

#include <algorithm>

#include "epilogue.h"

namespace kiln {
namespace cuep {
namespace {

constexpr int kThreads = 256;

struct Act {
  int kind = 0;
  float lo = 0, hi = 0, alpha = 0, beta = 0;
};

Act device_act(const Activation& a) { return Act{static_cast<int>(a.kind), a.lo, a.hi, a.alpha, a.beta}; }

__device__ __forceinline__ float apply(const Act& a, float v) {
  switch (a.kind) {
    case Activation::Relu: return v < 0.f ? 0.f : v;
    case Activation::Clip: return fminf(fmaxf(v, a.lo), a.hi);
    case Activation::Sigmoid: return 1.f / (1.f + expf(-v));
    case Activation::Tanh: return tanhf(v);
    case Activation::LeakyRelu: return v < 0.f ? a.alpha * v : v;
    case Activation::HardSigmoid: return fmaxf(0.f, fminf(1.f, a.alpha * v + a.beta));
    case Activation::HardSwish: return v * fmaxf(0.f, fminf(1.f, v / 6.f + 0.5f));
    case Activation::Gelu: return 0.5f * v * (1.f + erff(v * 0.70710678118654752440f));
    case Activation::GeluTanh: return 0.5f * v * (1.f + tanhf(0.79788456080286535588f * (v + 0.044715f * v * v * v)));
    case Activation::Silu: return v / (1.f + expf(-v));
    default: return v;
  }
}

__device__ __forceinline__ float ld(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float ld(const __half* p, int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ void st(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void st(__half* p, int64_t i, float v) { p[i] = __float2half_rn(v); }

template <typename T>
__global__ void bias_act_kernel(T* y, const T* bias, const T* z, int64_t n, int64_t inner, int64_t channels, Act act) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float v = ld(y, i);
    if (bias) v += ld(bias, (i / inner) % channels);
    if (z) v += ld(z, i);
    st(y, i, apply(act, v));
  }
}

template <typename T>
__global__ void gemm_fill_kernel(T* d, const T* c, const T* z, GemmFill f, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float v = 0.f;
    if (c) {
      int64_t col = i % f.N, row = (i / f.N) % f.M, b = i / (f.N * f.M), off = row * f.cm + col * f.cn;
      for (int k = f.rank - 1; k >= 0; --k) {
        off += (b % f.batch[k]) * f.cstride[k];
        b /= f.batch[k];
      }
      v = f.beta * ld(c, off);
    }
    if (z) v += ld(z, i);
    st(d, i, v);
  }
}

// T: the element's bits (uint16_t for float16, uint32_t for float32): a copy, no arithmetic. Blocks
// along y take batch items, along x runs of one matrix (rows * cols < 2^31: 32-bit index math).
template <typename T>
__global__ void batch_copy_kernel(const T* __restrict__ src, T* __restrict__ dst, BatchCopy f, bool scatter, int64_t nbatch) {
  const int cols = static_cast<int>(f.cols), size = static_cast<int>(f.rows * f.cols);
  for (int64_t b = blockIdx.y; b < nbatch; b += gridDim.y) {
    int64_t base = f.off, rem = b;
    for (int k = f.rank - 1; k >= 0; --k) {
      base += (rem % f.batch[k]) * f.stride[k];
      rem /= f.batch[k];
    }
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < size; j += gridDim.x * blockDim.x) {
      const int64_t strided = base + static_cast<int64_t>(j / cols) * f.ld + j % cols, packed = b * size + j;
      if (scatter) dst[strided] = src[packed];
      else dst[packed] = src[strided];
    }
  }
}

unsigned grid_for(int64_t n) {
  static int sms = [] {
    int dev = 0, k = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&k, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) k = 132;
    return k > 0 ? k : 132;
  }();
  int64_t b = (n + kThreads - 1) / kThreads, cap = static_cast<int64_t>(sms) * 16;
  return static_cast<unsigned>(b < 1 ? 1 : (b > cap ? cap : b));
}

void check(const LayerInfo& L, const char* kernel) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    fail("RUNTIME", "layer '" + L.op->name + "' (" + L.op->kind + "): CUDA kernel " + kernel + " failed: " + cudaGetErrorString(e));
}

}  // namespace

bool supported(const Activation& a) {
  switch (a.kind) {
    case Activation::None: case Activation::Relu: case Activation::Clip: case Activation::Sigmoid: case Activation::Tanh:
    case Activation::LeakyRelu: case Activation::HardSigmoid: case Activation::HardSwish: case Activation::Gelu:
    case Activation::GeluTanh: case Activation::Silu:
      return true;
    default:
      return false;
  }
}

void bias_act(const LayerInfo& L, DType t, void* y, const void* bias, const void* z, int64_t n, int64_t inner, int64_t channels,
              const Activation& act, cudaStream_t s) {
  if (n <= 0) return;
  Act a = device_act(act);
  if (inner < 1) inner = 1;
  if (channels < 1) channels = 1;
  if (t == DType::F16)
    bias_act_kernel<<<grid_for(n), kThreads, 0, s>>>(static_cast<__half*>(y), static_cast<const __half*>(bias), static_cast<const __half*>(z), n, inner, channels, a);
  else
    bias_act_kernel<<<grid_for(n), kThreads, 0, s>>>(static_cast<float*>(y), static_cast<const float*>(bias), static_cast<const float*>(z), n, inner, channels, a);
  check(L, "bias_act");
}

void gemm_fill(const LayerInfo& L, DType t, void* d, const void* c, const void* z, const GemmFill& f, cudaStream_t s) {
  int64_t n = f.M * f.N;
  for (int k = 0; k < f.rank; ++k) n *= f.batch[k];
  if (n <= 0) return;
  if (t == DType::F16)
    gemm_fill_kernel<<<grid_for(n), kThreads, 0, s>>>(static_cast<__half*>(d), static_cast<const __half*>(c), static_cast<const __half*>(z), f, n);
  else
    gemm_fill_kernel<<<grid_for(n), kThreads, 0, s>>>(static_cast<float*>(d), static_cast<const float*>(c), static_cast<const float*>(z), f, n);
  check(L, "gemm_fill");
}

int64_t BatchCopy::elements() const {
  int64_t n = rows * cols;
  for (int k = 0; k < rank; ++k) n *= batch[k];
  return n;
}

void batch_copy(const LayerInfo& L, DType t, const void* src, void* dst, const BatchCopy& f, bool scatter, cudaStream_t s) {
  const int64_t size = f.rows * f.cols, nbatch = size > 0 ? f.elements() / size : 0;
  if (nbatch <= 0) return;
  if (size >= (int64_t{1} << 31)) fail("UNSUPPORTED", "layer '" + L.op->name + "' (" + L.op->kind + "): a matrix of 2^31 elements or more to pack");
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>((size + kThreads - 1) / kThreads, 1024)), static_cast<unsigned>(std::min<int64_t>(nbatch, 65535)));
  if (t == DType::F16)
    batch_copy_kernel<<<grid, kThreads, 0, s>>>(static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst), f, scatter, nbatch);
  else
    batch_copy_kernel<<<grid, kThreads, 0, s>>>(static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), f, scatter, nbatch);
  check(L, "batch_copy");
}

}  // namespace cuep
}  // namespace kiln

// Helpers shared by kiln's hand-written CUDA kernels (cuda/*.cu): device element types and their
// float loads/stores (float16 as __half, computed in float), the launch check that turns a failed
// launch into a kiln::Error naming the layer, grid sizing, and the broadcast/strided index machinery
// (shapes of up to kMaxRank dims after dropping size-1 dims and merging contiguous ones, with 32-bit
// index arithmetic when every offset fits). Everything a kernel needs travels in its parameter struct
// by value: tactics never allocate, copy to the device or synchronize at run time, so a run can be
// captured into a CUDA graph.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tactic.h"

namespace kiln {
namespace cuk {

constexpr int kMaxRank = 8;
constexpr int kThreads = 256;

// The execution's stream. Every run() takes it before its launches, so this is also where a stale
// non-sticky error left by an earlier failed runtime call (already reported by whoever made it) is
// cleared: check_launch() then reports this layer's launches only. Sticky errors (a fault in an
// earlier kernel) survive the clear and are still reported.
inline cudaStream_t stream_of(const RunContext& c) {
  (void)cudaGetLastError();
  return static_cast<cudaStream_t>(c.stream);
}

inline std::string where(const LayerInfo& L) { return "layer '" + L.op->name + "' (" + L.op->kind + ")"; }

// Checks the launch just made (and any earlier asynchronous error) and names the layer.
inline void check_launch(const LayerInfo& L, const char* kernel) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) fail("RUNTIME", where(L) + ": CUDA kernel " + kernel + " failed: " + cudaGetErrorString(e));
}
inline void check_call(const LayerInfo& L, cudaError_t e, const char* call) {
  if (e != cudaSuccess) fail("RUNTIME", where(L) + ": " + call + " failed: " + cudaGetErrorString(e));
}

// Blocks for a grid-stride loop over `work` items: enough to fill the chip, no more.
inline unsigned grid_for(int64_t work, int threads = kThreads) {
  static int sms = [] {
    int dev = 0, n = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) n = 132;
    return n > 0 ? n : 132;
  }();
  int64_t b = (work + threads - 1) / threads;
  int64_t cap = static_cast<int64_t>(sms) * 32;
  if (b > cap) b = cap;
  return static_cast<unsigned>(b < 1 ? 1 : b);
}

// ---- element types ----------------------------------------------------------------------------
template <typename T> struct Tag { using type = T; };

template <typename T> struct compute_of { using type = T; };
template <> struct compute_of<__half> { using type = float; };
template <typename T> using comp_t = typename compute_of<T>::type;

template <typename T> __device__ __forceinline__ comp_t<T> ld(const T& v) { return v; }
template <> __device__ __forceinline__ float ld<__half>(const __half& v) { return __half2float(v); }

// Stores v into T the way the CPU kernels do: float16 rounds to nearest even from float, bool is != 0.
template <typename T> struct Store {
  template <typename V> __device__ __forceinline__ static void to(T& d, V v) { d = static_cast<T>(v); }
};
template <> struct Store<__half> {
  template <typename V> __device__ __forceinline__ static void to(__half& d, V v) { d = __float2half_rn(static_cast<float>(v)); }
};
template <> struct Store<bool> {
  template <typename V> __device__ __forceinline__ static void to(bool& d, V v) { d = v != V(0); }
};
template <typename T, typename V> __device__ __forceinline__ void st(T& d, V v) { Store<T>::to(d, v); }
// The value v as stored in T and read back (float16 rounding between the steps of a fold).
template <typename T, typename V> __device__ __forceinline__ comp_t<T> round_to(V v) {
  T t;
  st(t, v);
  return ld(t);
}

// A 16-byte (or narrower) vector of V elements of T.
template <typename T, int V> struct alignas(sizeof(T) * V) Vec { T v[V]; };

inline bool aligned(const void* p, size_t a) { return (reinterpret_cast<uintptr_t>(p) % a) == 0; }

// Host dispatch by element type (generic lambdas taking a Tag<T>; C++17). Returns false for a type
// the family does not take, so can_implement() and run() share one list.
template <typename F> bool dispatch_float(DType t, F&& f) {
  switch (t) {
    case DType::F32: f(Tag<float>{}); return true;
    case DType::F16: f(Tag<__half>{}); return true;
    default: return false;
  }
}
template <typename F> bool dispatch_int(DType t, F&& f) {
  switch (t) {
    case DType::I32: f(Tag<int32_t>{}); return true;
    case DType::I64: f(Tag<int64_t>{}); return true;
    default: return false;
  }
}
template <typename F> bool dispatch_numeric(DType t, F&& f) { return dispatch_float(t, f) || dispatch_int(t, f); }
// The element types the value kernels (Cast, Pad) take: float32/16/64, int8, uint8, int32, int64, bool.
template <typename F> bool dispatch_value(DType t, F&& f) {
  switch (t) {
    case DType::F32: f(Tag<float>{}); return true;
    case DType::F16: f(Tag<__half>{}); return true;
    case DType::F64: f(Tag<double>{}); return true;
    case DType::I8: f(Tag<int8_t>{}); return true;
    case DType::U8: f(Tag<uint8_t>{}); return true;
    case DType::I32: f(Tag<int32_t>{}); return true;
    case DType::I64: f(Tag<int64_t>{}); return true;
    case DType::Bool: f(Tag<bool>{}); return true;
    default: return false;
  }
}

template <typename F> bool dispatch_bytes(DType t, F&& f) {
  switch (dtype_size(t)) {
    case 1: f(Tag<uint8_t>{}); return true;
    case 2: f(Tag<uint16_t>{}); return true;
    case 4: f(Tag<uint32_t>{}); return true;
    case 8: f(Tag<uint64_t>{}); return true;
    default: return false;
  }
}

// ---- strided index spaces ---------------------------------------------------------------------
// The output index space `shape` (row-major) and, per operand, the element stride of each dim.
template <int N> struct Strided {
  int rank = 0;
  int64_t shape[kMaxRank] = {};
  int64_t stride[N][kMaxRank] = {};
};

// Row-major strides of `in` broadcast (numpy rules) to `out`: 0 along broadcast dims.
inline std::vector<int64_t> bcast_strides(const Shape& in, const Shape& out) {
  std::vector<int64_t> s(out.size(), 0);
  int64_t m = 1;
  for (int d = static_cast<int>(in.size()) - 1, o = static_cast<int>(out.size()) - 1; d >= 0 && o >= 0; --d, --o) {
    s[o] = in[d] == 1 && out[o] != 1 ? 0 : m;
    m *= in[d];
  }
  return s;
}

// Builds the index space: dims of extent 1 dropped, a dim merged into its outer neighbour when every
// operand is contiguous across the two. False when more than kMaxRank dims remain.
template <int N>
bool make_strided(const Shape& shape, const std::vector<std::vector<int64_t>>& strides, Strided<N>& p) {
  std::vector<int64_t> sh;
  std::vector<std::vector<int64_t>> st(N);
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !sh.empty();
    for (int k = 0; k < N && merge; ++k) merge = st[k].back() == strides[k][d] * shape[d];
    if (merge) {
      sh.back() *= shape[d];
      for (int k = 0; k < N; ++k) st[k].back() = strides[k][d];
    } else {
      sh.push_back(shape[d]);
      for (int k = 0; k < N; ++k) st[k].push_back(strides[k][d]);
    }
  }
  if (sh.size() > static_cast<size_t>(kMaxRank)) return false;
  p.rank = static_cast<int>(sh.size());
  for (int d = 0; d < p.rank; ++d) {
    p.shape[d] = sh[d];
    for (int k = 0; k < N; ++k) p.stride[k][d] = st[k][d];
  }
  return true;
}

// True when unsigned 32-bit index arithmetic covers `n` output elements and every operand offset.
template <int N> bool fits32(const Strided<N>& p, int64_t n) {
  if (n >= (int64_t(1) << 31)) return false;
  for (int k = 0; k < N; ++k) {
    int64_t hi = 0;
    for (int d = 0; d < p.rank; ++d) {
      if (p.stride[k][d] < 0) return false;  // unsigned 32-bit offsets: non-negative strides only
      hi += (p.shape[d] - 1) * p.stride[k][d];
    }
    if (hi >= (int64_t(1) << 31)) return false;
  }
  return true;
}

// Offsets of output element i in the first `n` operands.
template <typename I, int N>
__device__ __forceinline__ void offsets(const Strided<N>& p, I i, I (&off)[N]) {
#pragma unroll
  for (int k = 0; k < N; ++k) off[k] = 0;
  for (int d = p.rank - 1; d >= 0; --d) {
    I n = static_cast<I>(p.shape[d]);
    I c = i % n;
    i /= n;
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] += c * static_cast<I>(p.stride[k][d]);
  }
}

// ---- block reductions --------------------------------------------------------------------------
// Reduces v over the block (blockDim.x a multiple of 32, at most 1024) with op; every thread gets the
// result. `smem` holds 32 values of T; the call may be repeated with the same smem.
template <typename T, typename Op>
__device__ __forceinline__ T block_reduce(T v, Op op, T* smem) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  int w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  __syncthreads();  // an earlier call's readers are done with smem
  if ((threadIdx.x & 31) == 0) smem[w] = v;
  __syncthreads();
  T r = smem[0];
  for (int k = 1; k < nw; ++k) r = op(r, smem[k]);
  return r;
}

// Threads for a block that cooperates on `n` elements: a multiple of 32 up to 256.
inline int block_for(int64_t n) { return n >= 256 ? 256 : n > 64 ? 128 : n > 32 ? 64 : 32; }

// Decomposes linear index e over dims[0..nd) (row-major) into an offset with strides (up to kMaxRank).
__device__ __forceinline__ int64_t decompose(int64_t e, int nd, const int64_t* dims, const int64_t* strides) {
  int64_t off = 0;
  for (int d = nd - 1; d >= 0; --d) {
    int64_t c = e % dims[d];
    e /= dims[d];
    off += c * strides[d];
  }
  return off;
}

}  // namespace cuk
}  // namespace kiln

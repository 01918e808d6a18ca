// Helpers shared by the CPU kernels: dtype dispatch, broadcasting index math, float16/bfloat16 loads.
// Rule for kernel writers: validate data (indices, sizes) and throw kiln::Error *before* entering
// parallel_for; code inside a parallel_for task must not throw.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "../common.h"
#include "../tactic.h"
#include "../threadpool.h"

namespace kiln {

// Storage types of the element types. float16/bfloat16 are stored as uint16_t wrappers so that
// dispatch can tell them apart from uint16.
struct f16 { uint16_t bits; };
struct bf16 { uint16_t bits; };

// Load/store through float (or the type itself for everything else).
template <typename T> inline auto load(const T& v) { return v; }
inline float load(const f16& v) { return half_to_float(v.bits); }
inline float load(const bf16& v) { return bf16_to_float(v.bits); }
template <typename T, typename V> inline void store(T& dst, V v) { dst = static_cast<T>(v); }
template <typename V> inline void store(f16& dst, V v) { dst.bits = float_to_half(static_cast<float>(v)); }
template <typename V> inline void store(bf16& dst, V v) { dst.bits = float_to_bf16(static_cast<float>(v)); }
template <typename V> inline void store(bool& dst, V v) { dst = v != V(0); }

// The arithmetic type for T: float for f16/bf16, T otherwise.
template <typename T> struct compute_of { using type = T; };
template <> struct compute_of<f16> { using type = float; };
template <> struct compute_of<bf16> { using type = float; };
template <typename T> using compute_t = typename compute_of<T>::type;

[[noreturn]] void unsupported_dtype(const LayerInfo& L, DType t);

// Calls fn.template operator()<T>() with T the storage type of `t`, for the listed families.
template <typename F> void dispatch_float(DType t, const LayerInfo& L, F&& fn) {
  switch (t) {
    case DType::F32: return fn.template operator()<float>();
    case DType::F64: return fn.template operator()<double>();
    case DType::F16: return fn.template operator()<f16>();
    case DType::BF16: return fn.template operator()<bf16>();
    default: unsupported_dtype(L, t);
  }
}
template <typename F> void dispatch_int(DType t, const LayerInfo& L, F&& fn) {
  switch (t) {
    case DType::I8: return fn.template operator()<int8_t>();
    case DType::I16: return fn.template operator()<int16_t>();
    case DType::I32: return fn.template operator()<int32_t>();
    case DType::I64: return fn.template operator()<int64_t>();
    case DType::U8: return fn.template operator()<uint8_t>();
    case DType::U16: return fn.template operator()<uint16_t>();
    case DType::U32: return fn.template operator()<uint32_t>();
    case DType::U64: return fn.template operator()<uint64_t>();
    default: unsupported_dtype(L, t);
  }
}
template <typename F> void dispatch_numeric(DType t, const LayerInfo& L, F&& fn) {
  switch (t) {
    case DType::F32: case DType::F64: case DType::F16: case DType::BF16: return dispatch_float(t, L, fn);
    default: return dispatch_int(t, L, fn);
  }
}
template <typename F> void dispatch_all(DType t, const LayerInfo& L, F&& fn) {
  if (t == DType::Bool) return fn.template operator()<bool>();
  return dispatch_numeric(t, L, fn);
}
// By element size only (data movement: Transpose, Gather, Concat, …).
template <typename F> void dispatch_bytes(DType t, const LayerInfo& L, F&& fn) {
  switch (dtype_size(t)) {
    case 1: return fn.template operator()<uint8_t>();
    case 2: return fn.template operator()<uint16_t>();
    case 4: return fn.template operator()<uint32_t>();
    case 8: return fn.template operator()<uint64_t>();
    default: unsupported_dtype(L, t);
  }
}

// Row-major strides of a shape.
std::vector<int64_t> strides_of(const Shape& s);
// Strides of `in` broadcast (numpy rules, right-aligned) to `out`: 0 along broadcast dims.
std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out);

// Walks a row-major index space of `shape`, tracking offsets into several operands with their strides.
template <int N>
struct MultiIndex {
  const Shape& shape;
  const std::vector<int64_t>* strides[N];
  std::vector<int64_t> idx;
  int64_t off[N] = {};
  MultiIndex(const Shape& s) : shape(s), idx(s.size(), 0) {}
  // Positions the walker at linear index `lin`.
  void seek(int64_t lin) {
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
      int64_t n = shape[d] ? shape[d] : 1;
      idx[d] = lin % n;
      lin /= n;
      for (int k = 0; k < N; ++k) off[k] += idx[d] * (*strides[k])[d];
    }
  }
  void next() {
    for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
      if (++idx[d] < shape[d]) {
        for (int k = 0; k < N; ++k) off[k] += (*strides[k])[d];
        return;
      }
      for (int k = 0; k < N; ++k) off[k] -= (shape[d] - 1) * (*strides[k])[d];
      idx[d] = 0;
    }
  }
};

// For outputs o in [0, n_out) reading input index o*s + base: the first o whose index is >= 0 (lo)
// and one past the last whose index is < limit (hi), both clamped to [0, n_out].
inline void valid_range(int64_t base, int64_t s, int64_t limit, int64_t n_out, int64_t& lo, int64_t& hi) {
  lo = base >= 0 ? 0 : (-base + s - 1) / s;
  hi = limit - 1 - base < 0 ? 0 : (limit - 1 - base) / s + 1;
  lo = std::min(lo, n_out);
  hi = std::min(hi, n_out);
}

inline int64_t grain_for(int64_t work_per_item) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, work_per_item)); }

}  // namespace kiln

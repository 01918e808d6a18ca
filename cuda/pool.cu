// Pooling for the "cuda" backend, matching native/cpu/pool.cc: kind 'Pool' over the spatial dims of
// [N, C, spatial...] (up to 8 spatial dims), mode 'max' (optional int64 indices output, row- or
// column-major per storage_order), 'avg' (count_include_pad) and 'lp'. kernel/strides/dilations/pads
// come resolved from TS. float32/float16 (sums in double, as the CPU), max also on int32/int64 and on
// int8/uint8 (int8 engines pool quantized values: src/passes/int8-pool.ts).
// With attribute `channels_last` 1 (src/passes/layout-assignment.ts) X and Y are stored [N, spatial...,
// C] (no Indices output): consecutive threads take consecutive channels of one output position, so a
// warp's loads of each tap are contiguous. Two variants, one thread per output element walking its
// window: cuda.pool (any rank, every mode, Indices), and cuda.pool.2d (2-D max and average pooling
// without Indices: the same loops with the rank, the layout and the mode compiled in, 32-bit index
// arithmetic and no per-thread arrays, about 10x faster on ResNet's max pool and global average pool).
#include <cfloat>
#include <climits>

#include "kern.cuh"

namespace kiln {
namespace cuk {
namespace {

struct PParams {
  int mode;  // 0 max, 1 avg, 2 lp
  int nd;
  int64_t k[kMaxRank], s[kMaxRank], d[kMaxRank], pb[kMaxRank], pe[kMaxRank], in[kMaxRank], out[kMaxRank];
  int64_t in_plane, out_plane, kcount, total;
  int64_t C;  // channels (channels_last only: the element stride within a plane)
  bool include_pad, col_major, channels_last;
  double p;
};

bool make_pparams(const LayerInfo& L, PParams& p) {
  const std::string& m = L.op->s("mode");
  p.mode = m == "max" ? 0 : m == "avg" ? 1 : m == "lp" ? 2 : -1;
  const Shape& xs = L.in[0]->shape;
  const Shape& ys = L.out[0]->shape;
  p.channels_last = L.op->i("channels_last", 0) != 0;
  if (p.mode < 0 || xs.size() < 3 || ys.size() != xs.size()) return false;
  // the channel axis and the first spatial axis of the stored shapes
  const size_t ca = p.channels_last ? xs.size() - 1 : 1, sa = p.channels_last ? 1 : 2;
  if (ys[0] != xs[0] || ys[ca] != xs[ca]) return false;
  if (p.channels_last && L.out.size() > 1 && L.out[1]) return false;
  p.C = xs[ca];
  p.nd = static_cast<int>(xs.size()) - 2;
  const auto& k = L.op->ints("kernel");
  const auto& s = L.op->ints("strides");
  const auto& d = L.op->ints("dilations");
  const auto& pads = L.op->ints("pads");
  size_t nd = p.nd;
  if (nd > static_cast<size_t>(kMaxRank) || k.size() != nd || s.size() != nd || d.size() != nd || pads.size() != 2 * nd) return false;
  p.in_plane = p.out_plane = p.kcount = 1;
  for (size_t i = 0; i < nd; ++i) {
    if (k[i] <= 0 || s[i] <= 0 || d[i] <= 0) return false;
    p.k[i] = k[i], p.s[i] = s[i], p.d[i] = d[i], p.pb[i] = pads[i], p.pe[i] = pads[nd + i];
    p.in[i] = xs[i + sa], p.out[i] = ys[i + sa];
    p.in_plane *= xs[i + sa], p.out_plane *= ys[i + sa], p.kcount *= k[i];
  }
  p.total = L.out[0]->numel();
  p.include_pad = L.op->i("count_include_pad", 0) != 0;
  p.col_major = L.op->i("storage_order", 0) != 0;
  p.p = L.op->f("p", 2.0);
  DType t = L.in[0]->dtype;
  bool fl = t == DType::F32 || t == DType::F16;
  // max pooling of integers: int32/int64, and int8/uint8 (int8 engines pool quantized values)
  return fl || (p.mode == 0 && (t == DType::I32 || t == DType::I64 || t == DType::I8 || t == DType::U8));
}

template <typename T>
__global__ void pool_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t* __restrict__ idx, PParams p) {
  using C = comp_t<T>;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < p.total; t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    // plane (n, c), position oi; channels-last: element (n, oi, c) and the plane's elements C apart
    int64_t plane, oi, es = 1;
    const T* xp;
    if (p.channels_last) {
      int64_t n = t / (p.out_plane * p.C), c = t % p.C;
      oi = t / p.C % p.out_plane, plane = n * p.C + c, es = p.C;
      xp = x + n * p.in_plane * p.C + c;
    } else {
      plane = t / p.out_plane, oi = t % p.out_plane;
      xp = x + plane * p.in_plane;
    }
    int64_t o[kMaxRank], kk[kMaxRank], rstr[kMaxRank], cstr[kMaxRank];
    int64_t r = oi, m = 1;
    for (int i = p.nd - 1; i >= 0; --i) o[i] = r % p.out[i], r /= p.out[i], rstr[i] = m, m *= p.in[i], kk[i] = 0;
    m = 1;
    for (int i = 0; i < p.nd; ++i) cstr[i] = m, m *= p.in[i];
    int64_t padded = 1;
    for (int i = 0; i < p.nd; ++i) {
      int64_t start = o[i] * p.s[i] - p.pb[i], n = 0;
      for (int64_t j = 0; j < p.k[i]; ++j) {
        int64_t q = start + j * p.d[i];
        if (q >= -p.pb[i] && q < p.in[i] + p.pe[i]) ++n;
      }
      padded *= n;
    }
    C best;
    if constexpr (std::is_integral<T>::value) best = sizeof(T) == 4 ? C(INT32_MIN) : C(LLONG_MIN);
    else best = -INFINITY;
    int64_t best_at = -1, valid = 0;
    double sum = 0;
    for (int64_t ki = 0; ki < p.kcount; ++ki) {
      bool inside = true;
      int64_t off = 0, coff = 0;
      for (int i = 0; i < p.nd; ++i) {
        int64_t q = o[i] * p.s[i] - p.pb[i] + kk[i] * p.d[i];
        if (q < 0 || q >= p.in[i]) inside = false;
        off += q * rstr[i], coff += q * cstr[i];
      }
      if (inside) {
        C v = ld(xp[off * es]);
        ++valid;
        if (p.mode == 0) {
          if (best_at < 0 || v > best) best = v, best_at = p.col_major ? coff : off;
        } else if (p.mode == 1) {
          sum += static_cast<double>(v);
        } else {
          sum += pow(fabs(static_cast<double>(v)), p.p);
        }
      }
      for (int i = p.nd - 1; i >= 0; --i) {
        if (++kk[i] < p.k[i]) break;
        kk[i] = 0;
      }
    }
    if (p.mode == 0) {
      st(y[t], best);
      if (idx) idx[t] = plane * p.in_plane + (best_at > 0 ? best_at : 0);
    } else if (p.mode == 1) {
      int64_t div = p.include_pad ? padded : valid;
      st(y[t], div ? sum / static_cast<double>(div) : 0.0);
    } else {
      st(y[t], pow(sum, 1.0 / p.p));
    }
  }
}

// 2-D max/avg pooling, as pool_kernel: the first valid tap starts the max (NaN only when it is first),
// averages are double sums divided by the taps inside the padded input or inside the input.
// f(iy * W + ix) for each tap (iy, ix) of the kh x kw window at (y0, x0) (dilation dh, dw) inside
// the H x W image, row by row.
template <class F>
__device__ __forceinline__ void for_each_tap(int y0, int x0, int kh, int kw, int dh, int dw, int H, int W, F&& f) {
  for (int i = 0; i < kh; ++i) {
    const int iy = y0 + i * dh;
    if (iy < 0 || iy >= H) continue;
    for (int j = 0; j < kw; ++j) {
      const int ix = x0 + j * dw;
      if (ix < 0 || ix >= W) continue;
      f(static_cast<int64_t>(iy * W + ix));
    }
  }
}

template <typename T, bool CL, int MODE>
__global__ void pool2d_kernel(const T* __restrict__ x, T* __restrict__ y, PParams p) {
  using C = comp_t<T>;
  const int H = static_cast<int>(p.in[0]), W = static_cast<int>(p.in[1]), OH = static_cast<int>(p.out[0]), OW = static_cast<int>(p.out[1]);
  const int kh = static_cast<int>(p.k[0]), kw = static_cast<int>(p.k[1]), sh = static_cast<int>(p.s[0]), sw = static_cast<int>(p.s[1]);
  const int dh = static_cast<int>(p.d[0]), dw = static_cast<int>(p.d[1]), pt = static_cast<int>(p.pb[0]), pl = static_cast<int>(p.pb[1]);
  const int Ch = static_cast<int>(p.C);
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < p.total; t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int ox, oy, es;
    const T* xp;
    if (CL) {
      const int c = static_cast<int>(t % Ch);
      const int64_t r = t / Ch;
      ox = static_cast<int>(r % OW), oy = static_cast<int>(r / OW % OH);
      xp = x + r / (static_cast<int64_t>(OW) * OH) * H * W * Ch + c, es = Ch;
    } else {
      ox = static_cast<int>(t % OW), oy = static_cast<int>(t / OW % OH);
      xp = x + t / (static_cast<int64_t>(OW) * OH) * H * W, es = 1;
    }
    const int y0 = oy * sh - pt, x0 = ox * sw - pl;
    C best{};
    bool any = false;
    double sum = 0;
    int valid = 0;
    for_each_tap(y0, x0, kh, kw, dh, dw, H, W, [&](int64_t pix) {
      const C v = ld(xp[pix * es]);
      ++valid;
      if (MODE == 0) {
        if (!any || v > best) best = v, any = true;
      } else {
        sum += static_cast<double>(v);
      }
    });
    if (MODE == 0) {
      if (!any) {  // a window wholly in the padding: the kernel's starting value
        if constexpr (std::is_integral<T>::value) best = sizeof(T) == 4 ? C(INT32_MIN) : C(LLONG_MIN);
        else best = -INFINITY;
      }
      st(y[t], best);
    } else {
      int div = valid;
      if (p.include_pad) {
        // taps inside the padded input, per dimension
        int nh = 0, nw = 0;
        for (int i = 0; i < kh; ++i) nh += y0 + i * dh >= -pt && y0 + i * dh < H + static_cast<int>(p.pe[0]);
        for (int j = 0; j < kw; ++j) nw += x0 + j * dw >= -pl && x0 + j * dw < W + static_cast<int>(p.pe[1]);
        div = nh * nw;
      }
      st(y[t], div ? sum / static_cast<double>(div) : 0.0);
    }
  }
}

// Channels-last max pooling of int8/uint8 (int8 engines), V channels per thread: V / 4 words of 4
// bytes per tap, maxima by the SIMD byte instructions (__vmaxs4 / __vmaxu4). C % V == 0 and X, Y
// aligned to V bytes. Equal to pool2d_kernel (integers have no NaN), for a window with a valid tap.
template <bool SIGNED, int V>
__global__ void pool2d_max_bytes_kernel(const uint8_t* __restrict__ x, uint8_t* __restrict__ y, PParams p) {
  const int H = static_cast<int>(p.in[0]), W = static_cast<int>(p.in[1]), OH = static_cast<int>(p.out[0]), OW = static_cast<int>(p.out[1]);
  const int kh = static_cast<int>(p.k[0]), kw = static_cast<int>(p.k[1]), sh = static_cast<int>(p.s[0]), sw = static_cast<int>(p.s[1]);
  const int dh = static_cast<int>(p.d[0]), dw = static_cast<int>(p.d[1]), pt = static_cast<int>(p.pb[0]), pl = static_cast<int>(p.pb[1]);
  const int Cv = static_cast<int>(p.C) / V;
  constexpr int kWords = V / 4;
  using Vec = typename std::conditional<V == 16, uint4, unsigned>::type;
  const int64_t total = p.total / V;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int cv = static_cast<int>(t % Cv);
    const int64_t r = t / Cv;
    const int ox = static_cast<int>(r % OW), oy = static_cast<int>(r / OW % OH);
    const Vec* xp = reinterpret_cast<const Vec*>(x) + r / (static_cast<int64_t>(OW) * OH) * H * W * Cv + cv;
    const int y0 = oy * sh - pt, x0 = ox * sw - pl;
    unsigned best[kWords];
    bool any = false;
    for_each_tap(y0, x0, kh, kw, dh, dw, H, W, [&](int64_t pix) {
      const Vec v = xp[pix * Cv];
      const unsigned* w = reinterpret_cast<const unsigned*>(&v);
#pragma unroll
      for (int q = 0; q < kWords; ++q) best[q] = !any ? w[q] : SIGNED ? __vmaxs4(best[q], w[q]) : __vmaxu4(best[q], w[q]);
      any = true;
    });
    if (!any)  // a window wholly in the padding: pool2d_kernel's starting value, truncated to a byte (0)
#pragma unroll
      for (int q = 0; q < kWords; ++q) best[q] = 0;
    Vec out;
    unsigned* o = reinterpret_cast<unsigned*>(&out);
#pragma unroll
    for (int q = 0; q < kWords; ++q) o[q] = best[q];
    reinterpret_cast<Vec*>(y)[t] = out;
  }
}

class Pool2dCuda : public Tactic {
 public:
  const char* name() const override { return "cuda.pool.2d"; }
  bool can_implement(const LayerInfo& L) const override {
    PParams p;
    if (!make_pparams(L, p) || p.nd != 2 || p.mode > 1 || (L.out.size() > 1 && L.out[1])) return false;
    // 32-bit positions within an image
    return p.in_plane * p.C < (int64_t(1) << 31) && p.out_plane * p.C < (int64_t(1) << 31) && p.kcount < (int64_t(1) << 20);
  }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    PParams p;
    if (!make_pparams(L, p)) fail("INTERNAL", where(L) + ": cuda.pool.2d cannot run this layer");
    if (p.total == 0) return;
    const bool bytes = in[0].dtype == DType::I8 || in[0].dtype == DType::U8;
    if (bytes && p.channels_last && p.mode == 0) {
      // V channels per thread where the channels and the pointers allow
      const uintptr_t a = reinterpret_cast<uintptr_t>(in[0].data) | reinterpret_cast<uintptr_t>(out[0].data);
      const int V = p.C % 16 == 0 && a % 16 == 0 ? 16 : p.C % 4 == 0 && a % 4 == 0 ? 4 : 1;
      const bool sgn = in[0].dtype == DType::I8;
      auto launch = [&](auto kernel) {
        kernel<<<grid_for(p.total / V, 128), 128, 0, stream_of(ctx)>>>(static_cast<const uint8_t*>(in[0].data), static_cast<uint8_t*>(out[0].data), p);
      };
      if (V == 16) sgn ? launch(pool2d_max_bytes_kernel<true, 16>) : launch(pool2d_max_bytes_kernel<false, 16>);
      if (V == 4) sgn ? launch(pool2d_max_bytes_kernel<true, 4>) : launch(pool2d_max_bytes_kernel<false, 4>);
      if (V > 1) return check_launch(L, name());
    }
    auto go = [&](auto tag) {
      using T = typename decltype(tag)::type;
      auto launch = [&](auto kernel) { kernel<<<grid_for(p.total, 128), 128, 0, stream_of(ctx)>>>(in[0].as<T>(), out[0].as<T>(), p); };
      if (p.channels_last) p.mode == 0 ? launch(pool2d_kernel<T, true, 0>) : launch(pool2d_kernel<T, true, 1>);
      else p.mode == 0 ? launch(pool2d_kernel<T, false, 0>) : launch(pool2d_kernel<T, false, 1>);
    };
    if (in[0].dtype == DType::I8) go(Tag<int8_t>{});
    else if (in[0].dtype == DType::U8) go(Tag<uint8_t>{});
    else dispatch_numeric(in[0].dtype, go);
    check_launch(L, name());
  }
};

class PoolCuda : public Tactic {
 public:
  const char* name() const override { return "cuda.pool"; }
  bool can_implement(const LayerInfo& L) const override {
    PParams p;
    if (!make_pparams(L, p)) return false;
    return !(L.out.size() > 1 && L.out[1] && L.out[1]->dtype != DType::I64);
  }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    PParams p;
    if (!make_pparams(L, p)) fail("INTERNAL", where(L) + ": cuda.pool cannot run this layer");
    if (p.total == 0) return;
    int64_t* idx = L.out.size() > 1 && L.out[1] && out[1].data ? out[1].as<int64_t>() : nullptr;
    auto go = [&](auto tag) {
      using T = typename decltype(tag)::type;
      pool_kernel<T><<<grid_for(p.total, 128), 128, 0, stream_of(ctx)>>>(in[0].as<T>(), out[0].as<T>(), idx, p);
    };
    if (in[0].dtype == DType::I8) go(Tag<int8_t>{});
    else if (in[0].dtype == DType::U8) go(Tag<uint8_t>{});
    else dispatch_numeric(in[0].dtype, go);
    check_launch(L, name());
  }
};

}  // namespace
}  // namespace cuk
KILN_REGISTER_TACTIC("cuda", "Pool", cuk::Pool2dCuda);
KILN_REGISTER_TACTIC("cuda", "Pool", cuk::PoolCuda);
}  // namespace kiln

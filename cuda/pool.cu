// Pooling for the "cuda" backend, matching native/cpu/pool.cc: kind 'Pool' over the spatial dims of
// [N, C, spatial...] (up to 8 spatial dims), mode 'max' (optional int64 indices output, row- or
// column-major per storage_order), 'avg' (count_include_pad) and 'lp'. kernel/strides/dilations/pads
// come resolved from TS. float32/float16 (sums in double, as the CPU), max also on int32/int64 and on
// int8/uint8 (int8 engines pool quantized values: src/passes/int8-pool.ts).
// With attribute `channels_last` 1 (src/passes/layout-assignment.ts) X and Y are stored [N, spatial...,
// C] (no Indices output): consecutive threads take consecutive channels of one output position, so a
// warp's loads of each tap are contiguous. One variant (cuda.pool): one thread per output element
// walking its window.
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
KILN_REGISTER_TACTIC("cuda", "Pool", cuk::PoolCuda);
}  // namespace kiln

// Pooling over the spatial dims of [N, C, spatial...] (1-D, 2-D, 3-D and beyond). Kind 'Pool', attr
// `mode`: 'max' (optional output 1: the int64 index of each maximum in the flattened input, row-major,
// or with `storage_order` 1 column-major over the spatial dims), 'avg' (`count_include_pad`: divide by
// the window clipped to the padded input instead of by the valid elements), 'lp' ((Σ|x|^p)^(1/p),
// padding counts as 0). Attrs `kernel`, `strides`, `dilations`, `pads` (begins then ends) are fully
// resolved by TS (auto_pad, ceil_mode); the output's spatial shape comes from the output tensor.
// Global pools are this kind with the kernel covering the whole spatial extent. With attribute
// `channels_last` 1 (src/passes/layout-assignment.ts) X and Y are stored [N, spatial..., C] instead
// (no Indices output then): a plane is then the channel's elements C apart.
// Variants: the reference (serial), 'cpu.pool.mt' (the same per-plane code, threaded over N*C),
// 'cpu.pool.2d' (float32 2-D max/avg without Indices: per output row, each kernel tap is one pass over
// the valid output range, which vectorizes; threaded over N*C) and 'cpu.pool.nhwc' (float32 2-D max/avg
// channels-last: per output position, each tap inside the input is one pass over the contiguous
// channels; threaded over the output positions).
#include <algorithm>
#include <limits>

#include "kernel_util.h"

namespace kiln {
namespace {

enum class Mode { Max, Avg, Lp };

struct PoolState : LayerState {
  Mode mode;
  int nd;
  std::vector<int64_t> k, s, d, pb, pe, in, out;
  bool include_pad, col_major, channels_last;
  double p;
  int64_t in_plane = 1, out_plane = 1, kcount = 1;
  int64_t N = 1, C = 1;
};

bool channels_last(const LayerInfo& L) { return L.op->i("channels_last", 0) != 0; }

std::unique_ptr<LayerState> make_state(const LayerInfo& L) {
  auto st = std::make_unique<PoolState>();
  const std::string& m = L.op->s("mode");
  st->mode = m == "max" ? Mode::Max : m == "avg" ? Mode::Avg : m == "lp" ? Mode::Lp
             : (fail("INTERNAL", "layer '" + L.op->name + "': unknown Pool mode '" + m + "'"), Mode::Max);
  const Shape& xs = L.in[0]->shape;
  const Shape& ys = L.out[0]->shape;
  st->channels_last = channels_last(L);
  // the channel axis and the first spatial axis of the stored shapes
  const size_t ca = st->channels_last ? xs.size() - 1 : 1, sa = st->channels_last ? 1 : 2;
  if (xs.size() < 3 || ys.size() != xs.size() || ys[0] != xs[0] || ys[ca] != xs[ca])
    fail("INTERNAL", "layer '" + L.op->name + "': pool shapes " + shape_str(xs) + " → " + shape_str(ys) + " do not match");
  if (st->channels_last && L.out.size() > 1 && L.out[1]) fail("INTERNAL", "layer '" + L.op->name + "': a channels_last pool has no Indices output");
  st->N = xs[0];
  st->C = xs[ca];
  st->nd = static_cast<int>(xs.size()) - 2;
  st->k = L.op->ints("kernel");
  st->s = L.op->ints("strides");
  st->d = L.op->ints("dilations");
  const auto& pads = L.op->ints("pads");
  size_t nd = st->nd;
  if (st->k.size() != nd || st->s.size() != nd || st->d.size() != nd || pads.size() != 2 * nd)
    fail("INTERNAL", "layer '" + L.op->name + "': pool attributes do not match the spatial rank");
  st->pb.assign(pads.begin(), pads.begin() + nd);
  st->pe.assign(pads.begin() + nd, pads.end());
  for (size_t i = 0; i < nd; ++i) {
    st->in.push_back(xs[i + sa]);
    st->out.push_back(ys[i + sa]);
    st->in_plane *= xs[i + sa];
    st->out_plane *= ys[i + sa];
    st->kcount *= st->k[i];
    if (st->k[i] <= 0 || st->s[i] <= 0 || st->d[i] <= 0) fail("INTERNAL", "layer '" + L.op->name + "': bad pool kernel/stride/dilation");
  }
  if (nd > 8) fail("UNSUPPORTED", "layer '" + L.op->name + "': pools of more than 8 spatial dims");
  st->include_pad = L.op->i("count_include_pad", 0) != 0;
  st->col_major = L.op->i("storage_order", 0) != 0;
  st->p = L.op->f("p", 2.0);
  return st;
}

// One [N, C] plane: x has in_plane elements, y out_plane, each `es` apart (1, or C channels-last);
// idx (may be null) gets the max positions, offset by `base` (the plane's first element in the
// flattened input).
template <typename T>
void pool_plane(const PoolState& st, const T* x, T* y, int64_t es, int64_t* idx, int64_t base) {
  using C = compute_t<T>;
  int nd = st.nd;
  int64_t o[8] = {}, kk[8] = {}, pos[8];
  int64_t rstr[8], cstr[8];  // row- and column-major strides of the input plane
  int64_t m = 1;
  for (int i = nd - 1; i >= 0; --i) rstr[i] = m, m *= st.in[i];
  m = 1;
  for (int i = 0; i < nd; ++i) cstr[i] = m, m *= st.in[i];
  for (int64_t oi = 0; oi < st.out_plane; ++oi) {
    C best = std::numeric_limits<C>::lowest();
    if constexpr (std::is_floating_point_v<C>) best = -std::numeric_limits<C>::infinity();
    int64_t best_at = -1;
    double sum = 0;
    int64_t valid = 0, padded = 1;
    // the window clipped to the padded input [-pb, in + pe): its size is the count_include_pad divisor
    for (int i = 0; i < nd; ++i) {
      int64_t start = o[i] * st.s[i] - st.pb[i];
      int64_t n = 0;
      for (int64_t j = 0; j < st.k[i]; ++j) {
        int64_t p = start + j * st.d[i];
        if (p >= -st.pb[i] && p < st.in[i] + st.pe[i]) ++n;
      }
      padded *= n;
    }
    std::fill(kk, kk + nd, 0);
    for (int64_t ki = 0; ki < st.kcount; ++ki) {
      bool inside = true;
      int64_t off = 0, coff = 0;
      for (int i = 0; i < nd; ++i) {
        pos[i] = o[i] * st.s[i] - st.pb[i] + kk[i] * st.d[i];
        if (pos[i] < 0 || pos[i] >= st.in[i]) inside = false;
        off += pos[i] * rstr[i];
        coff += pos[i] * cstr[i];
      }
      if (inside) {
        C v = load(x[off * es]);
        ++valid;
        switch (st.mode) {
          case Mode::Max:
            if (best_at < 0 || v > best) best = v, best_at = st.col_major ? coff : off;
            break;
          case Mode::Avg: sum += static_cast<double>(v); break;
          case Mode::Lp: sum += std::pow(std::abs(static_cast<double>(v)), st.p); break;
        }
      }
      for (int i = nd - 1; i >= 0; --i) {
        if (++kk[i] < st.k[i]) break;
        kk[i] = 0;
      }
    }
    switch (st.mode) {
      case Mode::Max:
        store(y[oi * es], best);
        if (idx) idx[oi] = base + std::max<int64_t>(best_at, 0);
        break;
      case Mode::Avg: {
        int64_t div = st.include_pad ? padded : valid;
        store(y[oi * es], div ? sum / static_cast<double>(div) : 0.0);
        break;
      }
      case Mode::Lp: store(y[oi * es], std::pow(sum, 1.0 / st.p)); break;
    }
    for (int i = nd - 1; i >= 0; --i) {
      if (++o[i] < st.out[i]) break;
      o[i] = 0;
    }
  }
}

void run_pool(const LayerInfo& L, const PoolState& st, const Tensor* in, Tensor* out, ThreadPool* pool) {
  int64_t planes = st.N * st.C;
  int64_t* idx = L.out.size() > 1 && L.out[1] && out[1].data ? out[1].as<int64_t>() : nullptr;
  auto go = [&]<typename T>() {
    const T* x = in[0].as<T>();
    T* y = out[0].as<T>();
    auto body = [&](int64_t b, int64_t e) {
      for (int64_t pl = b; pl < e; ++pl) {
        if (st.channels_last) {  // plane (n, c) starts at element c of image n
          int64_t n = pl / st.C, c = pl % st.C;
          pool_plane<T>(st, x + n * st.in_plane * st.C + c, y + n * st.out_plane * st.C + c, st.C, nullptr, 0);
        } else {
          pool_plane<T>(st, x + pl * st.in_plane, y + pl * st.out_plane, 1, idx ? idx + pl * st.out_plane : nullptr, pl * st.in_plane);
        }
      }
    };
    if (pool) pool->parallel_for(planes, grain_for(st.out_plane * st.kcount), body);
    else body(0, planes);
  };
  if (st.mode == Mode::Max) dispatch_numeric(in[0].dtype, L, go);
  else dispatch_float(in[0].dtype, L, go);
}

class PoolRef : public Tactic {
 public:
  const char* name() const override { return "cpu.pool"; }
  bool reference() const override { return true; }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override { return make_state(L); }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext&) const override {
    run_pool(L, *static_cast<PoolState*>(s), in, out, nullptr);
  }
};

class PoolMT : public Tactic {
 public:
  const char* name() const override { return "cpu.pool.mt"; }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override { return make_state(L); }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    run_pool(L, *static_cast<PoolState*>(s), in, out, ctx.pool);
  }
};

struct Pool2DState : PoolState {
  std::vector<float> div;  // avg: the divisor of each output position of a plane
};

// One plane of the 2-D pool. Each output row starts at the identity (-inf or 0); every kernel tap
// then folds its input row into the output positions whose sample is inside the input, so the inner
// loop has no branches. S is the width stride when it is 1 or 2 (constant strides let the compiler
// vectorize the loads), 0 for any other (read from st).
template <bool Max, int S>
void pool2d_plane(const Pool2DState& st, const float* x, float* y) {
  const int64_t H = st.in[0], W = st.in[1], OH = st.out[0], OW = st.out[1];
  const int64_t sw = S ? S : st.s[1];
  for (int64_t oy = 0; oy < OH; ++oy) {
    float* yr = y + oy * OW;
    std::fill(yr, yr + OW, Max ? -std::numeric_limits<float>::infinity() : 0.f);
    for (int64_t ky = 0; ky < st.k[0]; ++ky) {
      int64_t iy = oy * st.s[0] - st.pb[0] + ky * st.d[0];
      if (iy < 0 || iy >= H) continue;
      const float* xr = x + iy * W;
      for (int64_t kx = 0; kx < st.k[1]; ++kx) {
        int64_t base = kx * st.d[1] - st.pb[1], lo, hi;
        valid_range(base, sw, W, OW, lo, hi);
        const float* xs = xr + base;
        for (int64_t ox = lo; ox < hi; ++ox) {
          float v = xs[ox * sw];
          if constexpr (Max) yr[ox] = v > yr[ox] ? v : yr[ox];
          else yr[ox] += v;
        }
      }
    }
    if constexpr (!Max) {
      const float* dr = st.div.data() + oy * OW;
      for (int64_t ox = 0; ox < OW; ++ox) yr[ox] = dr[ox] != 0.f ? yr[ox] / dr[ox] : 0.f;
    }
  }
}

class Pool2D : public Tactic {
 public:
  const char* name() const override { return "cpu.pool.2d"; }
  bool can_implement(const LayerInfo& L) const override {
    const std::string& m = L.op->s("mode");
    bool indices = L.out.size() > 1 && L.out[1];
    return (m == "max" || m == "avg") && !indices && !channels_last(L) && L.in[0]->shape.size() == 4 && L.in[0]->dtype == DType::F32 &&
           L.out[0]->dtype == DType::F32;
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto base = make_state(L);
    auto st = std::make_unique<Pool2DState>();
    static_cast<PoolState&>(*st) = static_cast<PoolState&>(*base);
    if (st->mode == Mode::Avg) {
      // per axis: the taps inside the input, and (count_include_pad) those inside the padded input
      auto counts = [&](int a) {
        std::vector<int64_t> c(st->out[a]);
        for (int64_t o = 0; o < st->out[a]; ++o)
          for (int64_t j = 0; j < st->k[a]; ++j) {
            int64_t p = o * st->s[a] - st->pb[a] + j * st->d[a];
            c[o] += st->include_pad ? (p >= -st->pb[a] && p < st->in[a] + st->pe[a]) : (p >= 0 && p < st->in[a]);
          }
        return c;
      };
      auto cy = counts(0), cx = counts(1);
      st->div.resize(st->out_plane);
      for (int64_t oy = 0; oy < st->out[0]; ++oy)
        for (int64_t ox = 0; ox < st->out[1]; ++ox) st->div[oy * st->out[1] + ox] = static_cast<float>(cy[oy] * cx[ox]);
    }
    return st;
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const auto& st = *static_cast<Pool2DState*>(s);
    bool max = st.mode == Mode::Max;
    int64_t sw = st.s[1];
    auto plane = max ? (sw == 1 ? pool2d_plane<true, 1> : sw == 2 ? pool2d_plane<true, 2> : pool2d_plane<true, 0>)
                     : (sw == 1 ? pool2d_plane<false, 1> : sw == 2 ? pool2d_plane<false, 2> : pool2d_plane<false, 0>);
    const float* x = in[0].as<float>();
    float* y = out[0].as<float>();
    ctx.pool->parallel_for(in[0].shape[0] * in[0].shape[1], grain_for(st.out_plane * st.kcount), [&](int64_t b, int64_t e) {
      for (int64_t pl = b; pl < e; ++pl) plane(st, x + pl * st.in_plane, y + pl * st.out_plane);
    });
  }
};

class PoolNhwc : public Tactic {
 public:
  const char* name() const override { return "cpu.pool.nhwc"; }
  bool can_implement(const LayerInfo& L) const override {
    const std::string& m = L.op->s("mode");
    return (m == "max" || m == "avg") && channels_last(L) && L.in[0]->shape.size() == 4 && L.in[0]->dtype == DType::F32 &&
           L.out[0]->dtype == DType::F32;
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override { return make_state(L); }
  void run(const LayerInfo&, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const auto& st = *static_cast<PoolState*>(s);
    const bool max = st.mode == Mode::Max;
    const int64_t C = st.C, H = st.in[0], W = st.in[1], OH = st.out[0], OW = st.out[1];
    const float* X = in[0].as<float>();
    float* Y = out[0].as<float>();
    ctx.pool->parallel_for(st.N * st.out_plane, grain_for(st.kcount * C), [&](int64_t b, int64_t e) {
      for (int64_t q = b; q < e; ++q) {
        int64_t n = q / st.out_plane, oy = q / OW % OH, ox = q % OW;
        float* y = Y + q * C;
        std::fill(y, y + C, max ? -std::numeric_limits<float>::infinity() : 0.f);
        int64_t valid = 0, py = 0, px = 0;  // taps inside the input; inside the padded input per axis
        for (int64_t ky = 0; ky < st.k[0]; ++ky) {
          int64_t iy = oy * st.s[0] - st.pb[0] + ky * st.d[0];
          py += iy >= -st.pb[0] && iy < H + st.pe[0];
          if (iy < 0 || iy >= H) continue;
          for (int64_t kx = 0; kx < st.k[1]; ++kx) {
            int64_t ix = ox * st.s[1] - st.pb[1] + kx * st.d[1];
            if (ix < 0 || ix >= W) continue;
            ++valid;
            const float* x = X + ((n * H + iy) * W + ix) * C;
            if (max)
              for (int64_t c = 0; c < C; ++c) y[c] = x[c] > y[c] ? x[c] : y[c];
            else
              for (int64_t c = 0; c < C; ++c) y[c] += x[c];
          }
        }
        if (max) continue;
        for (int64_t kx = 0; kx < st.k[1]; ++kx) {
          int64_t ix = ox * st.s[1] - st.pb[1] + kx * st.d[1];
          px += ix >= -st.pb[1] && ix < W + st.pe[1];
        }
        int64_t div = st.include_pad ? py * px : valid;
        float inv = div ? 1.f / static_cast<float>(div) : 0.f;
        for (int64_t c = 0; c < C; ++c) y[c] *= inv;
      }
    });
  }
};

}  // namespace
KILN_REGISTER_TACTIC("cpu", "Pool", PoolRef);
KILN_REGISTER_TACTIC("cpu", "Pool", PoolMT);
KILN_REGISTER_TACTIC("cpu", "Pool", Pool2D);
KILN_REGISTER_TACTIC("cpu", "Pool", PoolNhwc);
}  // namespace kiln

// GridSample: samples X (N, C, D1..Dr) at the normalized positions of grid (N, O1..Or, r), giving
// Y (N, C, O1..Or). Kind 'GridSample'; attrs (resolved by TS): `mode` (nearest, linear, cubic),
// `padding` (zeros, border, reflection), `align_corners` (0/1). The grid's vector lists coordinates
// innermost dimension first (x = width). Per output point each spatial axis gets its taps (1 for
// nearest, 2 for linear, 4 for cubic with the Keys kernel, a = -0.75): the coordinate is
// denormalized, nearest rounds half to even, a coordinate outside the borders is clamped (border) or
// reflected (reflection); each tap's index is then zeroed (zeros: weight on a zero pixel), clamped
// (border) or reflected (reflection). The value is the sum over the product of the axes' taps.
// X and grid: float32, float64, float16, bfloat16 (independently).
// Variants: the reference (serial) and 'cpu.gridsample.mt' (the same code threaded over N*C).
#include <algorithm>
#include <cmath>

#include "kernel_util.h"

namespace kiln {
namespace {

constexpr int kMaxRank = 8;
enum class Mode { Nearest, Linear, Cubic };
enum class Pad { Zeros, Border, Reflection };

struct Params {
  Mode mode = Mode::Linear;
  Pad pad = Pad::Zeros;
  bool align = false;
  int r = 0;                 // spatial rank
  int64_t N = 0, C = 0;
  int64_t in_dims[kMaxRank] = {};
  int64_t in_strides[kMaxRank] = {};
  int64_t in_size = 0, out_size = 0;  // spatial element counts
};

// Reflects x into [lo, hi] by the near border until inside.
double reflect(double x, double lo, double hi) {
  double range = hi - lo;
  if (!(range > 0)) return lo;
  if (x < lo) {
    double dx = lo - x;
    double n = std::floor(dx / range);
    double rem = dx - n * range;
    return std::fmod(n, 2.0) == 0 ? lo + rem : hi - rem;
  }
  if (x > hi) {
    double dx = x - hi;
    double n = std::floor(dx / range);
    double rem = dx - n * range;
    return std::fmod(n, 2.0) == 0 ? hi - rem : lo + rem;
  }
  return x;
}

void cubic_coeffs(double t, double* w) {
  const double A = -0.75;
  auto near = [&](double s) { return ((A + 2) * s - (A + 3)) * s * s + 1; };          // |s| <= 1
  auto far = [&](double s) { return ((A * s - 5 * A) * s + 8 * A) * s - 4 * A; };  // 1 < |s| < 2
  w[0] = far(t + 1);
  w[1] = near(t);
  w[2] = near(1 - t);
  w[3] = far(2 - t);
}

struct Taps {
  int k = 1;
  int64_t idx[4];  // -1: a zero pixel (zeros padding)
  double w[4];
};

// The taps of one axis of length L for the normalized coordinate v.
Taps axis_taps(const Params& p, double v, int64_t L) {
  double Ld = static_cast<double>(L);
  double x = p.align ? (v + 1) / 2 * (Ld - 1) : ((v + 1) * Ld - 1) / 2;
  if (p.mode == Mode::Nearest) x = std::nearbyint(x);  // default rounding: half to even
  double lo = p.align ? 0.0 : -0.5, hi = p.align ? Ld - 1 : Ld - 0.5;
  if (x < lo || x > hi) {
    if (p.pad == Pad::Border) x = std::clamp(x, 0.0, Ld - 1);
    else if (p.pad == Pad::Reflection) x = reflect(x, lo, hi);
  }
  // Far outside (or NaN): every tap is out of range anyway; keep the integer conversions defined.
  if (!(x >= -Ld - 8)) x = -Ld - 8;
  if (!(x <= 2 * Ld + 8)) x = 2 * Ld + 8;
  Taps t;
  int64_t first;
  if (p.mode == Mode::Nearest) {
    t.k = 1;
    first = static_cast<int64_t>(x);  // truncation, as the ONNX reference casts
    t.w[0] = 1;
  } else {
    double f = std::floor(x), frac = x - f;
    if (p.mode == Mode::Linear) {
      t.k = 2;
      first = static_cast<int64_t>(f);
      t.w[0] = 1 - frac;
      t.w[1] = frac;
    } else {
      t.k = 4;
      first = static_cast<int64_t>(f) - 1;
      cubic_coeffs(frac, t.w);
    }
  }
  for (int j = 0; j < t.k; ++j) {
    int64_t i = first + j;
    if (i < 0 || i >= L) {
      if (p.pad == Pad::Zeros) i = -1;
      else if (p.pad == Pad::Border) i = std::clamp<int64_t>(i, 0, L - 1);
      else i = std::clamp<int64_t>(static_cast<int64_t>(reflect(static_cast<double>(i), lo, hi)), 0, L - 1);
    }
    t.idx[j] = i;
  }
  return t;
}

// Output planes [b, e) of the N*C planes.
template <typename T, typename G>
void sample_range(const Params& p, const T* x, const G* grid, T* y, int64_t b, int64_t e) {
  const int r = p.r;
  Taps taps[kMaxRank];
  int k[kMaxRank];
  for (int64_t nc = b; nc < e; ++nc) {
    int64_t n = nc / p.C;
    const T* xp = x + nc * p.in_size;
    T* yp = y + nc * p.out_size;
    const G* gp = grid + n * p.out_size * r;
    for (int64_t o = 0; o < p.out_size; ++o) {
      const G* gv = gp + o * r;
      for (int d = 0; d < r; ++d) taps[d] = axis_taps(p, static_cast<double>(load(gv[r - 1 - d])), p.in_dims[d]);
      double acc = 0;
      for (int d = 0; d < r; ++d) k[d] = 0;
      for (;;) {
        double w = 1;
        int64_t off = 0;
        bool zero = false;
        for (int d = 0; d < r; ++d) {
          int64_t i = taps[d].idx[k[d]];
          if (i < 0) zero = true;
          off += i * p.in_strides[d];
          w *= taps[d].w[k[d]];
        }
        if (!zero) acc += w * static_cast<double>(load(xp[off]));
        int d = r - 1;
        for (; d >= 0; --d) {
          if (++k[d] < taps[d].k) break;
          k[d] = 0;
        }
        if (d < 0) break;
      }
      store(yp[o], acc);
    }
  }
}

Params make_params(const LayerInfo& L, const Tensor* in, const Tensor* out) {
  const std::string where = "layer '" + L.op->name + "': GridSample ";
  const Shape& xs = in[0].shape;
  const Shape& gs = in[1].shape;
  const Shape& ys = out[0].shape;
  Params p;
  const std::string& mode = L.op->s("mode");
  const std::string& pad = L.op->s("padding");
  if (mode == "nearest") p.mode = Mode::Nearest;
  else if (mode == "linear") p.mode = Mode::Linear;
  else if (mode == "cubic") p.mode = Mode::Cubic;
  else fail("INTERNAL", where + "mode '" + mode + "' is unknown");
  if (pad == "zeros") p.pad = Pad::Zeros;
  else if (pad == "border") p.pad = Pad::Border;
  else if (pad == "reflection") p.pad = Pad::Reflection;
  else fail("INTERNAL", where + "padding '" + pad + "' is unknown");
  p.align = L.op->i("align_corners") != 0;
  if (xs.size() < 3 || xs.size() - 2 > static_cast<size_t>(kMaxRank))
    fail("UNSUPPORTED", where + "needs X of rank 3 to " + std::to_string(kMaxRank + 2) + ", got " + std::to_string(xs.size()));
  p.r = static_cast<int>(xs.size()) - 2;
  if (gs.size() != xs.size() || ys.size() != xs.size() || gs[0] != xs[0] || gs.back() != p.r || ys[0] != xs[0] || ys[1] != xs[1])
    fail("INVALID_INPUT", where + "shapes do not match: X " + shape_str(xs) + ", grid " + shape_str(gs) + ", Y " + shape_str(ys));
  p.N = xs[0];
  p.C = xs[1];
  p.in_size = 1;
  p.out_size = 1;
  for (int d = p.r - 1; d >= 0; --d) {
    p.in_dims[d] = xs[d + 2];
    p.in_strides[d] = p.in_size;
    p.in_size *= xs[d + 2];
    if (gs[d + 1] != ys[d + 2])
      fail("INVALID_INPUT", where + "grid " + shape_str(gs) + " does not match Y " + shape_str(ys));
    p.out_size *= ys[d + 2];
  }
  if (p.in_size == 0 && numel(ys) != 0) fail("INVALID_INPUT", where + "cannot sample an empty X " + shape_str(xs));
  return p;
}

void run_grid_sample(const LayerInfo& L, const Tensor* in, Tensor* out, ThreadPool* pool) {
  if (out[0].numel() == 0) return;
  Params p = make_params(L, in, out);
  dispatch_float(in[0].dtype, L, [&]<typename T>() {
    dispatch_float(in[1].dtype, L, [&]<typename G>() {
      const T* x = in[0].as<T>();
      const G* g = in[1].as<G>();
      T* y = out[0].as<T>();
      int64_t planes = p.N * p.C;
      if (pool) pool->parallel_for(planes, grain_for(p.out_size * 16), [&](int64_t b, int64_t e) { sample_range<T, G>(p, x, g, y, b, e); });
      else sample_range<T, G>(p, x, g, y, 0, planes);
    });
  });
}

class GridSampleRef : public Tactic {
 public:
  const char* name() const override { return "cpu.gridsample"; }
  bool reference() const override { return true; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext&) const override {
    run_grid_sample(L, in, out, nullptr);
  }
};

class GridSampleMT : public Tactic {
 public:
  const char* name() const override { return "cpu.gridsample.mt"; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    run_grid_sample(L, in, out, ctx.pool);
  }
};

}  // namespace
KILN_REGISTER_TACTIC("cpu", "GridSample", GridSampleRef);
KILN_REGISTER_TACTIC("cpu", "GridSample", GridSampleMT);
}  // namespace kiln

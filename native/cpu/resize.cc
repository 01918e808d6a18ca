// Resize: N-D nearest / linear / cubic interpolation, separable per axis. Kind 'Resize'; attrs (all
// resolved by TS): `mode`, `coord` (the coordinate transformation: half_pixel, half_pixel_symmetric,
// pytorch_half_pixel, align_corners, asymmetric, tf_half_pixel_for_nn, tf_crop_and_resize),
// `nearest` (round_prefer_floor/ceil, floor, ceil), `cubic_a`, `exclude_outside`, `extrapolation`,
// `antialias`, `scales` and `lengths` (the resized length as a real number) per axis, and `roi`
// (starts then ends, one per axis). The output shape comes from the output tensor. prepare() turns
// each axis into a table of taps (input index, weight) per output coordinate; an output element is
// the sum over the product of its axes' taps, or the extrapolation value when tf_crop_and_resize
// maps it outside the input.
// Variants: the reference (serial) and 'cpu.resize.mt' (the same per-element code, threaded).
#include <algorithm>

#include "kernel_util.h"

namespace kiln {
namespace {

constexpr int kMaxRank = 8;

struct Axis {
  std::vector<int64_t> start;  // per output coord: first tap in idx/w
  std::vector<int64_t> idx;
  std::vector<double> w;
  std::vector<uint8_t> outside;  // tf_crop_and_resize: coordinate outside the input
};

struct ResizeState : LayerState {
  std::vector<Axis> axes;
  std::vector<int64_t> in_strides;
  double extrapolation = 0;
};

double cubic(double x, double a) {
  x = std::abs(x);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

std::unique_ptr<LayerState> make_state(const LayerInfo& L) {
  auto st = std::make_unique<ResizeState>();
  const Shape& xs = L.in[0]->shape;
  const Shape& ys = L.out[0]->shape;
  size_t rank = xs.size();
  const std::string& mode = L.op->s("mode");
  const std::string& coord = L.op->s("coord");
  const std::string& nearest = L.op->s("nearest");
  double A = L.op->f("cubic_a");
  bool exclude = L.op->i("exclude_outside") != 0, antialias = L.op->i("antialias") != 0;
  const auto& scales = L.op->floats("scales");
  const auto& roi = L.op->floats("roi");
  const auto& lengths = L.op->floats("lengths");
  st->extrapolation = L.op->f("extrapolation");
  if (ys.size() != rank || scales.size() != rank || lengths.size() != rank || roi.size() != 2 * rank)
    fail("INTERNAL", "layer '" + L.op->name + "': Resize attributes do not match rank " + std::to_string(rank));
  if (rank > kMaxRank) fail("UNSUPPORTED", "layer '" + L.op->name + "': Resize of rank > 8");
  if (numel(xs) == 0 && numel(ys) != 0) fail("INVALID_INPUT", "layer '" + L.op->name + "': cannot resize an empty tensor to a non-empty one");
  st->in_strides = strides_of(xs);
  for (size_t a = 0; a < rank; ++a) {
    Axis ax;
    int64_t in = xs[a], out = ys[a];
    double scale = scales[a], len = lengths[a];
    if (in == 0) out = 0;  // the output is empty too (checked above); no taps to build
    for (int64_t o = 0; o < out; ++o) {
      double x;  // the coordinate in the input
      if (coord == "half_pixel") x = (o + 0.5) / scale - 0.5;
      else if (coord == "half_pixel_symmetric") {
        double adj = static_cast<double>(out) / (scale * static_cast<double>(in));
        double center = static_cast<double>(in) / 2;
        x = center * (1 - adj) + (o + 0.5) / scale - 0.5;
      } else if (coord == "pytorch_half_pixel") x = len > 1 ? (o + 0.5) / scale - 0.5 : 0;
      else if (coord == "align_corners") x = len == 1 ? 0 : static_cast<double>(o) * (in - 1) / (len - 1);
      else if (coord == "asymmetric") x = o / scale;
      else if (coord == "tf_half_pixel_for_nn") x = (o + 0.5) / scale;
      else if (coord == "tf_crop_and_resize") {
        double s = roi[a], e = roi[a + rank];
        x = len > 1 ? s * (in - 1) + o * (e - s) * (in - 1) / (len - 1) : 0.5 * (s + e) * (in - 1);
      } else fail("INTERNAL", "layer '" + L.op->name + "': unknown coordinate transformation '" + coord + "'");
      ax.start.push_back(static_cast<int64_t>(ax.idx.size()));
      ax.outside.push_back(coord == "tf_crop_and_resize" && (x < 0 || x > in - 1));
      auto clampi = [&](int64_t i) { return std::clamp<int64_t>(i, 0, in - 1); };
      if (mode == "nearest") {
        double f = std::floor(x), frac = x - f;
        int64_t i;
        if (nearest == "floor") i = static_cast<int64_t>(f);
        else if (nearest == "ceil") i = static_cast<int64_t>(std::ceil(x));
        else if (nearest == "round_prefer_ceil") i = static_cast<int64_t>(frac >= 0.5 ? f + 1 : f);
        else i = static_cast<int64_t>(frac > 0.5 ? f + 1 : f);
        ax.idx.push_back(clampi(i));
        ax.w.push_back(1.0);
        continue;
      }
      // linear / cubic: taps at floor(x) + j, j in [j0, 1 - j0 + (cubic ? 1 : 0)], the filter stretched by
      // 1/scale when antialiasing a downsample; weights normalized to sum 1
      bool cub = mode == "cubic";
      double s = antialias && scale < 1 ? scale : 1.0;
      double support = cub ? 2.0 : 1.0;
      int64_t x0 = static_cast<int64_t>(std::floor(x));
      double t = x - static_cast<double>(x0);
      int64_t j0 = static_cast<int64_t>(std::floor(-support / s)) + 1, j1 = 2 - j0;
      size_t first = ax.idx.size();
      double sum = 0;
      for (int64_t j = j0; j < j1; ++j) {
        double d = s * (static_cast<double>(j) - t);
        double w = cub ? cubic(d, A) : std::max(0.0, 1.0 - std::abs(d));
        int64_t i = x0 + j;
        if (exclude && (i < 0 || i >= in)) w = 0;
        ax.idx.push_back(clampi(i));
        ax.w.push_back(w);
        sum += w;
      }
      for (size_t k = first; k < ax.w.size(); ++k) ax.w[k] = sum != 0 ? ax.w[k] / sum : 0;
    }
    ax.start.push_back(static_cast<int64_t>(ax.idx.size()));
    st->axes.push_back(std::move(ax));
  }
  return st;
}

template <typename T>
void resize_range(const ResizeState& st, const Shape& ys, const T* x, T* y, int64_t b, int64_t e) {
  int rank = static_cast<int>(ys.size());
  int64_t o[kMaxRank] = {}, lo[kMaxRank], hi[kMaxRank], k[kMaxRank];
  int64_t t = b;
  for (int d = rank - 1; d >= 0; --d) {
    o[d] = t % ys[d];
    t /= ys[d];
  }
  for (int64_t i = b; i < e; ++i) {
    bool outside = false;
    for (int d = 0; d < rank; ++d) {
      const Axis& ax = st.axes[d];
      lo[d] = ax.start[o[d]];
      hi[d] = ax.start[o[d] + 1];
      k[d] = lo[d];
      outside |= ax.outside[o[d]] != 0;
    }
    if (outside) store(y[i], st.extrapolation);
    else {
      double acc = 0;
      for (;;) {
        double w = 1;
        int64_t off = 0;
        for (int d = 0; d < rank; ++d) {
          w *= st.axes[d].w[k[d]];
          off += st.axes[d].idx[k[d]] * st.in_strides[d];
        }
        if (w != 0) acc += w * static_cast<double>(load(x[off]));
        int d = rank - 1;
        for (; d >= 0; --d) {
          if (++k[d] < hi[d]) break;
          k[d] = lo[d];
        }
        if (d < 0) break;
      }
      if constexpr (std::is_integral_v<T>) y[i] = static_cast<T>(std::nearbyint(acc));
      else store(y[i], acc);
    }
    for (int d = rank - 1; d >= 0; --d) {
      if (++o[d] < ys[d]) break;
      o[d] = 0;
    }
  }
}

void run_resize(const LayerInfo& L, const ResizeState& st, const Tensor* in, Tensor* out, ThreadPool* pool) {
  int64_t n = out[0].numel();
  if (n == 0) return;
  dispatch_numeric(in[0].dtype, L, [&]<typename T>() {
    const T* x = in[0].as<T>();
    T* y = out[0].as<T>();
    if (pool) pool->parallel_for(n, 1024, [&](int64_t b, int64_t e) { resize_range<T>(st, out[0].shape, x, y, b, e); });
    else resize_range<T>(st, out[0].shape, x, y, 0, n);
  });
}

class ResizeRef : public Tactic {
 public:
  const char* name() const override { return "cpu.resize"; }
  bool reference() const override { return true; }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override { return make_state(L); }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext&) const override {
    run_resize(L, *static_cast<ResizeState*>(s), in, out, nullptr);
  }
};

class ResizeMT : public Tactic {
 public:
  const char* name() const override { return "cpu.resize.mt"; }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override { return make_state(L); }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    run_resize(L, *static_cast<ResizeState*>(s), in, out, ctx.pool);
  }
};

}  // namespace
KILN_REGISTER_TACTIC("cpu", "Resize", ResizeRef);
KILN_REGISTER_TACTIC("cpu", "Resize", ResizeMT);
}  // namespace kiln

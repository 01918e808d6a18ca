// Normalizations. Kinds:
// - 'Normalize': groups of the input (viewed with shape `view`, the same elements) reduced over
//   `axes`; attr `mode`: 'meanvar' ((x - mean) / sqrt(var + eps), or / (sqrt(var) + eps) with
//   `eps_outside`), 'rms' (x / sqrt(mean(x²) + eps)), 'l1' (x / Σ|x|), 'l2' (x / sqrt(Σx²)) (for
//   l1/l2 an all-zero group stays 0); then
//   y = ŷ * scale + bias, scale and bias broadcast (in the view's rank) from `scale_shape` and
//   `bias_shape` (empty: absent). Optional outputs 1 and 2 receive each group's mean and 1/σ in
//   group order. LayerNormalization, RMSNormalization, InstanceNormalization, GroupNormalization,
//   MeanVarianceNormalization and LpNormalization lower to it. Variants: the serial reference and
//   'cpu.normalize.mt' (the same per-group code, threaded over groups).
// - 'BatchNorm': inference-mode batch normalization with given statistics, channel axis 1.
// - 'LRN': local response normalization across channels (axis 1).
// Statistics are accumulated in double.
#include <algorithm>

#include "kernel_util.h"

namespace kiln {
namespace {

enum class Mode { MeanVar, Rms, L1, L2 };

struct NormState : LayerState {
  Mode mode;
  double eps;
  bool eps_outside;
  std::vector<int64_t> kdim, kx, ks, kb;  // kept dims: extent, strides in x, scale, bias
  std::vector<int64_t> rdim, rx, rs, rb;  // reduced dims
  int64_t groups = 1, gsize = 1;
  bool has_scale = false, has_bias = false;
};

std::vector<int64_t> bstrides(const LayerInfo& L, const std::vector<int64_t>& s, const Shape& view, const char* what) {
  if (s.size() != view.size())
    fail("INTERNAL", "layer '" + L.op->name + "': " + what + " shape rank does not match the view");
  for (size_t k = 0; k < s.size(); ++k)
    if (s[k] != 1 && s[k] != view[k])
      fail("INTERNAL", "layer '" + L.op->name + "': " + what + " shape does not broadcast to the view " + shape_str(view));
  return broadcast_strides(s, view);
}

std::unique_ptr<LayerState> make_norm_state(const LayerInfo& L) {
  auto st = std::make_unique<NormState>();
  const std::string& m = L.op->s("mode");
  st->mode = m == "meanvar" ? Mode::MeanVar : m == "rms" ? Mode::Rms : m == "l1" ? Mode::L1 : m == "l2" ? Mode::L2
             : (fail("INTERNAL", "layer '" + L.op->name + "': unknown Normalize mode '" + m + "'"), Mode::L2);
  st->eps = L.op->f("epsilon");
  st->eps_outside = L.op->i("eps_outside", 0) != 0;
  Shape view = L.op->ints("view");
  if (numel(view) != L.in[0]->numel())
    fail("INTERNAL", "layer '" + L.op->name + "': view " + shape_str(view) + " does not match " + shape_str(L.in[0]->shape));
  std::vector<int64_t> xs = strides_of(view);
  std::vector<int64_t> ss(view.size(), 0), bs(view.size(), 0);
  const auto& sshape = L.op->ints("scale_shape");
  const auto& bshape = L.op->ints("bias_shape");
  st->has_scale = L.in.size() > 1 && L.in[1] && !sshape.empty();
  st->has_bias = L.in.size() > 2 && L.in[2] && !bshape.empty();
  if (st->has_scale) {
    ss = bstrides(L, sshape, view, "scale");
    if (numel(sshape) != L.in[1]->numel()) fail("INTERNAL", "layer '" + L.op->name + "': scale size mismatch");
  }
  if (st->has_bias) {
    bs = bstrides(L, bshape, view, "bias");
    if (numel(bshape) != L.in[2]->numel()) fail("INTERNAL", "layer '" + L.op->name + "': bias size mismatch");
  }
  std::vector<bool> red(view.size(), false);
  for (int64_t a : L.op->ints("axes")) {
    if (a < 0 || a >= static_cast<int64_t>(view.size())) fail("INTERNAL", "layer '" + L.op->name + "': axis out of range");
    red[a] = true;
  }
  for (size_t k = 0; k < view.size(); ++k) {
    (red[k] ? st->rdim : st->kdim).push_back(view[k]);
    (red[k] ? st->rx : st->kx).push_back(xs[k]);
    (red[k] ? st->rs : st->ks).push_back(ss[k]);
    (red[k] ? st->rb : st->kb).push_back(bs[k]);
    (red[k] ? st->gsize : st->groups) *= view[k];
  }
  if (st->rdim.size() > 16) fail("UNSUPPORTED", "layer '" + L.op->name + "': more than 16 normalized axes");
  return st;
}

// Normalizes group g. sc/bi are the scale and bias as double (nullptr when absent).
template <typename T>
void norm_group(const NormState& st, int64_t g, const T* x, T* y, const double* sc, const double* bi, double& mean_out,
                double& inv_out) {
  int64_t xo = 0, so = 0, bo = 0, t = g;
  for (int k = static_cast<int>(st.kdim.size()) - 1; k >= 0; --k) {
    int64_t i = t % st.kdim[k];
    t /= st.kdim[k];
    xo += i * st.kx[k];
    so += i * st.ks[k];
    bo += i * st.kb[k];
  }
  int nr = static_cast<int>(st.rdim.size());
  // Walks the group's elements: f(x offset, scale offset, bias offset).
  auto walk = [&](auto f) {
    if (st.gsize == 0) return;
    int64_t idx[16] = {};
    int64_t a = xo, b = so, c = bo;
    for (int64_t n = 0; n < st.gsize; ++n) {
      f(a, b, c);
      for (int k = nr - 1; k >= 0; --k) {
        if (++idx[k] < st.rdim[k]) {
          a += st.rx[k], b += st.rs[k], c += st.rb[k];
          break;
        }
        a -= (st.rdim[k] - 1) * st.rx[k], b -= (st.rdim[k] - 1) * st.rs[k], c -= (st.rdim[k] - 1) * st.rb[k];
        idx[k] = 0;
      }
    }
  };
  double n = static_cast<double>(st.gsize), mean = 0, inv = 1;
  switch (st.mode) {
    case Mode::MeanVar: {
      double s = 0, s2 = 0;
      walk([&](int64_t a, int64_t, int64_t) { s += static_cast<double>(load(x[a])); });
      mean = s / n;
      walk([&](int64_t a, int64_t, int64_t) {
        double d = static_cast<double>(load(x[a])) - mean;
        s2 += d * d;
      });
      double var = s2 / n;
      inv = st.eps_outside ? 1.0 / (std::sqrt(var) + st.eps) : 1.0 / std::sqrt(var + st.eps);
      break;
    }
    case Mode::Rms: case Mode::L2: {
      double s2 = 0;
      walk([&](int64_t a, int64_t, int64_t) {
        double v = static_cast<double>(load(x[a]));
        s2 += v * v;
      });
      inv = st.mode == Mode::Rms ? 1.0 / std::sqrt(s2 / n + st.eps) : s2 > 0 ? 1.0 / std::sqrt(s2) : 0.0;
      break;
    }
    case Mode::L1: {
      double s1 = 0;
      walk([&](int64_t a, int64_t, int64_t) { s1 += std::abs(static_cast<double>(load(x[a]))); });
      inv = s1 > 0 ? 1.0 / s1 : 0.0;  // an all-zero group stays zero
      break;
    }
  }
  walk([&](int64_t a, int64_t b, int64_t c) {
    double v = (static_cast<double>(load(x[a])) - mean) * inv;
    if (sc) v *= sc[b];
    if (bi) v += bi[c];
    store(y[a], v);
  });
  mean_out = mean;
  inv_out = inv;
}

std::vector<double> to_double(const LayerInfo& L, const Tensor& t) {
  std::vector<double> v(t.numel());
  dispatch_numeric(t.dtype, L, [&]<typename T>() {
    const T* p = t.as<T>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(load(p[i]));
  });
  return v;
}

void store_stats(const LayerInfo& L, Tensor* out, size_t k, const std::vector<double>& v) {
  if (L.out.size() <= k || !L.out[k] || !out[k].data) return;
  dispatch_float(out[k].dtype, L, [&]<typename T>() {
    T* p = out[k].as<T>();
    int64_t n = std::min<int64_t>(out[k].numel(), static_cast<int64_t>(v.size()));
    for (int64_t i = 0; i < n; ++i) store(p[i], v[i]);
  });
}

void run_normalize(const LayerInfo& L, const NormState& st, const Tensor* in, Tensor* out, ThreadPool* pool) {
  std::vector<double> sc, bi, means(st.groups), invs(st.groups);
  if (st.has_scale) sc = to_double(L, in[1]);
  if (st.has_bias) bi = to_double(L, in[2]);
  const double* psc = st.has_scale ? sc.data() : nullptr;
  const double* pbi = st.has_bias ? bi.data() : nullptr;
  dispatch_float(in[0].dtype, L, [&]<typename T>() {
    const T* x = in[0].as<T>();
    T* y = out[0].as<T>();
    auto body = [&](int64_t b, int64_t e) {
      for (int64_t g = b; g < e; ++g) norm_group<T>(st, g, x, y, psc, pbi, means[g], invs[g]);
    };
    if (pool && st.groups > 0) pool->parallel_for(st.groups, grain_for(st.gsize * 3), body);
    else body(0, st.groups);
  });
  store_stats(L, out, 1, means);
  store_stats(L, out, 2, invs);
}

class NormalizeRef : public Tactic {
 public:
  const char* name() const override { return "cpu.normalize"; }
  bool reference() const override { return true; }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override { return make_norm_state(L); }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext&) const override {
    run_normalize(L, *static_cast<NormState*>(s), in, out, nullptr);
  }
};

class NormalizeMT : public Tactic {
 public:
  const char* name() const override { return "cpu.normalize.mt"; }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override { return make_norm_state(L); }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    run_normalize(L, *static_cast<NormState*>(s), in, out, ctx.pool);
  }
};

// BatchNormalization (inference): inputs X, scale, B, mean, var; per channel (axis 1).
class BatchNormRef : public Tactic {
 public:
  const char* name() const override { return "cpu.batchnorm"; }
  bool reference() const override { return true; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const Shape& s = in[0].shape;
    int64_t C = s.size() >= 2 ? s[1] : 1;
    int64_t inner = 1;
    for (size_t k = 2; k < s.size(); ++k) inner *= s[k];
    for (int i = 1; i < 5; ++i)
      if (in[i].numel() != C)
        fail("INVALID_INPUT", "layer '" + L.op->name + "': input " + std::to_string(i) + " has " + std::to_string(in[i].numel()) +
                                  " elements, expected one per channel (" + std::to_string(C) + ")");
    double eps = L.op->f("epsilon");
    std::vector<double> sc = to_double(L, in[1]), b = to_double(L, in[2]), m = to_double(L, in[3]), v = to_double(L, in[4]);
    std::vector<double> a(C), c(C);
    for (int64_t k = 0; k < C; ++k) {
      a[k] = sc[k] / std::sqrt(v[k] + eps);
      c[k] = b[k] - m[k] * a[k];
    }
    int64_t rows = C ? in[0].numel() / inner / 1 : 0;
    if (inner == 0 || rows == 0) return;
    dispatch_float(in[0].dtype, L, [&]<typename T>() {
      const T* x = in[0].as<T>();
      T* y = out[0].as<T>();
      ctx.pool->parallel_for(rows, grain_for(inner), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          int64_t ch = r % C;
          for (int64_t j = 0; j < inner; ++j) store(y[r * inner + j], static_cast<double>(load(x[r * inner + j])) * a[ch] + c[ch]);
        }
      });
    });
  }
};

// LRN: y = x / (bias + alpha / size * Σ x²)^beta over channels [c - (size-1)/2, c + ceil((size-1)/2)].
class LrnRef : public Tactic {
 public:
  const char* name() const override { return "cpu.lrn"; }
  bool reference() const override { return true; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext&) const override {
    const Shape& s = in[0].shape;
    if (s.size() < 2) fail("INVALID_INPUT", "layer '" + L.op->name + "': LRN needs an input of rank >= 2");
    int64_t N = s[0], C = s[1], inner = 1;
    for (size_t k = 2; k < s.size(); ++k) inner *= s[k];
    int64_t size = L.op->i("size");
    double alpha = L.op->f("alpha"), beta = L.op->f("beta"), bias = L.op->f("bias");
    int64_t lo = (size - 1) / 2, hi = size - 1 - lo;
    dispatch_float(in[0].dtype, L, [&]<typename T>() {
      const T* x = in[0].as<T>();
      T* y = out[0].as<T>();
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c)
          for (int64_t j = 0; j < inner; ++j) {
            double sum = 0;
            for (int64_t k = std::max<int64_t>(0, c - lo); k <= std::min(C - 1, c + hi); ++k) {
              double v = static_cast<double>(load(x[(n * C + k) * inner + j]));
              sum += v * v;
            }
            int64_t o = (n * C + c) * inner + j;
            store(y[o], static_cast<double>(load(x[o])) / std::pow(bias + alpha / static_cast<double>(size) * sum, beta));
          }
    });
  }
};

}  // namespace
KILN_REGISTER_TACTIC("cpu", "Normalize", NormalizeRef);
KILN_REGISTER_TACTIC("cpu", "Normalize", NormalizeMT);
KILN_REGISTER_TACTIC("cpu", "BatchNorm", BatchNormRef);
KILN_REGISTER_TACTIC("cpu", "LRN", LrnRef);
}  // namespace kiln

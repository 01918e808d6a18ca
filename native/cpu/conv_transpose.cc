// ConvTranspose: the adjoint of Conv (1-D/2-D/3-D through conv_geom.h): X [N, C, in...] and
// W [C, M/group, k...] give Y [N, M, out...], where input position i with kernel tap k lands on output
// position i * stride - pad_begin + k * dilation. The output dims come from the output tensor (TS has
// applied output_padding / output_shape / auto_pad); pads may be negative. Variants:
//   cpu.convtranspose.ref     gather loops, double accumulation, float16/bfloat16/float32/float64
//   cpu.convtranspose.col2im  float32: per image and group, Wᵀ x X with the blocked sgemm into the
//                             workspace, then col2im scatter-adds into Y (each task owns output channels)
#include <algorithm>

#include "conv_geom.h"

namespace kiln {
namespace {

struct CTState : LayerState {
  ConvGeom g;
};

std::unique_ptr<LayerState> prepare_ct(const LayerInfo& L) {
  auto st = std::make_unique<CTState>();
  st->g = conv_geom(L, true);
  return st;
}

class ConvTransposeRef : public Tactic {
 public:
  const char* name() const override { return "cpu.convtranspose.ref"; }
  bool reference() const override { return true; }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override { return prepare_ct(L); }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const ConvGeom& g = static_cast<CTState*>(s)->g;
    dispatch_float(out[0].dtype, L, [&]<typename T>() {
      const T* X = in[0].as<T>();
      const T* W = in[1].as<T>();
      const T* B = g.has_bias ? in[2].as<T>() : nullptr;
      T* Y = out[0].as<T>();
      int64_t isz = g.in_size(), osz = g.out_size(), ksz = g.k_size();
      // Input index along one dim that tap k reaches output o from, or -1.
      auto src = [](int64_t o, int64_t k, int64_t s, int64_t d, int64_t p, int64_t n) -> int64_t {
        int64_t t = o + p - k * d;
        if (t < 0 || t % s) return -1;
        t /= s;
        return t < n ? t : -1;
      };
      ctx.pool->parallel_for(g.N * g.M, grain_for(osz * g.Cg * ksz), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          int64_t n = r / g.M, m = r % g.M, grp = m / g.Mg, mi = m % g.Mg;
          T* y = Y + r * osz;
          for (int64_t oz = 0; oz < g.out[0]; ++oz)
            for (int64_t oy = 0; oy < g.out[1]; ++oy)
              for (int64_t ox = 0; ox < g.out[2]; ++ox) {
                double acc = B ? static_cast<double>(load(B[m])) : 0.0;
                for (int64_t kz = 0; kz < g.k[0]; ++kz) {
                  int64_t iz = src(oz, kz, g.s[0], g.d[0], g.p[0], g.in[0]);
                  if (iz < 0) continue;
                  for (int64_t ky = 0; ky < g.k[1]; ++ky) {
                    int64_t iy = src(oy, ky, g.s[1], g.d[1], g.p[1], g.in[1]);
                    if (iy < 0) continue;
                    for (int64_t kx = 0; kx < g.k[2]; ++kx) {
                      int64_t ix = src(ox, kx, g.s[2], g.d[2], g.p[2], g.in[2]);
                      if (ix < 0) continue;
                      int64_t xoff = (iz * g.in[1] + iy) * g.in[2] + ix, koff = (kz * g.k[1] + ky) * g.k[2] + kx;
                      for (int64_t c = 0; c < g.Cg; ++c) {
                        int64_t ci = grp * g.Cg + c;
                        acc += static_cast<double>(load(X[(n * g.C + ci) * isz + xoff])) *
                               static_cast<double>(load(W[(ci * g.Mg + mi) * ksz + koff]));
                      }
                    }
                  }
                }
                store(y[(oz * g.out[1] + oy) * g.out[2] + ox], g.act.apply(acc));
              }
        }
      });
    });
  }
};

class ConvTransposeCol2im : public Tactic {
 public:
  const char* name() const override { return "cpu.convtranspose.col2im"; }
  bool can_implement(const LayerInfo& L) const override {
    for (auto* t : L.in)
      if (t && t->dtype != DType::F32) return false;
    return !L.out.empty() && L.out[0] && L.out[0]->dtype == DType::F32;
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override { return prepare_ct(L); }
  size_t workspace(const LayerInfo& L) const override {
    ConvGeom g = conv_geom(L, true);
    int64_t rows = g.Mg * g.k_size(), P = g.in_size();
    return (static_cast<size_t>(rows * P + 16) + sgemm::workspace_floats(rows, P, g.Cg)) * sizeof(float);
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const ConvGeom& g = static_cast<CTState*>(s)->g;
    const float* X = in[0].as<float>();
    const float* W = in[1].as<float>();
    const float* B = g.has_bias ? in[2].as<float>() : nullptr;
    float* Y = out[0].as<float>();
    int64_t ksz = g.k_size(), rows = g.Mg * ksz, P = g.in_size(), osz = g.out_size();
    float* col = static_cast<float*>(ctx.workspace);
    float* gws = col + ((rows * P + 16) / 16) * 16;
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t grp = 0; grp < g.G; ++grp) {
        // col[(m, k), i] = sum_c W[c, m, k] * X[n, c, i]: A is the group's W viewed transposed.
        sgemm::Matrix a{W + grp * g.Cg * rows, 1, rows};
        sgemm::Matrix b{X + (n * g.C + grp * g.Cg) * P, P, 1};
        sgemm::gemm(rows, P, g.Cg, a, b, col, P, sgemm::Epilogue{}, ctx.pool, gws);
        float* y0 = Y + (n * g.M + grp * g.Mg) * osz;
        ctx.pool->parallel_for(g.Mg, grain_for(ksz * P), [&](int64_t m0, int64_t m1) {
          for (int64_t m = m0; m < m1; ++m) {
            float* y = y0 + m * osz;
            std::fill(y, y + osz, B ? B[grp * g.Mg + m] : 0.f);
            for (int64_t k = 0; k < ksz; ++k) add_tap(g, col + (m * ksz + k) * P, k, y);
            if (g.act.kind != Activation::None)
              g.act.apply_row(y, osz);
          }
        });
      }
  }

 private:
  // Scatter-adds one kernel tap's column row (one value per input position) into the output channel.
  static void add_tap(const ConvGeom& g, const float* c, int64_t k, float* y) {
    int64_t kx = k % g.k[2], ky = (k / g.k[2]) % g.k[1], kz = k / (g.k[2] * g.k[1]);
    for (int64_t iz = 0; iz < g.in[0]; ++iz) {
      int64_t oz = iz * g.s[0] - g.p[0] + kz * g.d[0];
      bool zok = oz >= 0 && oz < g.out[0];
      for (int64_t iy = 0; iy < g.in[1]; ++iy, c += g.in[2]) {
        int64_t oy = iy * g.s[1] - g.p[1] + ky * g.d[1];
        if (!zok || oy < 0 || oy >= g.out[1]) continue;
        float* yr = y + (oz * g.out[1] + oy) * g.out[2];
        int64_t base = kx * g.d[2] - g.p[2], st = g.s[2];
        for (int64_t ix = 0; ix < g.in[2]; ++ix) {
          int64_t ox = ix * st + base;
          if (ox >= 0 && ox < g.out[2]) yr[ox] += c[ix];
        }
      }
    }
  }
};

}  // namespace
KILN_REGISTER_TACTIC("cpu", "ConvTranspose", ConvTransposeRef);
KILN_REGISTER_TACTIC("cpu", "ConvTranspose", ConvTransposeCol2im);
}  // namespace kiln

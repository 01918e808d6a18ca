// Conv: N-d convolution (1-D/2-D/3-D through conv_geom.h) with groups, strides, dilations, pads,
// optional bias, an optional residual (input 3, Y's shape) and a fused epilogue activation:
// Y = act(conv(X, W) + B + Z). Variants:
//   cpu.conv.ref        direct loops, double accumulation, float16/bfloat16/float32/float64 (the oracle)
//   cpu.conv.im2col     float32: per image and group, the prepacked sgemm with the input packed straight
//                       into its B panels (im2col without a column matrix)
//   cpu.conv.pointwise  float32 1x1 kernels with stride 1 and no padding: the input already is the GEMM
//                       operand, packed as a plain matrix
//   cpu.conv.pointwise.t  float32 1x1 (as pointwise) with constant W on a small map: computed transposed,
//                       Y^T = X^T W^T, so the map's few positions are the GEMM's rows (a 2x2 map fills
//                       4 of 6 rows instead of 4 of 16 columns) and W^T is packed into B panels once
//   cpu.conv.depthwise  float32, group == C == M: per channel, row-wise multiply-adds over the valid range
//   cpu.conv.depthwise.grid  float32 1-D/2-D depthwise: per channel, the zero-padded input split into
//                       stride phases, so every tap reads one contiguous run; the output is computed on
//                       the phase planes' pitch (a few junk columns per row) 8 lanes at a time with AVX2
// Channels-last layers (attribute `channels_last`, conv_geom.h) run on the reference or on:
//   cpu.conv.nhwc.gemm  float32, group 1, constant W: per image Y (positions x M) = cols x W^T, where
//                       a row of cols is the receptive field of one position — in NHWC each kernel tap
//                       is one contiguous run of C floats — and a 1x1 stride-1 unpadded kernel reads X
//                       as the GEMM's A directly; W^T is packed into B panels once
//   cpu.conv.nhwc.depthwise  float32 depthwise (group == C == M), constant W: per output position, the
//                       taps accumulate over the contiguous channel vector (W transposed to [k, C] once)
#include <algorithm>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KILN_CONV_X86 1
#endif

#include "conv_geom.h"

namespace kiln {
namespace {

struct ConvState : LayerState {
  ConvGeom g;
};

std::unique_ptr<LayerState> prepare_conv(const LayerInfo& L) {
  auto st = std::make_unique<ConvState>();
  st->g = conv_geom(L, false);
  return st;
}

bool all_f32(const LayerInfo& L) {
  for (auto* t : L.in)
    if (t && t->dtype != DType::F32) return false;
  return !L.out.empty() && L.out[0] && L.out[0]->dtype == DType::F32;
}

// float32 in the default [N, C, spatial...] layout: what the NCHW tactics below index.
bool nchw_f32(const LayerInfo& L) { return all_f32(L) && L.op->i("channels_last", 0) == 0; }

bool channels_last_f32(const LayerInfo& L) { return all_f32(L) && L.op->i("channels_last", 0) != 0; }

bool pointwise_geom(const ConvGeom& g) {
  for (int i = 0; i < 3; ++i)
    if (g.k[i] != 1 || g.s[i] != 1 || g.p[i] != 0 || g.in[i] != g.out[i]) return false;
  return true;
}

class ConvRef : public Tactic {
 public:
  const char* name() const override { return "cpu.conv.ref"; }
  bool reference() const override { return true; }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override { return prepare_conv(L); }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const ConvGeom& g = static_cast<ConvState*>(s)->g;
    dispatch_float(out[0].dtype, L, [&]<typename T>() {
      const T* X = in[0].as<T>();
      const T* W = in[1].as<T>();
      const T* B = g.has_bias ? in[2].as<T>() : nullptr;
      const T* Z = g.has_residual ? in[3].as<T>() : nullptr;
      T* Y = out[0].as<T>();
      int64_t osz = g.out_size(), ksz = g.k_size();
      // one task per (image, output channel); both layouts through ConvGeom's xi/wi/yi
      ctx.pool->parallel_for(g.N * g.M, grain_for(osz * g.Cg * ksz), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          int64_t n = r / g.M, m = r % g.M, c0 = m / g.Mg * g.Cg;
          for (int64_t oz = 0; oz < g.out[0]; ++oz)
            for (int64_t oy = 0; oy < g.out[1]; ++oy)
              for (int64_t ox = 0; ox < g.out[2]; ++ox) {
                double acc = B ? static_cast<double>(load(B[m])) : 0.0;
                for (int64_t c = 0; c < g.Cg; ++c)
                  for_each_tap(g, oz, oy, ox, [&](int64_t tap, int64_t iz, int64_t iy, int64_t ix, bool inside) {
                    if (inside)
                      acc += static_cast<double>(load(X[g.xi(n, c0 + c, (iz * g.in[1] + iy) * g.in[2] + ix)])) * static_cast<double>(load(W[g.wi(m, c, tap)]));
                  });
                int64_t o = g.yi(n, m, (oz * g.out[1] + oy) * g.out[2] + ox);
                if (Z) acc += static_cast<double>(load(Z[o]));
                store(Y[o], g.act.apply(acc));
              }
        }
      });
    });
  }
};

// im2col + sgemm, or (pointwise) sgemm straight on the input. The weights are packed into sgemm
// panels once in prepare() when they are constant (per run into the workspace otherwise), and the
// input is packed straight into B panels (sgemm::gemm_packed), so there is no column matrix and each
// image and group is one parallel_for.
struct ConvGemmState : ConvState {
  std::vector<float> packed_w;  // G packed Mg x Cg*k blocks; empty when W is not a constant
};

class ConvGemm : public Tactic {
 public:
  explicit ConvGemm(bool pointwise) : pointwise_(pointwise) {}
  const char* name() const override { return pointwise_ ? "cpu.conv.pointwise" : "cpu.conv.im2col"; }
  bool can_implement(const LayerInfo& L) const override {
    if (!nchw_f32(L)) return false;
    return !pointwise_ || pointwise_geom(conv_geom(L, false));
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = std::make_unique<ConvGemmState>();
    st->g = conv_geom(L, false);
    if (const uint8_t* w = L.const_data(1)) {
      st->packed_w.resize(st->g.G * a_floats(st->g));
      pack_weights(st->g, reinterpret_cast<const float*>(w), st->packed_w.data());
    }
    return st;
  }
  size_t workspace(const LayerInfo& L) const override {
    ConvGeom g = conv_geom(L, false);
    size_t a = L.const_data(1) ? 0 : g.G * a_floats(g);
    return (a + sgemm::packed_workspace_floats(g.Mg, g.out_size(), g.Cg * g.k_size())) * sizeof(float);
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const auto& st = *static_cast<ConvGemmState*>(s);
    const ConvGeom& g = st.g;
    const float* X = in[0].as<float>();
    const float* B = g.has_bias ? in[2].as<float>() : nullptr;
    float* Y = out[0].as<float>();
    int64_t isz = g.in_size(), P = g.out_size(), kc = g.Cg * g.k_size();
    size_t afl = a_floats(g);
    float* ws = static_cast<float*>(ctx.workspace);
    const float* Wp = st.packed_w.data();
    if (st.packed_w.empty()) {
      pack_weights(g, in[1].as<float>(), ws);
      Wp = ws;
      ws += g.G * afl;
    }
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t grp = 0; grp < g.G; ++grp) {
        const float* x = X + (n * g.C + grp * g.Cg) * isz;
        sgemm::PackB packer = pointwise_ ? sgemm::matrix_packer({x, P, 1}, P)
                                         : sgemm::PackB([&g, x](int64_t j0, int64_t p0, int64_t kd, float* dst) { pack_cols(g, x, j0, p0, kd, dst); });
        sgemm::Epilogue ep;
        if (B) ep.bias = {B + grp * g.Mg, 1, 0};
        if (g.has_residual) ep.residual = {in[3].as<float>() + (n * g.M + grp * g.Mg) * P, P, 1};
        ep.beta = 1;
        ep.act = g.act;
        sgemm::gemm_packed(g.Mg, P, kc, Wp + grp * afl, packer, Y + (n * g.M + grp * g.Mg) * P, P, ep, ctx.pool, ws);
      }
  }

 private:
  static size_t a_floats(const ConvGeom& g) { return sgemm::packed_a_floats(g.Mg, g.Cg * g.k_size()); }
  static void pack_weights(const ConvGeom& g, const float* W, float* dst) {
    int64_t kc = g.Cg * g.k_size();
    for (int64_t grp = 0; grp < g.G; ++grp) sgemm::pack_a_all(g.Mg, kc, {W + grp * g.Mg * kc, kc, 1}, dst + grp * a_floats(g));
  }
  // The im2col matrix's rows [p0, p0+kd) (row = (c, kz, ky, kx)) x columns [j0, j0+NR) (column = output
  // position) into dst[k * NR + c], 0 in the padding and past the last output position. The panel's
  // columns are cut into runs within one output row; per row of the matrix, each run is one input
  // row segment read with the width stride.
  static void pack_cols(const ConvGeom& g, const float* x, int64_t j0, int64_t p0, int64_t kd, float* dst) {
    constexpr int64_t NR = sgemm::NR;
    struct Run { int64_t c0, n, iz, iy, ix; };
    Run runs[NR];
    int64_t nruns = 0, cols = std::min(NR, g.out_size() - j0), plane = g.out[1] * g.out[2];
    for (int64_t c = 0; c < cols;) {
      int64_t j = j0 + c, ox = j % g.out[2], n = std::min(cols - c, g.out[2] - ox);
      runs[nruns++] = {c, n, (j / plane) * g.s[0] - g.p[0], (j / g.out[2] % g.out[1]) * g.s[1] - g.p[1], ox * g.s[2] - g.p[2]};
      c += n;
    }
    // (c, kz, ky, kx) of row p0, then stepped per row: no divisions in the row loop
    int64_t sx = g.s[2], W = g.in[2], kx = p0 % g.k[2], ky = p0 / g.k[2] % g.k[1], kz = p0 / (g.k[2] * g.k[1]) % g.k[0];
    const float* xc = x + p0 / g.k_size() * g.in_size();
    for (int64_t k = 0; k < kd; ++k, dst += NR) {
      for (int64_t q = 0; q < nruns; ++q) {
        const Run& u = runs[q];
        float* d = dst + u.c0;
        int64_t iz = u.iz + kz * g.d[0], iy = u.iy + ky * g.d[1], base = u.ix + kx * g.d[2];
        if (iz < 0 || iz >= g.in[0] || iy < 0 || iy >= g.in[1]) {
          std::fill(d, d + u.n, 0.f);
          continue;
        }
        const float* xr = xc + (iz * g.in[1] + iy) * W + base;
        if (base >= 0 && base + (u.n - 1) * sx < W) {  // the whole run inside the row (the usual case)
          if (sx != 1)
            for (int64_t t = 0; t < u.n; ++t) d[t] = xr[t * sx];
          else if (u.n == NR) std::memcpy(d, xr, NR * sizeof(float));
          else std::copy(xr, xr + u.n, d);
          continue;
        }
        int64_t lo, hi;
        valid_range(base, sx, W, u.n, lo, hi);
        std::fill(d, d + lo, 0.f);
        if (sx == 1) std::copy(xr + lo, xr + hi, d + lo);
        else
          for (int64_t t = lo; t < hi; ++t) d[t] = xr[t * sx];
        std::fill(d + std::max(lo, hi), d + u.n, 0.f);
      }
      std::fill(dst + cols, dst + NR, 0.f);
      if (++kx == g.k[2]) {
        kx = 0;
        if (++ky == g.k[1]) {
          ky = 0;
          if (++kz == g.k[0]) kz = 0, xc += g.in_size();
        }
      }
    }
  }
  bool pointwise_;
};

class ConvDepthwise : public Tactic {
 public:
  const char* name() const override { return "cpu.conv.depthwise"; }
  bool can_implement(const LayerInfo& L) const override {
    if (!nchw_f32(L)) return false;
    ConvGeom g = conv_geom(L, false);
    return g.G == g.C && g.G == g.M && g.G > 1;
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override { return prepare_conv(L); }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const ConvGeom& g = static_cast<ConvState*>(s)->g;
    const float* X = in[0].as<float>();
    const float* W = in[1].as<float>();
    const float* B = g.has_bias ? in[2].as<float>() : nullptr;
    float* Y = out[0].as<float>();
    int64_t isz = g.in_size(), osz = g.out_size(), ksz = g.k_size();
    ctx.pool->parallel_for(g.N * g.C, grain_for(osz * ksz), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        int64_t c = r % g.C;
        const float* x = X + r * isz;
        const float* w = W + c * ksz;
        float* y = Y + r * osz;
        float bias = B ? B[c] : 0.f;
        for (int64_t oz = 0; oz < g.out[0]; ++oz)
          for (int64_t oy = 0; oy < g.out[1]; ++oy) {
            float* yr = y + (oz * g.out[1] + oy) * g.out[2];
            std::fill(yr, yr + g.out[2], bias);
            for (int64_t kz = 0; kz < g.k[0]; ++kz) {
              int64_t iz = oz * g.s[0] - g.p[0] + kz * g.d[0];
              if (iz < 0 || iz >= g.in[0]) continue;
              for (int64_t ky = 0; ky < g.k[1]; ++ky) {
                int64_t iy = oy * g.s[1] - g.p[1] + ky * g.d[1];
                if (iy < 0 || iy >= g.in[1]) continue;
                const float* xr = x + (iz * g.in[1] + iy) * g.in[2];
                for (int64_t kx = 0; kx < g.k[2]; ++kx) {
                  float wv = w[(kz * g.k[1] + ky) * g.k[2] + kx];
                  int64_t base = kx * g.d[2] - g.p[2], st = g.s[2], lo, hi;
                  valid_range(base, st, g.in[2], g.out[2], lo, hi);
                  if (st == 1) {
                    const float* xs = xr + base;
                    for (int64_t ox = lo; ox < hi; ++ox) yr[ox] += wv * xs[ox];
                  } else {
                    for (int64_t ox = lo; ox < hi; ++ox) yr[ox] += wv * xr[ox * st + base];
                  }
                }
              }
            }
            if (g.has_residual) {
              const float* zr = in[3].as<float>() + r * osz + (oz * g.out[1] + oy) * g.out[2];
              for (int64_t ox = 0; ox < g.out[2]; ++ox) yr[ox] += zr[ox];
            }
            g.act.apply_row(yr, g.out[2]);
          }
      }
    });
  }
};


struct PointwiseTState : ConvState {
  std::vector<float> packed_wt;  // W^T (C x M) in sgemm B panels
};

class ConvPointwiseT : public Tactic {
 public:
  // Above this many positions the plain pointwise tactic's 16-column panels are already full.
  static constexpr int64_t kMaxPositions = 64;
  const char* name() const override { return "cpu.conv.pointwise.t"; }
  bool can_implement(const LayerInfo& L) const override {
    if (!nchw_f32(L) || !L.const_data(1)) return false;
    ConvGeom g = conv_geom(L, false);
    return g.G == 1 && pointwise_geom(g) && g.out_size() <= kMaxPositions;
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = std::make_unique<PointwiseTState>();
    st->g = conv_geom(L, false);
    st->packed_wt.resize(sgemm::packed_b_floats(st->g.C, st->g.M));
    sgemm::pack_b_all(st->g.C, st->g.M, {reinterpret_cast<const float*>(L.const_data(1)), 1, st->g.C}, st->packed_wt.data());
    return st;
  }
  size_t workspace(const LayerInfo& L) const override {
    ConvGeom g = conv_geom(L, false);
    return sgemm::prepacked_workspace_floats(g.out_size(), g.C) * sizeof(float);
  }
  void run(const LayerInfo&, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const auto& st = *static_cast<PointwiseTState*>(s);
    const ConvGeom& g = st.g;
    int64_t P = g.out_size();
    for (int64_t n = 0; n < g.N; ++n) {
      sgemm::Epilogue ep;
      if (g.has_bias) ep.bias = {in[2].as<float>(), 0, 1};
      if (g.has_residual) ep.residual = {in[3].as<float>() + n * g.M * P, 1, P};
      ep.beta = 1;
      ep.act = g.act;
      sgemm::gemm_prepacked(P, g.M, g.C, {in[0].as<float>() + n * g.C * P, 1, P}, st.packed_wt.data(), out[0].as<float>() + n * g.M * P,
                            1, P, ep, ctx.pool, static_cast<float*>(ctx.workspace));
    }
  }
};

// Depthwise 1-D/2-D convolution on padded stride-phase planes. For strides (sh, sw) the zero-padded
// input is split into sh*sw planes, plane (a, b) holding padded rows a, a+sh, ... and columns b, b+sw,
// ...; tap (ky, kx) of output (oy, ox) then reads plane ((ky*dh) % sh, (kx*dw) % sw) at row
// oy + ky*dh/sh, column ox + kx*dw/sw. With the output laid out on the planes' pitch P (output row oy
// at oy*P, the columns past OW junk), every tap is one contiguous run: grid[o] += w * plane[o + off],
// so the whole channel (tiny 4x4 and 2x2 maps included) is computed 8 lanes at a time, and the valid
// columns are copied out with the bias/residual/activation epilogue.
struct DwGridGeom {
  int64_t sh, sw, R, P, plane, grid, chunk_floats, chunks;
};

DwGridGeom dw_grid_geom(const ConvGeom& g) {
  DwGridGeom d;
  d.sh = g.s[1], d.sw = g.s[2];
  d.R = g.out[1] + (g.k[1] - 1) * g.d[1] / d.sh;
  d.P = g.out[2] + (g.k[2] - 1) * g.d[2] / d.sw;
  d.plane = d.R * d.P;
  d.grid = (g.out[1] * d.P + 7) / 8 * 8;
  // the planes, a tail that junk lanes may read (up to P + 8 past the last plane), the grid
  d.chunk_floats = (d.sh * d.sw * d.plane + d.P + 16 + d.grid + 15) / 16 * 16;
  int64_t work = g.N * g.C * d.grid * g.k_size();
  d.chunks = std::clamp<int64_t>(work / 32768, 1, std::min<int64_t>(8, g.N * g.C));
  return d;
}

struct DwGridState : ConvState {
  DwGridGeom d;
  std::vector<int64_t> off;  // per tap: its plane's start + row/column shift
};

#ifdef KILN_CONV_X86
__attribute__((target("avx2,fma"))) void dw_grid_avx2(const float* buf, const int64_t* off, const float* w, int64_t taps,
                                                       float bias, float* grid, int64_t n) {
  int64_t o = 0;
  for (; o + 32 <= n; o += 32) {
    __m256 a0 = _mm256_set1_ps(bias), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t t = 0; t < taps; ++t) {
      __m256 wv = _mm256_set1_ps(w[t]);
      const float* p = buf + off[t] + o;
      a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p), a0);
      a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p + 8), a1);
      a2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p + 16), a2);
      a3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p + 24), a3);
    }
    _mm256_storeu_ps(grid + o, a0);
    _mm256_storeu_ps(grid + o + 8, a1);
    _mm256_storeu_ps(grid + o + 16, a2);
    _mm256_storeu_ps(grid + o + 24, a3);
  }
  for (; o < n; o += 8) {
    __m256 a0 = _mm256_set1_ps(bias);
    for (int64_t t = 0; t < taps; ++t) a0 = _mm256_fmadd_ps(_mm256_set1_ps(w[t]), _mm256_loadu_ps(buf + off[t] + o), a0);
    _mm256_storeu_ps(grid + o, a0);
  }
}
#endif

void dw_grid_portable(const float* buf, const int64_t* off, const float* w, int64_t taps, float bias, float* grid, int64_t n) {
  std::fill(grid, grid + n, bias);
  for (int64_t t = 0; t < taps; ++t) {
    const float* p = buf + off[t];
    float wv = w[t];
    for (int64_t o = 0; o < n; ++o) grid[o] += wv * p[o];
  }
}

class ConvDepthwiseGrid : public Tactic {
 public:
  const char* name() const override { return "cpu.conv.depthwise.grid"; }
  bool can_implement(const LayerInfo& L) const override {
    if (!nchw_f32(L)) return false;
    ConvGeom g = conv_geom(L, false);
    return g.G == g.C && g.G == g.M && g.G > 1 && g.in[0] == 1 && g.out[0] == 1 && g.k[0] == 1;
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = std::make_unique<DwGridState>();
    st->g = conv_geom(L, false);
    st->d = dw_grid_geom(st->g);
    const ConvGeom& g = st->g;
    for (int64_t ky = 0; ky < g.k[1]; ++ky)
      for (int64_t kx = 0; kx < g.k[2]; ++kx) {
        int64_t ry = ky * g.d[1], rx = kx * g.d[2];
        int64_t plane = (ry % st->d.sh) * st->d.sw + rx % st->d.sw;
        st->off.push_back(plane * st->d.plane + ry / st->d.sh * st->d.P + rx / st->d.sw);
      }
    return st;
  }
  size_t workspace(const LayerInfo& L) const override {
    DwGridGeom d = dw_grid_geom(conv_geom(L, false));
    return static_cast<size_t>(d.chunks * d.chunk_floats) * sizeof(float);
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const auto& st = *static_cast<DwGridState*>(s);
    const ConvGeom& g = st.g;
    const DwGridGeom& d = st.d;
    const float* X = in[0].as<float>();
    const float* W = in[1].as<float>();
    const float* B = g.has_bias ? in[2].as<float>() : nullptr;
    const float* Z = g.has_residual ? in[3].as<float>() : nullptr;
    float* Y = out[0].as<float>();
    float* ws = static_cast<float*>(ctx.workspace);
    int64_t H = g.in[1], Wd = g.in[2], OH = g.out[1], OW = g.out[2], isz = g.in_size(), osz = g.out_size(), ksz = g.k_size();
    int64_t NC = g.N * g.C, planes = d.sh * d.sw, tail = d.P + 16;
#ifdef KILN_CONV_X86
    auto kern = sgemm::has_avx2() ? dw_grid_avx2 : dw_grid_portable;
#else
    auto kern = dw_grid_portable;
#endif
    auto task = [&](int64_t q0, int64_t q1) {
      float* buf = ws + q0 * d.chunk_floats;
      float* grid = buf + planes * d.plane + tail;
      std::fill(buf + planes * d.plane, grid, 0.f);
      for (int64_t r = q0 * NC / d.chunks; r < q1 * NC / d.chunks; ++r) {
        int64_t c = r % g.C;
        const float* x = X + r * isz;
        for (int64_t a = 0; a < d.sh; ++a)
          for (int64_t b = 0; b < d.sw; ++b) {
            float* pl = buf + (a * d.sw + b) * d.plane;
            int64_t lo, hi;
            valid_range(b - g.p[2], d.sw, Wd, d.P, lo, hi);
            for (int64_t row = 0; row < d.R; ++row) {
              float* dst = pl + row * d.P;
              int64_t iy = row * d.sh + a - g.p[1];
              if (iy < 0 || iy >= H || lo >= hi) {
                std::fill(dst, dst + d.P, 0.f);
                continue;
              }
              const float* xr = x + iy * Wd + b - g.p[2];
              std::fill(dst, dst + lo, 0.f);
              if (d.sw == 1) std::copy(xr + lo, xr + hi, dst + lo);
              else
                for (int64_t t = lo; t < hi; ++t) dst[t] = xr[t * d.sw];
              std::fill(dst + hi, dst + d.P, 0.f);
            }
          }
        kern(buf, st.off.data(), W + c * ksz, ksz, B ? B[c] : 0.f, grid, d.grid);
        float* y = Y + r * osz;
        for (int64_t oy = 0; oy < OH; ++oy) {
          float* yr = y + oy * OW;
          const float* gr = grid + oy * d.P;
          if (Z) {
            const float* zr = Z + r * osz + oy * OW;
            for (int64_t ox = 0; ox < OW; ++ox) yr[ox] = gr[ox] + zr[ox];
          } else {
            for (int64_t ox = 0; ox < OW; ++ox) yr[ox] = gr[ox];
          }
        }
        g.act.apply_row(y, osz);  // once per channel: a 4x4 map is one call, not four
      }
    };
    if (d.chunks == 1) task(0, 1);
    else ctx.pool->parallel_for(d.chunks, 1, task);
  }
};

struct NhwcGemmState : ConvState {
  std::vector<float> packed_wt;  // W^T (k_size*C x M) in sgemm B panels
  bool direct = false;           // 1x1, stride 1, no padding: X is the GEMM's A as it is
};

class ConvNhwcGemm : public Tactic {
 public:
  const char* name() const override { return "cpu.conv.nhwc.gemm"; }
  bool can_implement(const LayerInfo& L) const override {
    return channels_last_f32(L) && L.const_data(1) && conv_geom(L, false).G == 1;
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = std::make_unique<NhwcGemmState>();
    st->g = conv_geom(L, false);
    const ConvGeom& g = st->g;
    int64_t K = g.k_size() * g.C;
    st->direct = pointwise_geom(g);
    st->packed_wt.resize(sgemm::packed_b_floats(K, g.M));
    // W is [M, k..., C]: row m of W is column m of W^T, whose row index kp*C + c matches a cols row
    sgemm::pack_b_all(K, g.M, {reinterpret_cast<const float*>(L.const_data(1)), 1, K}, st->packed_wt.data());
    return st;
  }
  size_t workspace(const LayerInfo& L) const override {
    ConvGeom g = conv_geom(L, false);
    int64_t P = g.out_size(), K = g.k_size() * g.C;
    size_t cols = pointwise_geom(g) ? 0 : (P * K + 15) / 16 * 16;
    return (cols + sgemm::prepacked_workspace_floats(P, K)) * sizeof(float);
  }
  void run(const LayerInfo&, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const auto& st = *static_cast<NhwcGemmState*>(s);
    const ConvGeom& g = st.g;
    int64_t P = g.out_size(), K = g.k_size() * g.C, C = g.C;
    const float* X = in[0].as<float>();
    float* Y = out[0].as<float>();
    float* cols = static_cast<float*>(ctx.workspace);
    float* ws = st.direct ? cols : cols + (P * K + 15) / 16 * 16;
    for (int64_t n = 0; n < g.N; ++n) {
      const float* x = X + n * g.in_size() * C;
      sgemm::Matrix A{x, C, 1};
      if (!st.direct) {
        ctx.pool->parallel_for(P, grain_for(K), [&](int64_t p0, int64_t p1) {
          for (int64_t p = p0; p < p1; ++p) {
            int64_t oz = p / (g.out[1] * g.out[2]), oy = p / g.out[2] % g.out[1], ox = p % g.out[2];
            float* row = cols + p * K;
            for_each_tap(g, oz, oy, ox, [&](int64_t tap, int64_t iz, int64_t iy, int64_t ix, bool inside) {
              if (inside) std::memcpy(row + tap * C, x + ((iz * g.in[1] + iy) * g.in[2] + ix) * C, C * sizeof(float));
              else std::fill(row + tap * C, row + (tap + 1) * C, 0.f);
            });
          }
        });
        A = {cols, K, 1};
      }
      sgemm::Epilogue ep;
      if (g.has_bias) ep.bias = {in[2].as<float>(), 0, 1};
      if (g.has_residual) ep.residual = {in[3].as<float>() + n * P * g.M, g.M, 1};
      ep.beta = 1;
      ep.act = g.act;
      sgemm::gemm_prepacked(P, g.M, K, A, st.packed_wt.data(), Y + n * P * g.M, g.M, 1, ep, ctx.pool, ws);
    }
  }
};

struct NhwcDepthwiseState : ConvState {
  std::vector<float> wt;  // W transposed to [k_size, C]
};

class ConvNhwcDepthwise : public Tactic {
 public:
  const char* name() const override { return "cpu.conv.nhwc.depthwise"; }
  bool can_implement(const LayerInfo& L) const override {
    if (!channels_last_f32(L) || !L.const_data(1)) return false;
    ConvGeom g = conv_geom(L, false);
    return g.G == g.C && g.G == g.M && g.G > 1;
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = std::make_unique<NhwcDepthwiseState>();
    st->g = conv_geom(L, false);
    const ConvGeom& g = st->g;
    const float* W = reinterpret_cast<const float*>(L.const_data(1));
    st->wt.resize(g.k_size() * g.C);
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t kp = 0; kp < g.k_size(); ++kp) st->wt[kp * g.C + c] = W[c * g.k_size() + kp];
    return st;
  }
  void run(const LayerInfo&, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const auto& st = *static_cast<NhwcDepthwiseState*>(s);
    const ConvGeom& g = st.g;
    const int64_t C = g.C, rows = g.N * g.out[0] * g.out[1];
    const float* X = in[0].as<float>();
    const float* B = g.has_bias ? in[2].as<float>() : nullptr;
    const float* Z = g.has_residual ? in[3].as<float>() : nullptr;
    float* Y = out[0].as<float>();
    // one task per output row (image, oz, oy): each position's C outputs accumulate tap by tap
    ctx.pool->parallel_for(rows, grain_for(g.out[2] * C * g.k_size()), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        int64_t n = r / (g.out[0] * g.out[1]), oz = r / g.out[1] % g.out[0], oy = r % g.out[1];
        const float* x = X + n * g.in_size() * C;
        for (int64_t ox = 0; ox < g.out[2]; ++ox) {
          int64_t o = (r * g.out[2] + ox) * C;
          float* y = Y + o;
          if (B) std::copy(B, B + C, y);
          else std::fill(y, y + C, 0.f);
          for_each_tap(g, oz, oy, ox, [&](int64_t tap, int64_t iz, int64_t iy, int64_t ix, bool inside) {
            if (!inside) return;
            const float* xv = x + ((iz * g.in[1] + iy) * g.in[2] + ix) * C;
            const float* wv = st.wt.data() + tap * C;
            for (int64_t c = 0; c < C; ++c) y[c] += wv[c] * xv[c];
          });
          if (Z)
            for (int64_t c = 0; c < C; ++c) y[c] += Z[o + c];
          g.act.apply_row(y, C);
        }
      }
    });
  }
};

}  // namespace
KILN_REGISTER_TACTIC("cpu", "Conv", ConvRef);
KILN_REGISTER_TACTIC_EXPR("cpu", "Conv", std::make_unique<ConvGemm>(false));
KILN_REGISTER_TACTIC_EXPR("cpu", "Conv", std::make_unique<ConvGemm>(true));
KILN_REGISTER_TACTIC("cpu", "Conv", ConvDepthwise);
KILN_REGISTER_TACTIC("cpu", "Conv", ConvDepthwiseGrid);
KILN_REGISTER_TACTIC("cpu", "Conv", ConvPointwiseT);
KILN_REGISTER_TACTIC("cpu", "Conv", ConvNhwcGemm);
KILN_REGISTER_TACTIC("cpu", "Conv", ConvNhwcDepthwise);
}  // namespace kiln

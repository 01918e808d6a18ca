// Int8Conv: N-d convolution (1 to 3 spatial dims, group, strides, dilations, pads as [begins...,
// ends...]) of int8/uint8 activations X [N, C, spatial...] with int8 weights W [M, C/G, k...], optional
// float bias [M] and residual (Y's shape), float32 or requantized int8/uint8 output (the epilogue of
// qgemm_int8.h). Padding holds the zero point, so it adds nothing to the int32 sums. Variants:
//   cpu.int8_conv          reference: direct loops, one int32 sum per output element.
//   cpu.int8_conv.im2col   constant W packed once as int16 rows of C/G x k values; each task gathers one
//                          output position's im2col row (minus the zero point) and takes four output
//                          channels per pass of the AVX2 int16 dot. Tasks split the output positions.
// Both refuse channels-last layers (conv_geom.h): int8 layers are kept in the default layout.
// Int8ConvPool (a convolution and its max pool, fused on CUDA int8 engines): cpu.int8_conv_pool, the
// reference in either layout (the fallback when no CUDA kernel takes the layer, and the tests').
#include "conv_geom.h"
#include "qgemm_int8.h"

#include <cstring>
#include <vector>

namespace kiln::int8 {
namespace {

ConvGeom geom(const LayerInfo& L) {
  ConvGeom g = conv_geom(L, false);
  if (g.channels_last) fail("INVALID_ENGINE", "layer '" + L.op->name + "' (Int8Conv): channels_last int8 convolutions are not supported");
  if (g.has_bias && L.in[2]->dtype != DType::F32) fail("INVALID_ENGINE", "layer '" + L.op->name + "' (Int8Conv): the bias must be float32");
  return g;
}

Store store_for(const Params& p, const ConvGeom& g, const Tensor* in, Tensor* out) {
  return Store{p, g.has_bias ? in[2].as<float>() : nullptr, g.has_residual ? in[3].data : nullptr, out[0].data};
}

// Fills a[k] for k = (c, kz, ky, kx) of output position o (canonical 3-D) of image n, group grp with
// X minus its zero point, 0 where the kernel reads padding.
void gather(const ConvGeom& g, const void* X, DType xt, int32_t zp, int64_t n, int64_t grp, int64_t o, int16_t* a) {
  int64_t ox = o % g.out[2], oy = (o / g.out[2]) % g.out[1], oz = o / (g.out[2] * g.out[1]);
  int64_t isz = g.in_size(), k = 0;
  for (int64_t c = 0; c < g.Cg; ++c, k += g.k_size()) {
    int64_t base = (n * g.C + grp * g.Cg + c) * isz;
    for_each_tap(g, oz, oy, ox, [&](int64_t tap, int64_t iz, int64_t iy, int64_t ix, bool inside) {
      a[k + tap] = inside ? static_cast<int16_t>(centered(X, xt, base + (iz * g.in[1] + iy) * g.in[2] + ix, zp)) : 0;
    });
  }
}

// The reference's loops, one int32 sum per output element, in g's layout (X in[0], W in[1]); each
// sum goes through st at its Y index.
void reference_conv(const ConvGeom& g, const Params& p, const Tensor* in, const Store& st) {
  const int8_t* W = in[1].as<int8_t>();
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t m = 0; m < g.M; ++m) {
      const int64_t grp = m / g.Mg;
      for (int64_t o = 0; o < g.out_size(); ++o) {
        const int64_t ox = o % g.out[2], oy = (o / g.out[2]) % g.out[1], oz = o / (g.out[2] * g.out[1]);
        int32_t acc = 0;
        for (int64_t c = 0; c < g.Cg; ++c)
          for_each_tap(g, oz, oy, ox, [&](int64_t tap, int64_t iz, int64_t iy, int64_t ix, bool inside) {
            if (inside) acc += centered(in[0].data, in[0].dtype, g.xi(n, grp * g.Cg + c, (iz * g.in[1] + iy) * g.in[2] + ix), p.x_zp) * W[g.wi(m, c, tap)];
          });
        st.put(g.yi(n, m, o), m, acc);
      }
    }
}

class Int8ConvRef : public Tactic {
 public:
  const char* name() const override { return "cpu.int8_conv"; }
  bool reference() const override { return true; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext&) const override {
    ConvGeom g = geom(L);
    Params p = read_params(L, g.M);
    reference_conv(g, p, in, store_for(p, g, in, out));
  }
};

struct Im2colState : LayerState {
  ConvGeom g;
  Params p;
  std::vector<int16_t> w;  // [M, padded(Cg * k)]
};

class Int8ConvIm2col : public Tactic {
 public:
  const char* name() const override { return "cpu.int8_conv.im2col"; }
  bool can_implement(const LayerInfo& L) const override { return L.const_data(1) != nullptr && L.op->i("channels_last", 0) == 0; }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = std::make_unique<Im2colState>();
    st->g = geom(L);
    st->p = read_params(L, st->g.M);
    st->w = pack_weights(reinterpret_cast<const int8_t*>(L.const_data(1)), st->g.M, st->g.Cg * st->g.k_size());
    return st;
  }
  size_t workspace(const LayerInfo& L) const override {
    ConvGeom g = conv_geom(L, false);
    return static_cast<size_t>(task_slots() * padded(g.Cg * g.k_size())) * sizeof(int16_t);
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const auto& st = *static_cast<Im2colState*>(s);
    const ConvGeom& g = st.g;
    Store put = store_for(st.p, g, in, out);
    int64_t K = g.Cg * g.k_size(), Kp = padded(K), P = g.out_size();
    int64_t items = g.N * g.G * P;  // (image, group, output position)
    int64_t T = std::max<int64_t>(1, std::min<int64_t>({task_slots(), ctx.threads, std::max<int64_t>(1, items)}));
    int16_t* ws = static_cast<int16_t*>(ctx.workspace);
    const void* X = in[0].data;
    DType xt = in[0].dtype;
    auto task = [&](int64_t t) {
      int16_t* a = ws + t * Kp;
      std::memset(a + K, 0, static_cast<size_t>(Kp - K) * sizeof(int16_t));
      int32_t acc[4];
      for (int64_t it = items * t / T, end = items * (t + 1) / T; it < end; ++it) {
        int64_t o = it % P, grp = (it / P) % g.G, n = it / (P * g.G);
        gather(g, X, xt, st.p.x_zp, n, grp, o, a);
        for (int64_t m = grp * g.Mg, m1 = m + g.Mg; m < m1; m += 4) {
          int cnt = static_cast<int>(std::min<int64_t>(4, m1 - m));
          dot_rows(a, st.w.data() + m * Kp, Kp, Kp, cnt, acc);
          for (int j = 0; j < cnt; ++j) put.put((n * g.M + m + j) * P + o, m + j, acc[j]);
        }
      }
    };
    run_tasks(ctx, T, task);
  }
};

// Int8ConvPool (src/passes/conv-pool-fusion.ts: an int8 engine's convolution and the max pool that
// alone reads its output): the reference in either layout, the convolution's int8/uint8 outputs into
// a buffer (reference_conv, Int8ConvRef's loops), then the max over each pool window's taps inside that
// output (a window wholly outside gives 0, as the CUDA pools of bytes).
class Int8ConvPoolRef : public Tactic {
 public:
  const char* name() const override { return "cpu.int8_conv_pool"; }
  bool reference() const override { return true; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext&) const override {
    ConvGeom g = conv_geom(L, false);
    const FusedPool fp = fused_pool(L, g);
    Params p = read_params(L, g.M);
    if (p.out != DType::I8 && p.out != DType::U8) fail("INVALID_ENGINE", "layer '" + L.op->name + "' (Int8ConvPool): the output must be int8 or uint8");
    if (g.has_bias && L.in[2]->dtype != DType::F32) fail("INVALID_ENGINE", "layer '" + L.op->name + "' (Int8ConvPool): the bias must be float32");
    std::vector<uint8_t> conv(static_cast<size_t>(g.N * g.M * g.out_size()));
    reference_conv(g, p, in, Store{p, g.has_bias ? in[2].as<float>() : nullptr, nullptr, conv.data()});
    // Y's geometry: the pool's output in the same layout
    ConvGeom yg = g;
    yg.out[1] = fp.out[0], yg.out[2] = fp.out[1];
    const bool sgn = p.out == DType::I8;
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t m = 0; m < g.M; ++m)
        for (int64_t py = 0; py < fp.out[0]; ++py)
          for (int64_t px = 0; px < fp.out[1]; ++px) {
            int best = 0;
            bool any = false;
            for (int64_t ky = 0; ky < fp.k[0]; ++ky)
              for (int64_t kx = 0; kx < fp.k[1]; ++kx) {
                const int64_t cy = py * fp.s[0] - fp.p[0] + ky, cx = px * fp.s[1] - fp.p[1] + kx;
                if (cy < 0 || cy >= g.out[1] || cx < 0 || cx >= g.out[2]) continue;
                const uint8_t b = conv[static_cast<size_t>(g.yi(n, m, cy * g.out[2] + cx))];
                const int v = sgn ? static_cast<int8_t>(b) : b;
                if (!any || v > best) best = v, any = true;
              }
            static_cast<uint8_t*>(out[0].data)[yg.yi(n, m, py * fp.out[1] + px)] = static_cast<uint8_t>(best);
          }
  }
};

}  // namespace
}  // namespace kiln::int8

namespace kiln {
KILN_REGISTER_TACTIC("cpu", "Int8Conv", int8::Int8ConvRef);
KILN_REGISTER_TACTIC("cpu", "Int8Conv", int8::Int8ConvIm2col);
KILN_REGISTER_TACTIC("cpu", "Int8ConvPool", int8::Int8ConvPoolRef);
}  // namespace kiln

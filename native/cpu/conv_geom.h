// Geometry shared by the Conv and ConvTranspose kernels: shapes and attributes (group, strides,
// dilations, pads as [begins..., ends...], activation) read from a layer, with 1-D and 2-D
// convolutions canonicalized to 3-D (leading spatial dims of size 1), and validated so that the
// kernels can index without further checks.
//
// Layouts. By default X is [N, C, spatial...], W [M, C/G, k...] and Y (and the residual) [N, M,
// spatial...]. A Conv with attribute `channels_last` 1 (set by src/passes/layout-assignment.ts) has
// its tensors stored channels-last: X [N, spatial..., C], W [M, k..., C/G], Y and the residual [N,
// spatial..., M]. ConvGeom always holds the logical dims (C, M, in, out, k are the same numbers in
// both layouts) and `channels_last` says how they are stored; xi/wi/yi give element offsets in either.
// A tactic that only indexes the default layout must refuse a channels_last layer in can_implement.
#pragma once

#include <string>

#include "kernel_util.h"
#include "sgemm.h"

namespace kiln {

struct ConvGeom {
  int64_t N = 1, C = 1, M = 1, G = 1, Cg = 1, Mg = 1;
  // Spatial dims, canonical 3-D. For Conv `in` is X's and `out` Y's; for ConvTranspose likewise
  // (X is the small side there).
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, k[3] = {1, 1, 1}, s[3] = {1, 1, 1}, d[3] = {1, 1, 1}, p[3] = {0, 0, 0};
  int rank = 0;
  bool has_bias = false;
  bool has_residual = false;  // input 3: a tensor of Y's shape added before the activation
  bool channels_last = false;  // tensors stored [N, spatial..., C] and W [M, k..., C/G] (see above)
  Activation act;
  int64_t in_size() const { return in[0] * in[1] * in[2]; }
  int64_t out_size() const { return out[0] * out[1] * out[2]; }
  int64_t k_size() const { return k[0] * k[1] * k[2]; }
  // Element offsets of X (image n, channel c, spatial position sp < in_size()), W (output channel m,
  // channel c < Cg of its group, kernel position kp < k_size()) and Y / the residual (o < out_size()).
  int64_t xi(int64_t n, int64_t c, int64_t sp) const { return channels_last ? (n * in_size() + sp) * C + c : (n * C + c) * in_size() + sp; }
  int64_t wi(int64_t m, int64_t c, int64_t kp) const { return channels_last ? (m * k_size() + kp) * Cg + c : (m * Cg + c) * k_size() + kp; }
  int64_t yi(int64_t n, int64_t m, int64_t o) const { return channels_last ? (n * out_size() + o) * M + m : (n * M + m) * out_size() + o; }
};

// Calls f(tap, iz, iy, ix, inside) for the window taps of output position (oz, oy, ox), in (kz, ky, kx)
// order: tap = (kz * k[1] + ky) * k[2] + kx, (iz, iy, ix) the input position it reads, inside whether
// that lies in the image (else the tap reads padding).
template <typename F>
inline void for_each_tap(const ConvGeom& g, int64_t oz, int64_t oy, int64_t ox, F&& f) {
  int64_t tap = 0;
  for (int64_t kz = 0; kz < g.k[0]; ++kz) {
    const int64_t iz = oz * g.s[0] - g.p[0] + kz * g.d[0];
    const bool zin = iz >= 0 && iz < g.in[0];
    for (int64_t ky = 0; ky < g.k[1]; ++ky) {
      const int64_t iy = oy * g.s[1] - g.p[1] + ky * g.d[1];
      const bool yin = zin && iy >= 0 && iy < g.in[1];
      for (int64_t kx = 0; kx < g.k[2]; ++kx, ++tap) {
        const int64_t ix = ox * g.s[2] - g.p[2] + kx * g.d[2];
        f(tap, iz, iy, ix, yin && ix >= 0 && ix < g.in[2]);
      }
    }
  }
}

// Int8ConvPool (src/passes/conv-pool-fusion.ts): a 2-D convolution and the max pool that alone reads
// its output, as one layer whose Y is the pool's output. conv_geom took Y's spatial dims; this puts the
// convolution's own (from X, the window and both pads) in g.out and returns the pool (attributes
// pool_kernel, pool_strides, pool_pads as [begins..., ends...]; dilation 1) with its output dims.
struct FusedPool {
  int64_t k[2] = {1, 1}, s[2] = {1, 1}, p[2] = {0, 0}, out[2] = {1, 1};
};
inline FusedPool fused_pool(const LayerInfo& L, ConvGeom& g) {
  const PlanOp& op = *L.op;
  auto bad = [&](const std::string& why) { fail("INVALID_ENGINE", "layer '" + op.name + "' (" + op.kind + "): " + why); };
  if (g.rank != 2) bad("the fused max pool needs a 2-D convolution");
  if (g.has_residual) bad("the fused max pool takes no residual");
  const auto pads = op.ints("pads"), pk = op.ints("pool_kernel"), ps = op.ints("pool_strides"), pp = op.ints("pool_pads");
  if (pk.size() != 2 || ps.size() != 2 || pp.size() != 4) bad("pool_kernel, pool_strides and pool_pads must be 2, 2 and 4 values");
  FusedPool f;
  for (int i = 0; i < 2; ++i) {
    const int64_t extent = (g.k[1 + i] - 1) * g.d[1 + i] + 1, span = g.in[1 + i] + pads[i] + pads[2 + i] - extent;
    if (span < 0) bad("the window is larger than the padded input");
    f.out[i] = g.out[1 + i];  // Y's dims: the pool's output
    g.out[1 + i] = span / g.s[1 + i] + 1;
    f.k[i] = pk[i], f.s[i] = ps[i], f.p[i] = pp[i];
    if (pk[i] < 1 || ps[i] < 1 || pp[i] < 0 || pp[i] >= pk[i] || pp[2 + i] < 0 || pp[2 + i] >= pk[i]) bad("pool window, strides or pads out of range");
    // the pool's output size, floor or ceil mode (ceil: the last window starts inside the input or its leading pad)
    const int64_t room = g.out[1 + i] + pp[i] + pp[2 + i] - pk[i];
    if (room < 0 || (f.out[i] != room / ps[i] + 1 && f.out[i] != (room + ps[i] - 1) / ps[i] + 1)) bad("Y's spatial dims are not the pool's output of the convolution's");
  }
  return f;
}

// transposed: W is [C, M/G, k...] (ConvTranspose) instead of [M, C/G, k...].
inline ConvGeom conv_geom(const LayerInfo& L, bool transposed) {
  const PlanOp& op = *L.op;
  auto bad = [&](const std::string& why) { fail("INVALID_ENGINE", "layer '" + op.name + "' (" + op.kind + "): " + why); };
  if (L.in.size() < 2 || !L.in[0] || !L.in[1] || L.out.empty() || !L.out[0]) bad("needs inputs X, W and an output");
  const Shape& xs = L.in[0]->shape;
  const Shape& ws = L.in[1]->shape;
  const Shape& ys = L.out[0]->shape;
  ConvGeom g;
  g.rank = static_cast<int>(xs.size()) - 2;
  if (g.rank < 1 || g.rank > 3) bad("supports 1 to 3 spatial dims, X has shape rank " + std::to_string(xs.size()));
  if (ws.size() != xs.size() || ys.size() != xs.size()) bad("X, W and Y must have the same rank");
  g.channels_last = op.i("channels_last", 0) != 0;
  if (g.channels_last && transposed) bad("channels_last is not supported for ConvTranspose");
  // the axis of the channels and the first spatial axis in the stored shapes
  const size_t ca = g.channels_last ? xs.size() - 1 : 1, sa = g.channels_last ? 1 : 2;
  g.G = op.i("group");
  auto strides = op.ints("strides"), dil = op.ints("dilations"), pads = op.ints("pads");
  if (static_cast<int>(strides.size()) != g.rank || static_cast<int>(dil.size()) != g.rank || static_cast<int>(pads.size()) != 2 * g.rank)
    bad("strides, dilations and pads do not match the spatial rank");
  g.N = xs[0];
  g.C = xs[ca];
  g.M = ys[ca];
  if (g.G < 1 || g.C % g.G || g.M % g.G) bad("group must divide the input and output channels");
  g.Cg = g.C / g.G;
  g.Mg = g.M / g.G;
  if (ys[0] != g.N) bad("X and Y batch differ");
  if (transposed ? (ws[0] != g.C || ws[1] != g.Mg) : (ws[0] != g.M || ws[ca] != g.Cg)) bad("W's channel dims do not match X, Y and group");
  int off = 3 - g.rank;
  for (int i = 0; i < g.rank; ++i) {
    g.in[off + i] = xs[sa + i];
    g.out[off + i] = ys[sa + i];
    g.k[off + i] = ws[sa + i];
    g.s[off + i] = strides[i];
    g.d[off + i] = dil[i];
    g.p[off + i] = pads[i];
    if (strides[i] < 1 || dil[i] < 1) bad("strides and dilations must be >= 1");
  }
  g.has_bias = L.in.size() > 2 && L.in[2] != nullptr;
  if (g.has_bias && L.in[2]->numel() != g.M) bad("bias B must have M elements");
  g.has_residual = L.in.size() > 3 && L.in[3] != nullptr;
  if (g.has_residual && L.in[3]->shape != ys) bad("the residual input must have Y's shape");
  g.act = parse_activation(L);
  return g;
}

}  // namespace kiln

// RNN: the recurrent cells LSTM, GRU and plain RNN (attribute `cell`) over a sequence, forward, reverse
// or bidirectional, with per-direction activations (alpha/beta resolved in TS), optional clip of the
// gate pre-activations, per-item sequence lengths (rows past an item's length are zeros; its final
// state is the state at its length), optional initial states, biases and LSTM peepholes, input_forget
// (LSTM), linear_before_reset (GRU), and both layouts (0: [seq, batch, …], 1: [batch, seq, …]).
// Inputs: X, W, R, B, sequence_lens, initial_h, initial_c, P; outputs: Y, Y_h, Y_c (any may be omitted).
// One variant: the reference, one (direction, batch item) at a time, computing in float (double for f64).
#include <algorithm>
#include <cmath>

#include "kernel_util.h"

namespace kiln {
namespace {

enum class CellKind { LSTM, GRU, RNN };

template <typename C>
C activate(int code, C x, C alpha, C beta) {
  switch (code) {
    case 0: return x > 0 ? x : C(0);
    case 1: return std::tanh(x);
    case 2: return C(1) / (C(1) + std::exp(-x));
    case 3: return alpha * x + beta;
    case 4: return x < 0 ? alpha * x : x;
    case 5: return x > alpha ? x : C(0);
    case 6: return alpha * std::tanh(beta * x);
    case 7: return std::max(C(0), std::min(C(1), alpha * x + beta));
    case 8: return x < 0 ? alpha * (std::exp(x) - C(1)) : x;
    case 9: return x / (C(1) + std::abs(x));
    default: return x > 20 ? x : std::log1p(std::exp(x));  // 10: softplus
  }
}

struct Params {
  CellKind cell;
  int64_t S, B, I, H, D, G;  // seq, batch, input, hidden, directions, gates
  bool layout1, reverse, has_clip, input_forget, lbr;
  double clip;
  std::vector<int64_t> acts;
  std::vector<double> alphas, betas;
};

Params params(const LayerInfo& L) {
  const PlanOp& op = *L.op;
  Params p;
  const std::string& c = op.s("cell");
  p.cell = c == "LSTM" ? CellKind::LSTM : c == "GRU" ? CellKind::GRU : CellKind::RNN;
  p.G = p.cell == CellKind::LSTM ? 4 : p.cell == CellKind::GRU ? 3 : 1;
  p.H = op.i("hidden");
  p.D = op.i("dirs");
  p.layout1 = op.i("layout") != 0;
  p.reverse = op.i("reverse") != 0;
  p.has_clip = op.i("has_clip") != 0;
  p.clip = op.f("clip");
  p.input_forget = op.i("input_forget", 0) != 0;
  p.lbr = op.i("linear_before_reset", 0) != 0;
  p.acts = op.ints("acts");
  p.alphas = op.floats("alphas");
  p.betas = op.floats("betas");
  if (L.in.size() < 3 || !L.in[0] || !L.in[1] || !L.in[2] || L.in[0]->shape.size() != 3)
    fail("INTERNAL", "layer '" + op.name + "' (RNN): X, W and R are required");
  const Shape& x = L.in[0]->shape;
  p.S = p.layout1 ? x[1] : x[0];
  p.B = p.layout1 ? x[0] : x[1];
  p.I = x[2];
  size_t nacts = p.cell == CellKind::LSTM ? 3 : p.cell == CellKind::GRU ? 2 : 1;
  if (p.acts.size() != nacts * static_cast<size_t>(p.D) || p.alphas.size() != p.acts.size() || p.betas.size() != p.acts.size())
    fail("INTERNAL", "layer '" + op.name + "' (RNN): activations do not match the directions");
  if (L.in[1]->numel() != p.D * p.G * p.H * p.I || L.in[2]->numel() != p.D * p.G * p.H * p.H)
    fail("INTERNAL", "layer '" + op.name + "' (RNN): W or R does not match hidden_size");
  auto check = [&](size_t i, int64_t n, const char* what) {
    if (i < L.in.size() && L.in[i] && L.in[i]->numel() != n)
      fail("INTERNAL", "layer '" + op.name + "' (RNN): " + what + " has " + std::to_string(L.in[i]->numel()) + " elements, expected " + std::to_string(n));
  };
  check(3, p.D * 2 * p.G * p.H, "B");
  check(4, p.B, "sequence_lens");
  check(5, p.D * p.B * p.H, "initial_h");
  if (p.cell == CellKind::LSTM) {
    check(6, p.D * p.B * p.H, "initial_c");
    check(7, p.D * 3 * p.H, "P");
  }
  if (L.in.size() > 4 && L.in[4] && L.in[4]->dtype != DType::I32) fail("INTERNAL", "layer '" + op.name + "' (RNN): sequence_lens must be int32");
  return p;
}

class RnnRef : public Tactic {
 public:
  const char* name() const override { return "cpu.rnn"; }
  bool reference() const override { return true; }
  bool can_implement(const LayerInfo& L) const override { return L.in.size() >= 3; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext&) const override {
    Params p = params(L);
    auto opt = [&](size_t i) -> const Tensor* { return i < L.in.size() && in[i].data ? &in[i] : nullptr; };
    std::vector<int64_t> lens(p.B, p.S);
    if (const Tensor* sl = opt(4)) {
      const int32_t* v = sl->as<int32_t>();
      for (int64_t b = 0; b < p.B; ++b) {
        if (v[b] < 0 || v[b] > p.S)
          fail("INVALID_INPUT", "layer '" + L.op->name + "' (RNN): sequence_lens[" + std::to_string(b) + "] = " + std::to_string(v[b]) +
                                    " is outside [0, " + std::to_string(p.S) + "]");
        lens[b] = v[b];
      }
    }
    dispatch_float(in[0].dtype, L, [&]<typename T>() {
      using C = compute_t<T>;
      const T* X = in[0].as<T>();
      const T* W = in[1].as<T>();
      const T* R = in[2].as<T>();
      const Tensor* Bt = opt(3);
      const Tensor* H0 = opt(5);
      const Tensor* C0 = p.cell == CellKind::LSTM ? opt(6) : nullptr;
      const Tensor* Pt = p.cell == CellKind::LSTM ? opt(7) : nullptr;
      T* Y = L.out.size() > 0 && out[0].data ? out[0].as<T>() : nullptr;
      T* Yh = L.out.size() > 1 && out[1].data ? out[1].as<T>() : nullptr;
      T* Yc = L.out.size() > 2 && out[2].data ? out[2].as<T>() : nullptr;
      const int64_t S = p.S, B = p.B, I = p.I, H = p.H, D = p.D, GH = p.G * p.H;
      auto xi = [&](int64_t t, int64_t b) { return p.layout1 ? (b * S + t) * I : (t * B + b) * I; };
      auto yi = [&](int64_t t, int64_t d, int64_t b) { return p.layout1 ? ((b * S + t) * D + d) * H : ((t * D + d) * B + b) * H; };
      auto si = [&](int64_t d, int64_t b) { return p.layout1 ? (b * D + d) * H : (d * B + b) * H; };
      if (Y)
        for (int64_t k = 0; k < out[0].numel(); ++k) store(Y[k], C(0));
      std::vector<C> h(H), c(H), g(GH), rh(H), hr(H);
      for (int64_t d = 0; d < D; ++d) {
        bool rev = d == 1 || p.reverse;
        size_t na = p.acts.size() / static_cast<size_t>(D);
        auto act = [&](size_t k, C x) {
          size_t a = d * na + k;
          return activate<C>(static_cast<int>(p.acts[a]), x, static_cast<C>(p.alphas[a]), static_cast<C>(p.betas[a]));
        };
        auto clip = [&](C x) { return p.has_clip ? std::max(static_cast<C>(-p.clip), std::min(static_cast<C>(p.clip), x)) : x; };
        const T* Wd = W + d * GH * I;
        const T* Rd = R + d * GH * H;
        auto wb = [&](int64_t r) { return Bt ? static_cast<C>(load(Bt->as<T>()[d * 2 * GH + r])) : C(0); };
        auto rb = [&](int64_t r) { return Bt ? static_cast<C>(load(Bt->as<T>()[d * 2 * GH + GH + r])) : C(0); };
        auto peep = [&](int64_t k, int64_t j) { return Pt ? static_cast<C>(load(Pt->as<T>()[d * 3 * H + k * H + j])) : C(0); };
        for (int64_t b = 0; b < B; ++b) {
          for (int64_t j = 0; j < H; ++j) {
            h[j] = H0 ? static_cast<C>(load(H0->as<T>()[si(d, b) + j])) : C(0);
            c[j] = C0 ? static_cast<C>(load(C0->as<T>()[si(d, b) + j])) : C(0);
          }
          int64_t len = lens[b];
          for (int64_t step = 0; step < len; ++step) {
            int64_t t = rev ? len - 1 - step : step;
            const T* x = X + xi(t, b);
            // g[r] = W[r]·x + Wb[r] (+ R[r]·h + Rb[r], except GRU's h gate, done below)
            for (int64_t r = 0; r < GH; ++r) {
              C s = wb(r);
              for (int64_t k = 0; k < I; ++k) s += static_cast<C>(load(Wd[r * I + k])) * static_cast<C>(load(x[k]));
              g[r] = s;
            }
            int64_t rec_rows = p.cell == CellKind::GRU ? 2 * H : GH;
            for (int64_t r = 0; r < rec_rows; ++r) {
              C s = rb(r);
              for (int64_t k = 0; k < H; ++k) s += static_cast<C>(load(Rd[r * H + k])) * h[k];
              g[r] += s;
            }
            if (p.cell == CellKind::LSTM) {
              // gate order i, o, f, c; peepholes i, o, f
              for (int64_t j = 0; j < H; ++j) {
                C it = act(0, clip(g[j] + peep(0, j) * c[j]));
                C ft = p.input_forget ? C(1) - it : act(0, clip(g[2 * H + j] + peep(2, j) * c[j]));
                C ct = act(1, clip(g[3 * H + j]));
                c[j] = ft * c[j] + it * ct;
                C ot = act(0, clip(g[H + j] + peep(1, j) * c[j]));
                h[j] = ot * act(2, c[j]);
              }
            } else if (p.cell == CellKind::GRU) {
              // gate order z, r, h
              for (int64_t j = 0; j < H; ++j) rh[j] = act(0, clip(g[H + j]));  // r
              for (int64_t j = 0; j < H; ++j) {
                const T* Rr = Rd + (2 * H + j) * H;
                C s = 0;
                if (p.lbr) {
                  for (int64_t k = 0; k < H; ++k) s += static_cast<C>(load(Rr[k])) * h[k];
                  s = rh[j] * (s + rb(2 * H + j));
                } else {
                  for (int64_t k = 0; k < H; ++k) s += static_cast<C>(load(Rr[k])) * rh[k] * h[k];
                  s += rb(2 * H + j);
                }
                hr[j] = act(1, clip(g[2 * H + j] + s));
              }
              for (int64_t j = 0; j < H; ++j) {
                C z = act(0, clip(g[j]));
                h[j] = (C(1) - z) * hr[j] + z * h[j];
              }
            } else {
              for (int64_t j = 0; j < H; ++j) h[j] = act(0, clip(g[j]));
            }
            if (Y)
              for (int64_t j = 0; j < H; ++j) store(Y[yi(t, d, b) + j], h[j]);
          }
          if (Yh)
            for (int64_t j = 0; j < H; ++j) store(Yh[si(d, b) + j], h[j]);
          if (Yc)
            for (int64_t j = 0; j < H; ++j) store(Yc[si(d, b) + j], c[j]);
        }
      }
    });
  }
};

}  // namespace
KILN_REGISTER_TACTIC("cpu", "RNN", RnnRef);
}  // namespace kiln

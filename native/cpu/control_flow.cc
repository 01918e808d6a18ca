// Control flow: If, Loop and Scan run sub-plans (attributes of kind SubPlan) through nested executors
// that prepare() builds once, every layer on its reference CPU tactic. A sub-plan's inputs are the
// body's formal inputs followed by the captures (values of enclosing scopes), which the layer receives
// as its trailing inputs. Per-run buffers (loop-carried ping-pong pairs, gathered scan slices, scratch
// for omitted outputs) live in the layer's workspace, never in the LayerState: several runs of one
// engine may execute the same layer at once. Variants:
//   If   — picks a branch from the run-time condition; outputs go straight to the layer's tensors.
//   Loop — trip count and condition read at run time; carried values ping-pong; scan outputs are
//          written row by row into the layer's output ([trips, ...]).
//   Scan — opset 9+ (any scan axis, either direction, per input and output) and the opset-8 batch form
//          (leading batch dim, scan axis 1, optional per-item sequence lengths).
#include <algorithm>
#include <cstring>

#include "../executor.h"
#include "kernel_util.h"

namespace kiln {
namespace {

constexpr size_t kAlign = 64;
size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

std::string where(const LayerInfo& L) { return "layer '" + L.op->name + "' (" + L.op->kind + ")"; }

std::shared_ptr<Plan> subplan_of(const LayerInfo& L, const char* attr) {
  auto it = L.op->attrs.find(attr);
  if (it == L.op->attrs.end() || it->second.type != Attr::SubPlan || !it->second.plan)
    fail("INTERNAL", where(L) + ": sub-plan attribute '" + attr + "' is missing");
  return it->second.plan;
}

size_t sub_in_bytes(const Plan& p, size_t i) { return p.tensors[p.inputs[i]].nbytes(); }
size_t sub_out_bytes(const Plan& p, size_t i) { return p.tensors[p.outputs[i]].nbytes(); }

// Checks that the sub-plan's inputs from `first` on are the layer's inputs from `lfirst` on (captures).
void check_captures(const LayerInfo& L, const Plan& p, const char* attr, size_t first, size_t lfirst) {
  if (p.inputs.size() - first != L.in.size() - lfirst)
    fail("INTERNAL", where(L) + ": sub-plan '" + attr + "' takes " + std::to_string(p.inputs.size() - first) + " captures, the layer passes " +
                         std::to_string(L.in.size() - lfirst));
  for (size_t i = first; i < p.inputs.size(); ++i) {
    const PlanTensor* t = L.in[lfirst + i - first];
    if (!t || t->nbytes() != sub_in_bytes(p, i))
      fail("INTERNAL", where(L) + ": capture '" + p.tensors[p.inputs[i]].name + "' of sub-plan '" + attr + "' does not match the layer's input");
  }
}

void need_bytes(const LayerInfo& L, const char* what, size_t have, size_t want) {
  if (have != want)
    fail("INTERNAL", where(L) + ": " + what + " has " + std::to_string(have) + " bytes, the sub-plan uses " + std::to_string(want));
}

bool read_bool(const Tensor& t) { return t.data && t.numel() > 0 && *static_cast<const uint8_t*>(t.data) != 0; }

// ---------------------------------------------------------------------------------------------- If

struct IfState : LayerState {
  std::unique_ptr<Executor> branch[2];  // [else, then]
  std::vector<size_t> scratch;          // workspace offset for each omitted output (SIZE_MAX: present)
  size_t ws = 0;
};

class IfRef : public Tactic {
 public:
  const char* name() const override { return "cpu.if"; }
  bool reference() const override { return true; }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = std::make_unique<IfState>();
    const char* names[2] = {"else_branch", "then_branch"};
    for (int b = 0; b < 2; ++b) {
      auto p = subplan_of(L, names[b]);
      check_captures(L, *p, names[b], 0, 1);
      if (p->outputs.size() < L.out.size()) fail("INTERNAL", where(L) + ": sub-plan '" + names[b] + "' has too few outputs");
      for (size_t i = 0; i < L.out.size(); ++i)
        if (L.out[i]) need_bytes(L, "an output", L.out[i]->nbytes(), sub_out_bytes(*p, i));
      st->branch[b] = Executor::reference(p);
    }
    layout(L, *st);
    return st;
  }
  size_t workspace(const LayerInfo& L) const override {
    IfState st;
    layout(L, st);
    return st.ws;
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    auto& st = *static_cast<IfState*>(s);
    Executor& ex = *st.branch[read_bool(in[0]) ? 1 : 0];
    std::vector<const void*> ins;
    for (size_t i = 1; i < L.in.size(); ++i) ins.push_back(in[i].data);
    std::vector<void*> outs;
    uint8_t* ws = static_cast<uint8_t*>(ctx.workspace);
    for (size_t i = 0; i < st.scratch.size(); ++i)
      outs.push_back(st.scratch[i] == SIZE_MAX ? out[i].data : ws + st.scratch[i]);
    ex.run(ins, outs);
  }

 private:
  static void layout(const LayerInfo& L, IfState& st) {
    const Plan& p = *subplan_of(L, "then_branch");
    st.scratch.clear();
    st.ws = 0;
    for (size_t i = 0; i < p.outputs.size(); ++i) {
      if (i < L.out.size() && L.out[i]) {
        st.scratch.push_back(SIZE_MAX);
      } else {
        st.scratch.push_back(st.ws);
        st.ws += align_up(std::max<size_t>(sub_out_bytes(p, i), 1));
      }
    }
  }
};

// -------------------------------------------------------------------------------------------- Loop

struct LoopState : LayerState {
  std::vector<std::unique_ptr<Executor>> bodies;  // one, or one per iteration (specialized)
  bool specialized = false;
  size_t n = 0, k = 0;               // carried values, scan outputs
  std::vector<size_t> carried_bytes;  // per carried value
  std::vector<size_t> scan_bytes;     // per scan output: one row
  // workspace offsets
  size_t iter_off = 0, cond_in_off = 0, cond_out_off = 0, ws = 0;
  std::vector<size_t> cur_off, next_off, scan_scratch_off;
};

class LoopRef : public Tactic {
 public:
  const char* name() const override { return "cpu.loop"; }
  bool reference() const override { return true; }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = std::make_unique<LoopState>();
    layout(L, *st);
    st->specialized = L.op->i("specialized", 0) != 0;
    int64_t n = L.op->i("n_bodies", 1);
    for (int64_t b = 0; b < n; ++b) {
      std::string attr = b == 0 ? "body" : "body_" + std::to_string(b);
      auto p = subplan_of(L, attr.c_str());
      const Plan& p0 = *subplan_of(L, "body");
      if (p->inputs.size() != p0.inputs.size() || p->outputs.size() != p0.outputs.size())
        fail("INTERNAL", where(L) + ": specialized bodies differ in their inputs or outputs");
      for (size_t i = 0; i < p->inputs.size(); ++i) need_bytes(L, "a specialized body input", sub_in_bytes(*p, i), sub_in_bytes(p0, i));
      for (size_t i = 0; i < p->outputs.size(); ++i) need_bytes(L, "a specialized body output", sub_out_bytes(*p, i), sub_out_bytes(p0, i));
      st->bodies.push_back(Executor::reference(p));
    }
    if (st->bodies.empty()) fail("INTERNAL", where(L) + ": no body");
    return st;
  }
  size_t workspace(const LayerInfo& L) const override {
    LoopState st;
    layout(L, st);
    return st.ws;
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    auto& st = *static_cast<LoopState*>(s);
    uint8_t* ws = static_cast<uint8_t*>(ctx.workspace);
    int64_t trips = in[0].data ? *static_cast<const int64_t*>(in[0].data) : INT64_MAX;
    bool cond = in[1].data ? read_bool(in[1]) : true;
    std::vector<uint8_t*> cur(st.n), next(st.n);
    for (size_t j = 0; j < st.n; ++j) {
      cur[j] = ws + st.cur_off[j];
      next[j] = ws + st.next_off[j];
      if (st.carried_bytes[j]) std::memcpy(cur[j], in[2 + j].data, st.carried_bytes[j]);
    }
    int64_t rows = INT64_MAX;  // scan outputs hold this many iterations
    for (size_t q = 0; q < st.k; ++q) {
      size_t o = st.n + q;
      if (o < L.out.size() && L.out[o]) rows = std::min<int64_t>(rows, L.out[o]->shape.empty() ? 0 : L.out[o]->shape[0]);
    }
    if (st.k && rows == INT64_MAX) rows = trips;  // every scan output omitted: nothing to bound
    std::vector<const void*> ins(2 + st.n);
    for (size_t i = 2 + st.n; i < L.in.size(); ++i) ins.push_back(in[i].data);
    std::vector<void*> outs(1 + st.n + st.k);
    int64_t* iter = reinterpret_cast<int64_t*>(ws + st.iter_off);
    uint8_t* cond_in = ws + st.cond_in_off;
    uint8_t* cond_out = ws + st.cond_out_off;
    int64_t i = 0;
    for (; i < trips && cond; ++i) {
      if (st.k && i >= rows)
        fail("RUNTIME", where(L) + ": the loop runs more than the " + std::to_string(rows) +
                            " iterations its scan outputs were sized for at build");
      *iter = i;
      *cond_in = cond ? 1 : 0;
      ins[0] = iter;
      ins[1] = cond_in;
      outs[0] = cond_out;
      for (size_t j = 0; j < st.n; ++j) {
        ins[2 + j] = cur[j];
        outs[1 + j] = next[j];
      }
      for (size_t q = 0; q < st.k; ++q) {
        size_t o = st.n + q;
        bool present = o < L.out.size() && out[o].data;
        outs[1 + st.n + q] = present ? static_cast<uint8_t*>(out[o].data) + static_cast<size_t>(i) * st.scan_bytes[q] : ws + st.scan_scratch_off[q];
      }
      size_t which = 0;
      if (st.specialized) {
        if (static_cast<size_t>(i) >= st.bodies.size())
          fail("RUNTIME", where(L) + ": the body was specialized at build for " + std::to_string(st.bodies.size()) + " iterations; iteration " +
                              std::to_string(i) + " has no body");
        which = static_cast<size_t>(i);
      }
      st.bodies[which]->run(ins, outs);
      std::swap(cur, next);
      cond = *cond_out != 0;
    }
    if (st.k && i < rows)
      fail("RUNTIME", where(L) + ": the loop stopped after " + std::to_string(i) + " iterations, but its scan outputs were sized at build for " +
                          std::to_string(rows) + " (the trip count); static-shape engines cannot return fewer rows");
    for (size_t j = 0; j < st.n && j < L.out.size(); ++j)
      if (out[j].data && st.carried_bytes[j]) std::memcpy(out[j].data, cur[j], st.carried_bytes[j]);
  }

 private:
  static void layout(const LayerInfo& L, LoopState& st) {
    const Plan& p = *subplan_of(L, "body");
    st.n = static_cast<size_t>(L.op->i("n_carried"));
    if (L.in.size() < 2 + st.n || p.inputs.size() < 2 + st.n || p.outputs.size() < 1 + st.n)
      fail("INTERNAL", where(L) + ": inputs do not match the body");
    st.k = p.outputs.size() - 1 - st.n;
    if (L.out.size() > st.n + st.k) fail("INTERNAL", where(L) + ": more outputs than the body gives");
    check_captures(L, p, "body", 2 + st.n, 2 + st.n);
    need_bytes(L, "the iteration number", 8, sub_in_bytes(p, 0));
    need_bytes(L, "the condition", 1, sub_in_bytes(p, 1));
    need_bytes(L, "the body's condition", 1, sub_out_bytes(p, 0));
    if (L.in[0] && L.in[0]->nbytes() != 8) fail("INTERNAL", where(L) + ": M must be one int64");
    if (L.in[1] && L.in[1]->nbytes() != 1) fail("INTERNAL", where(L) + ": cond must be one bool");
    size_t off = 0;
    auto take = [&](size_t bytes) {
      size_t o = off;
      off += align_up(std::max<size_t>(bytes, 1));
      return o;
    };
    st.iter_off = take(8);
    st.cond_in_off = take(1);
    st.cond_out_off = take(1);
    st.carried_bytes.clear();
    st.cur_off.clear();
    st.next_off.clear();
    for (size_t j = 0; j < st.n; ++j) {
      size_t b = sub_in_bytes(p, 2 + j);
      if (!L.in[2 + j]) fail("INTERNAL", where(L) + ": loop-carried input missing");
      need_bytes(L, "a loop-carried input", L.in[2 + j]->nbytes(), b);
      need_bytes(L, "a loop-carried body output", sub_out_bytes(p, 1 + j), b);
      if (j < L.out.size() && L.out[j]) need_bytes(L, "a loop-carried output", L.out[j]->nbytes(), b);
      st.carried_bytes.push_back(b);
      st.cur_off.push_back(take(b));
      st.next_off.push_back(take(b));
    }
    st.scan_bytes.clear();
    st.scan_scratch_off.clear();
    for (size_t q = 0; q < st.k; ++q) {
      size_t b = sub_out_bytes(p, 1 + st.n + q);
      size_t o = st.n + q;
      if (o < L.out.size() && L.out[o]) {
        const PlanTensor& t = *L.out[o];
        int64_t rows = t.shape.empty() ? 0 : t.shape[0];
        if (t.nbytes() != static_cast<size_t>(rows) * b) fail("INTERNAL", where(L) + ": scan output does not match the body");
        st.scan_scratch_off.push_back(SIZE_MAX);
      } else {
        st.scan_scratch_off.push_back(take(b));
      }
      st.scan_bytes.push_back(b);
    }
    st.ws = off;
  }
};

// -------------------------------------------------------------------------------------------- Scan

// How one scan input or output is cut along its scan axis: per batch item, `outer` blocks of
// `inner` bytes, T slices each.
struct Cut {
  size_t outer = 1, inner = 0, T = 0, batch_stride = 0;
  bool rev = false;
  size_t scratch = SIZE_MAX;  // workspace offset of the gathered slice (SIZE_MAX: not needed)
  uint8_t* at(void* base, size_t b, size_t t, size_t o) const {
    return static_cast<uint8_t*>(base) + b * batch_stride + (o * T + t) * inner;
  }
};

Cut make_cut(const PlanTensor& t, int64_t axis, bool batched, bool rev) {
  Cut c;
  size_t es = dtype_size(t.dtype);
  size_t start = batched ? 1 : 0;
  for (size_t d = start; d < static_cast<size_t>(axis); ++d) c.outer *= static_cast<size_t>(t.shape[d]);
  c.T = static_cast<size_t>(t.shape[axis]);
  c.inner = es;
  for (size_t d = static_cast<size_t>(axis) + 1; d < t.shape.size(); ++d) c.inner *= static_cast<size_t>(t.shape[d]);
  c.batch_stride = c.outer * c.T * c.inner;
  c.rev = rev;
  return c;
}

struct ScanState : LayerState {
  std::unique_ptr<Executor> body;
  size_t n = 0, m = 0, k = 0, B = 1, T = 0;
  std::vector<size_t> state_bytes, cur_off, next_off;
  std::vector<Cut> in_cut, out_cut;
  std::vector<bool> out_present;
  size_t ws = 0;
};

class ScanRef : public Tactic {
 public:
  const char* name() const override { return "cpu.scan"; }
  bool reference() const override { return true; }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = std::make_unique<ScanState>();
    layout(L, *st);
    st->body = Executor::reference(subplan_of(L, "body"));
    return st;
  }
  size_t workspace(const LayerInfo& L) const override {
    ScanState st;
    layout(L, st);
    return st.ws;
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    auto& st = *static_cast<ScanState*>(s);
    uint8_t* ws = static_cast<uint8_t*>(ctx.workspace);
    std::vector<int64_t> lens(st.B, static_cast<int64_t>(st.T));
    if (in[0].data) {
      const int64_t* p = in[0].as<int64_t>();
      for (size_t b = 0; b < st.B; ++b) {
        if (p[b] < 0 || p[b] > static_cast<int64_t>(st.T))
          fail("INVALID_INPUT", where(L) + ": sequence_lens[" + std::to_string(b) + "] = " + std::to_string(p[b]) + " is outside [0, " +
                                    std::to_string(st.T) + "]");
        lens[b] = p[b];
      }
    }
    std::vector<const void*> ins(st.n + st.m);
    for (size_t i = 1 + st.n + st.m; i < L.in.size(); ++i) ins.push_back(in[i].data);
    std::vector<void*> outs(st.n + st.k);
    for (size_t b = 0; b < st.B; ++b) {
      std::vector<uint8_t*> cur(st.n), next(st.n);
      for (size_t j = 0; j < st.n; ++j) {
        cur[j] = ws + st.cur_off[j];
        next[j] = ws + st.next_off[j];
        if (st.state_bytes[j]) std::memcpy(cur[j], static_cast<const uint8_t*>(in[1 + j].data) + b * st.state_bytes[j], st.state_bytes[j]);
      }
      size_t len = static_cast<size_t>(lens[b]);
      for (size_t step = 0; step < len; ++step) {
        for (size_t j = 0; j < st.n; ++j) {
          ins[j] = cur[j];
          outs[j] = next[j];
        }
        for (size_t j = 0; j < st.m; ++j) {
          const Cut& c = st.in_cut[j];
          size_t t = c.rev ? len - 1 - step : step;
          void* base = in[1 + st.n + j].data;
          if (c.scratch == SIZE_MAX) {
            ins[st.n + j] = c.at(base, b, t, 0);
          } else {
            uint8_t* dst = ws + c.scratch;
            for (size_t o = 0; o < c.outer; ++o) std::memcpy(dst + o * c.inner, c.at(base, b, t, o), c.inner);
            ins[st.n + j] = dst;
          }
        }
        for (size_t q = 0; q < st.k; ++q) {
          const Cut& c = st.out_cut[q];
          size_t t = c.rev ? len - 1 - step : step;
          outs[st.n + q] = c.scratch == SIZE_MAX ? c.at(out[st.n + q].data, b, t, 0) : ws + c.scratch;
        }
        st.body->run(ins, outs);
        for (size_t q = 0; q < st.k; ++q) {
          const Cut& c = st.out_cut[q];
          if (c.scratch == SIZE_MAX || !st.out_present[q]) continue;
          size_t t = c.rev ? len - 1 - step : step;
          for (size_t o = 0; o < c.outer; ++o) std::memcpy(c.at(out[st.n + q].data, b, t, o), ws + c.scratch + o * c.inner, c.inner);
        }
        std::swap(cur, next);
      }
      // rows past this item's sequence length are zeros
      for (size_t q = 0; q < st.k; ++q) {
        const Cut& c = st.out_cut[q];
        if (!st.out_present[q]) continue;
        for (size_t t = len; t < st.T; ++t)
          for (size_t o = 0; o < c.outer; ++o) std::memset(c.at(out[st.n + q].data, b, t, o), 0, c.inner);
      }
      for (size_t j = 0; j < st.n && j < L.out.size(); ++j)
        if (out[j].data && st.state_bytes[j]) std::memcpy(static_cast<uint8_t*>(out[j].data) + b * st.state_bytes[j], cur[j], st.state_bytes[j]);
    }
  }

 private:
  static void layout(const LayerInfo& L, ScanState& st) {
    const Plan& p = *subplan_of(L, "body");
    const PlanOp& op = *L.op;
    bool batched = op.i("batched") != 0;
    st.n = static_cast<size_t>(op.i("n_state"));
    st.m = static_cast<size_t>(op.i("n_scan"));
    if (L.in.size() < 1 + st.n + st.m || p.inputs.size() < st.n + st.m || p.outputs.size() < st.n || st.m == 0)
      fail("INTERNAL", where(L) + ": inputs do not match the body");
    st.k = p.outputs.size() - st.n;
    if (L.out.size() > st.n + st.k) fail("INTERNAL", where(L) + ": more outputs than the body gives");
    check_captures(L, p, "body", st.n + st.m, 1 + st.n + st.m);
    const auto& in_axes = op.ints("in_axes");
    const auto& in_rev = op.ints("in_rev");
    const auto& out_axes = op.ints("out_axes");
    const auto& out_rev = op.ints("out_rev");
    if (in_axes.size() != st.m || in_rev.size() != st.m || out_axes.size() != st.k || out_rev.size() != st.k)
      fail("INTERNAL", where(L) + ": scan axes/directions do not match the body");
    for (size_t i = 1; i < 1 + st.n + st.m; ++i)
      if (!L.in[i]) fail("INTERNAL", where(L) + ": a state or scan input is missing");
    st.B = batched ? static_cast<size_t>(L.in[1]->shape.at(0)) : 1;
    if (L.in[0] && (!batched || L.in[0]->numel() != static_cast<int64_t>(st.B) || L.in[0]->dtype != DType::I64))
      fail("INTERNAL", where(L) + ": sequence_lens must be int64 [batch]");
    size_t off = 0;
    auto take = [&](size_t bytes) {
      size_t o = off;
      off += align_up(std::max<size_t>(bytes, 1));
      return o;
    };
    st.state_bytes.clear();
    st.cur_off.clear();
    st.next_off.clear();
    for (size_t j = 0; j < st.n; ++j) {
      size_t b = sub_in_bytes(p, j);
      need_bytes(L, "a state input", L.in[1 + j]->nbytes(), b * st.B);
      need_bytes(L, "a state body output", sub_out_bytes(p, j), b);
      if (j < L.out.size() && L.out[j]) need_bytes(L, "a state output", L.out[j]->nbytes(), b * st.B);
      st.state_bytes.push_back(b);
      st.cur_off.push_back(take(b));
      st.next_off.push_back(take(b));
    }
    st.in_cut.clear();
    for (size_t j = 0; j < st.m; ++j) {
      const PlanTensor& t = *L.in[1 + st.n + j];
      int64_t ax = in_axes[j];
      if (ax < (batched ? 1 : 0) || ax >= static_cast<int64_t>(t.shape.size())) fail("INTERNAL", where(L) + ": bad scan input axis");
      Cut c = make_cut(t, ax, batched, in_rev[j] != 0);
      if (j == 0) st.T = c.T;
      if (c.T != st.T) fail("INTERNAL", where(L) + ": scan inputs of different lengths");
      need_bytes(L, "a scan input slice", c.outer * c.inner, sub_in_bytes(p, st.n + j));
      if (c.outer > 1) c.scratch = take(c.outer * c.inner);
      st.in_cut.push_back(c);
    }
    st.out_cut.clear();
    st.out_present.clear();
    for (size_t q = 0; q < st.k; ++q) {
      size_t o = st.n + q;
      size_t slice = sub_out_bytes(p, o);
      Cut c;
      bool present = o < L.out.size() && L.out[o];
      if (present) {
        const PlanTensor& t = *L.out[o];
        int64_t ax = out_axes[q];
        if (ax < (batched ? 1 : 0) || ax >= static_cast<int64_t>(t.shape.size())) fail("INTERNAL", where(L) + ": bad scan output axis");
        c = make_cut(t, ax, batched, out_rev[q] != 0);
        if (c.T != st.T) fail("INTERNAL", where(L) + ": scan output length differs from the inputs'");
        need_bytes(L, "a scan output slice", c.outer * c.inner, slice);
        if (c.outer > 1) c.scratch = take(slice);
      } else {
        c.inner = slice;
        c.scratch = take(slice);
      }
      st.out_cut.push_back(c);
      st.out_present.push_back(present);
    }
    st.ws = off;
  }
};

}  // namespace
KILN_REGISTER_TACTIC("cpu", "If", IfRef);
KILN_REGISTER_TACTIC("cpu", "Loop", LoopRef);
KILN_REGISTER_TACTIC("cpu", "Scan", ScanRef);
}  // namespace kiln

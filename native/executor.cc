#include "executor.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <random>

#include "threadpool.h"

namespace kiln {

namespace {
constexpr size_t kAlign = 64;
size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

void* aligned_alloc_or_throw(size_t n, const char* what) {
  if (n == 0) return nullptr;
  void* p = std::aligned_alloc(kAlign, align_up(n));
  if (!p) fail("RUNTIME", std::string("out of host memory allocating ") + what + " (" + std::to_string(n) + " bytes)");
  return p;
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

struct Executor::Context {
  void* arena = nullptr;
  std::vector<Tensor> t;
  std::vector<std::vector<Tensor>> in, out;
  RunContext rc;
  ~Context() { std::free(arena); }
};

Executor::Executor(std::shared_ptr<Plan> plan, std::string backend) : plan_(std::move(plan)), backend_(std::move(backend)) {
  const Plan& p = *plan_;
  layers_.resize(p.ops.size());
  for (size_t i = 0; i < p.ops.size(); ++i) {
    LayerInfo& L = layers_[i];
    L.op = &p.ops[i];
    L.plan = &p;
    for (int32_t x : p.ops[i].inputs) L.in.push_back(x < 0 ? nullptr : &p.tensors[x]);
    for (int32_t x : p.ops[i].outputs) L.out.push_back(x < 0 ? nullptr : &p.tensors[x]);
  }
  for (int32_t x : p.inputs)
    if (p.tensors[x].kind != TensorKind::Input)
      fail("INVALID_ENGINE", "plan input '" + p.tensors[x].name + "' is not marked as an input tensor");
  plan_memory();
}

Executor::~Executor() { std::free(const_store_); }

void Executor::plan_memory() {
  const Plan& p = *plan_;
  size_t n = p.tensors.size();
  // Constants move to aligned storage once: kernels may assume aligned weights.
  const_ptrs_.assign(n, nullptr);
  for (size_t i = 0; i < n; ++i)
    if (p.tensors[i].kind == TensorKind::Constant) constant_bytes_ += align_up(p.tensors[i].data_len);
  const_store_ = aligned_alloc_or_throw(constant_bytes_, "constants");
  size_t coff = 0;
  for (size_t i = 0; i < n; ++i) {
    const PlanTensor& t = p.tensors[i];
    if (t.kind != TensorKind::Constant) continue;
    const_ptrs_[i] = static_cast<uint8_t*>(const_store_) + coff;
    if (t.data_len) std::memcpy(const_ptrs_[i], t.data, t.data_len);
    coff += align_up(t.data_len);
  }
  // Lifetimes of storage roots (a view lives in its base).
  auto root = [&](size_t i) {
    size_t r = i, guard = 0;
    while (p.tensors[r].view_base >= 0) {
      r = static_cast<size_t>(p.tensors[r].view_base);
      if (++guard > n) fail("INVALID_ENGINE", "plan has a cycle of views at tensor '" + p.tensors[i].name + "'");
    }
    return r;
  };
  std::vector<int64_t> first(n, INT64_MAX), last(n, -1);
  auto touch = [&](size_t i, int64_t at) {
    size_t r = root(i);
    first[r] = std::min(first[r], at);
    last[r] = std::max(last[r], at);
  };
  int64_t nops = static_cast<int64_t>(p.ops.size());
  for (int64_t k = 0; k < nops; ++k) {
    for (int32_t x : p.ops[k].inputs)
      if (x >= 0) touch(x, k);
    for (int32_t x : p.ops[k].outputs)
      if (x >= 0) touch(x, k);
  }
  for (int32_t x : p.outputs) touch(x, nops);
  offsets_.assign(n, -1);
  std::vector<size_t> order;
  for (size_t i = 0; i < n; ++i) {
    const PlanTensor& t = p.tensors[i];
    if (t.view_base >= 0 || t.kind == TensorKind::Constant || t.kind == TensorKind::Input || last[i] < 0) continue;
    order.push_back(i);
  }
  for (size_t i = 0; i < n; ++i)
    if (p.tensors[i].view_base >= 0 && p.tensors[root(i)].kind == TensorKind::Input)
      fail("INVALID_ENGINE", "view '" + p.tensors[i].name + "' into a plan input is not supported");
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p.tensors[a].nbytes() > p.tensors[b].nbytes(); });
  struct Placed { int64_t first, last; size_t off, size; };
  std::vector<Placed> placed;
  for (size_t i : order) {
    size_t size = align_up(std::max<size_t>(p.tensors[i].nbytes(), 1));
    std::vector<std::pair<size_t, size_t>> busy;
    for (const Placed& q : placed)
      if (q.first <= last[i] && first[i] <= q.last) busy.emplace_back(q.off, q.off + q.size);
    std::sort(busy.begin(), busy.end());
    size_t off = 0;
    for (auto& [b, e] : busy) {
      if (off + size <= b) break;
      off = std::max(off, e);
    }
    offsets_[i] = static_cast<int64_t>(off);
    placed.push_back({first[i], last[i], off, size});
    arena_bytes_ = std::max(arena_bytes_, off + size);
  }
}

void Executor::prepare_layers() {
  states_.clear();
  workspace_bytes_ = 0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    states_.push_back(tactics_[i]->prepare(layers_[i]));
    workspace_bytes_ = std::max(workspace_bytes_, align_up(tactics_[i]->workspace(layers_[i])));
  }
  std::lock_guard<std::mutex> l(pool_mu_);
  pool_.clear();  // contexts size their workspace from the tactics
}

std::unique_ptr<Executor::Context> Executor::make_context() {
  const Plan& p = *plan_;
  auto c = std::make_unique<Context>();
  c->arena = aligned_alloc_or_throw(arena_bytes_ + workspace_bytes_ + kAlign, "the activation arena");
  uint8_t* base = static_cast<uint8_t*>(c->arena);
  c->t.resize(p.tensors.size());
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    c->t[i].dtype = p.tensors[i].dtype;
    c->t[i].shape = p.tensors[i].shape;
    if (p.tensors[i].kind == TensorKind::Constant) c->t[i].data = const_ptrs_[i];
    else if (offsets_[i] >= 0) c->t[i].data = base + offsets_[i];
  }
  for (size_t i = 0; i < p.tensors.size(); ++i) {  // views, in dependency order
    size_t r = i;
    uint64_t off = 0;
    while (p.tensors[r].view_base >= 0) {
      off += p.tensors[r].view_offset;
      r = static_cast<size_t>(p.tensors[r].view_base);
    }
    if (r != i) c->t[i].data = static_cast<uint8_t*>(c->t[r].data) + off;
  }
  c->in.resize(layers_.size());
  c->out.resize(layers_.size());
  for (size_t k = 0; k < layers_.size(); ++k) {
    for (int32_t x : p.ops[k].inputs) c->in[k].push_back(x < 0 ? Tensor{} : c->t[x]);
    for (int32_t x : p.ops[k].outputs) c->out[k].push_back(x < 0 ? Tensor{} : c->t[x]);
  }
  c->rc.pool = &ThreadPool::instance();
  c->rc.threads = c->rc.pool->size();
  c->rc.workspace = workspace_bytes_ ? base + arena_bytes_ : nullptr;
  c->rc.workspace_bytes = workspace_bytes_;
  return c;
}

std::unique_ptr<Executor::Context> Executor::acquire() {
  {
    std::lock_guard<std::mutex> l(pool_mu_);
    if (!pool_.empty()) {
      auto c = std::move(pool_.back());
      pool_.pop_back();
      return c;
    }
  }
  return make_context();
}

void Executor::release(std::unique_ptr<Context> c) {
  std::lock_guard<std::mutex> l(pool_mu_);
  if (pool_.size() < 8) pool_.push_back(std::move(c));
}

void Executor::bind(Context& c, const std::vector<const void*>& inputs) {
  const Plan& p = *plan_;
  if (inputs.size() != p.inputs.size())
    fail("INTERNAL", "run got " + std::to_string(inputs.size()) + " inputs, the plan has " + std::to_string(p.inputs.size()));
  for (size_t i = 0; i < inputs.size(); ++i) c.t[p.inputs[i]].data = const_cast<void*>(inputs[i]);
  for (size_t k = 0; k < layers_.size(); ++k) {
    const PlanOp& op = p.ops[k];
    for (size_t j = 0; j < op.inputs.size(); ++j)
      if (op.inputs[j] >= 0 && p.tensors[op.inputs[j]].kind == TensorKind::Input) c.in[k][j].data = c.t[op.inputs[j]].data;
  }
}

void Executor::run_layer(Context& c, size_t k) {
  tactics_[k]->run(layers_[k], states_[k].get(), c.in[k].data(), c.out[k].data(), c.rc);
}

void Executor::execute(Context& c, const std::vector<const void*>& inputs, const std::vector<void*>& outputs,
                       std::vector<double>* times) {
  const Plan& p = *plan_;
  bind(c, inputs);
  for (size_t k = 0; k < layers_.size(); ++k) {
    double t0 = times ? now_ms() : 0;
    run_layer(c, k);
    if (times) times->push_back(now_ms() - t0);
  }
  if (outputs.size() != p.outputs.size()) fail("INTERNAL", "run got the wrong number of output buffers");
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& t = c.t[p.outputs[i]];
    if (t.nbytes()) std::memcpy(outputs[i], t.data, t.nbytes());
  }
}

void Executor::run(const std::vector<const void*>& inputs, const std::vector<void*>& outputs) {
  auto c = acquire();
  execute(*c, inputs, outputs, nullptr);
  release(std::move(c));
}

std::vector<double> Executor::profile(const std::vector<const void*>& inputs, const std::vector<void*>& outputs) {
  auto c = acquire();
  std::vector<double> times;
  execute(*c, inputs, outputs, &times);
  release(std::move(c));
  return times;
}

std::unique_ptr<Executor> Executor::load(std::shared_ptr<Plan> plan, const std::string& backend,
                                         const std::vector<LayerChoice>& choices) {
  std::unique_ptr<Executor> e(new Executor(std::move(plan), backend));
  if (choices.size() != e->layers_.size())
    fail("INVALID_ENGINE", "engine section TACT: " + std::to_string(choices.size()) + " tactic choices for " +
                               std::to_string(e->layers_.size()) + " layers");
  for (size_t k = 0; k < choices.size(); ++k) {
    const PlanOp& op = *e->layers_[k].op;
    const Tactic* t = find_tactic(backend, op.kind, choices[k].tactic);
    if (!t)
      fail("ENGINE_MISMATCH", "engine section TACT: layer '" + op.name + "' (" + op.kind + ") uses tactic '" + choices[k].tactic +
                                  "', which this build of kiln's " + backend + " backend does not have; rebuild the engine");
    if (!t->can_implement(e->layers_[k]))
      fail("INVALID_ENGINE", "engine section TACT: tactic '" + choices[k].tactic + "' cannot run layer '" + op.name + "'");
    e->tactics_.push_back(t);
  }
  e->choices_ = choices;
  e->prepare_layers();
  return e;
}

std::unique_ptr<Executor> Executor::build(std::shared_ptr<Plan> plan, const BuildOptions& opts) {
  std::unique_ptr<Executor> e(new Executor(std::move(plan), opts.backend));
  const Plan& p = *e->plan_;
  size_t n = e->layers_.size();
  std::vector<std::vector<const Tactic*>> cands(n);
  for (size_t k = 0; k < n; ++k) {
    const PlanOp& op = p.ops[k];
    const auto& all = tactics_for(opts.backend, op.kind);
    for (const Tactic* t : all)
      if (t->can_implement(e->layers_[k])) cands[k].push_back(t);
    if (cands[k].empty())
      fail("UNSUPPORTED", "layer '" + op.name + "' (" + op.kind + "): " +
                              (all.empty() ? "the " + opts.backend + " backend has no kernel for this op kind"
                                           : "none of the " + opts.backend + " kernels for " + op.kind + " supports this configuration"));
    e->tactics_.push_back(cands[k][0]);
  }
  e->choices_.resize(n);
  e->prepare_layers();
  // Timing runs every candidate in one context: its workspace must fit the largest candidate's.
  for (size_t k = 0; k < n; ++k)
    for (const Tactic* t : cands[k]) e->workspace_bytes_ = std::max(e->workspace_bytes_, align_up(t->workspace(e->layers_[k])));
  bool any_choice = false;
  for (auto& c : cands) any_choice |= c.size() > 1;
  // Timing runs the plan once on generated inputs so that every layer sees realistic data.
  std::unique_ptr<Context> ctx;
  std::vector<std::vector<uint8_t>> in_bufs;
  bool timing = opts.time_tactics && any_choice;
  if (timing) {
    ctx = e->make_context();
    std::mt19937 rng(1234);
    std::uniform_real_distribution<float> uni(-1.f, 1.f);
    std::vector<const void*> ins;
    for (int32_t x : p.inputs) {
      const PlanTensor& t = p.tensors[x];
      std::vector<uint8_t> b(t.nbytes(), 0);
      if (t.dtype == DType::F32)
        for (size_t i = 0; i < b.size() / 4; ++i) reinterpret_cast<float*>(b.data())[i] = uni(rng);
      in_bufs.push_back(std::move(b));
      ins.push_back(in_bufs.back().data());
    }
    e->bind(*ctx, ins);
  }
  auto cancelled = [&] { return opts.cancel && opts.cancel->load() != 0; };
  for (size_t k = 0; k < n; ++k) {
    if (cancelled()) fail("CANCELLED", "build cancelled at layer " + std::to_string(k) + " of " + std::to_string(n));
    LayerChoice& choice = e->choices_[k];
    if (timing && cands[k].size() > 1) {
      double best = 1e300;
      for (const Tactic* t : cands[k]) {
        e->tactics_[k] = t;
        e->states_[k] = t->prepare(e->layers_[k]);
        size_t ws = align_up(t->workspace(e->layers_[k]));
        double med = -1;
        if (ws <= e->workspace_bytes_) {
          try {
            e->run_layer(*ctx, k);  // warm-up
            std::vector<double> runs;
            for (int r = 0; r < opts.timing_iterations; ++r) {
              double t0 = now_ms();
              e->run_layer(*ctx, k);
              runs.push_back(now_ms() - t0);
              if (runs.back() > opts.timing_cap_ms) break;
            }
            std::sort(runs.begin(), runs.end());
            med = runs[runs.size() / 2];
          } catch (const Error&) {
            timing = false;  // generated data broke a data-dependent layer: keep preference order from here
          }
        }
        choice.candidates.push_back({t->name(), med});
        if (med >= 0 && med < best) {
          best = med;
          choice.tactic = t->name();
        }
        if (!timing) break;
      }
      if (choice.tactic.empty()) choice.tactic = cands[k][0]->name();
      for (const Tactic* t : cands[k])
        if (choice.tactic == t->name()) e->tactics_[k] = t;
      e->states_[k] = e->tactics_[k]->prepare(e->layers_[k]);
    } else {
      choice.tactic = cands[k][0]->name();
      for (const Tactic* t : cands[k]) choice.candidates.push_back({t->name(), -1});
    }
    if (timing) {
      try {
        e->run_layer(*ctx, k);
      } catch (const Error&) {
        timing = false;
      }
    }
    if (opts.progress) opts.progress(k + 1, n, p.ops[k].name);
  }
  e->prepare_layers();
  return e;
}

}  // namespace kiln

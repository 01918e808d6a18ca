#include "executor.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <random>

#include "threadpool.h"

namespace kiln {

namespace {
constexpr size_t kAlign = 256;
size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

Backend& need_backend(const std::string& name) {
  Backend* b = find_backend(name);
  if (!b) fail("UNSUPPORTED", "this kiln addon has no '" + name + "' backend");
  return *b;
}
}  // namespace

// One execution context: the arena (and workspace) on the backend, a stream, host buffers for the
// fallback layers' tensors, and each layer's run-time tensors.
std::string layer_signature(const LayerInfo& L) {
  const PlanOp& op = *L.op;
  std::string s = op.kind + "{";
  for (const auto& [k, a] : op.attrs) {
    s += k + "=";
    switch (a.type) {
      case Attr::Int: s += std::to_string(a.i); break;
      case Attr::Float: s += std::to_string(a.f); break;
      case Attr::String: s += a.s; break;
      case Attr::Ints: for (auto x : a.ints) s += std::to_string(x) + ","; break;
      case Attr::Floats: for (auto x : a.floats) s += std::to_string(x) + ","; break;
      case Attr::SubPlan: s += "plan"; break;
    }
    s += ";";
  }
  s += "}";
  auto tensors = [&](const std::vector<const PlanTensor*>& ts) {
    s += "(";
    for (auto* t : ts) {
      if (!t) { s += "-,"; continue; }
      s += std::string(dtype_name(t->dtype)) + shape_str(t->shape) + (t->kind == TensorKind::Constant ? "c" : "") + ",";
    }
    s += ")";
  };
  tensors(L.in);
  tensors(L.out);
  return s;
}

struct Executor::Context {
  Backend* be = nullptr;
  Backend* cpu = nullptr;
  void* arena = nullptr;
  void* host = nullptr;  // fallback layers: host copies of their tensors, then the host workspace
  void* stream = nullptr;
  void* launch_cache = nullptr;
  std::vector<Tensor> t;
  std::vector<std::vector<Tensor>> in, out;            // what each layer's tactic is given
  std::vector<std::vector<void*>> dev_in, dev_out;     // fallback layers: the device tensors behind them
  RunContext rc, host_rc;
  ~Context() {
    if (launch_cache) be->release_launch_cache(launch_cache);
    if (stream) be->destroy_stream(stream);
    be->release(arena);
    cpu->release(host);
  }
};

Executor::Executor(std::shared_ptr<Plan> plan, Backend* be) : plan_(std::move(plan)), be_(be), cpu_(&need_backend("cpu")) {
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
  on_host_.assign(p.ops.size(), false);
  place_constants();
  plan_memory();
}

Executor::~Executor() {
  {
    std::lock_guard<std::mutex> l(pool_mu_);
    pool_.clear();
  }
  if (const_host_store_ != const_store_) cpu_->release(const_host_store_);
  be_->release(const_store_);
}

void Executor::place_constants() {
  const Plan& p = *plan_;
  size_t n = p.tensors.size();
  const_dev_.assign(n, nullptr);
  const_host_.assign(n, nullptr);
  for (size_t i = 0; i < n; ++i)
    if (p.tensors[i].kind == TensorKind::Constant) constant_bytes_ += align_up(p.tensors[i].data_len);
  // Constants are copied once to aligned storage on the host (kernels may assume aligned weights),
  // then uploaded to the device when the backend has its own memory.
  const_host_store_ = cpu_->alloc(constant_bytes_, "constants");
  size_t off = 0;
  for (size_t i = 0; i < n; ++i) {
    const PlanTensor& t = p.tensors[i];
    if (t.kind != TensorKind::Constant) continue;
    const_host_[i] = static_cast<uint8_t*>(const_host_store_) + off;
    if (t.data_len) std::memcpy(const_host_[i], t.data, t.data_len);
    off += align_up(t.data_len);
  }
  if (be_->host_memory()) {
    const_store_ = const_host_store_;
    const_dev_ = const_host_;
    return;
  }
  const_store_ = be_->alloc(constant_bytes_, "constants");
  be_->to_device(const_store_, const_host_store_, constant_bytes_, nullptr);
  be_->synchronize(nullptr);
  for (size_t i = 0; i < n; ++i)
    if (const_host_[i]) const_dev_[i] = static_cast<uint8_t*>(const_store_) + (const_host_[i] - static_cast<uint8_t*>(const_host_store_));
}

void Executor::plan_memory() {
  const Plan& p = *plan_;
  size_t n = p.tensors.size();
  auto root = [&](size_t i) {
    size_t r = i, guard = 0;
    while (p.tensors[r].view_base >= 0) {
      r = static_cast<size_t>(p.tensors[r].view_base);
      if (++guard > n) fail("INVALID_ENGINE", "plan has a cycle of views at tensor '" + p.tensors[i].name + "'");
    }
    return r;
  };
  for (size_t i = 0; i < n; ++i)
    if (p.tensors[i].view_base >= 0 && p.tensors[root(i)].kind != TensorKind::Activation && p.tensors[root(i)].kind != TensorKind::Output)
      fail("INVALID_ENGINE", "view '" + p.tensors[i].name + "' must be a window into an activation or output tensor");
  // Lifetimes of storage roots (a view lives in its base). Inputs copied to a device live from the start.
  std::vector<int64_t> first(n, INT64_MAX), last(n, -1);
  auto touch = [&](size_t i, int64_t at) {
    size_t r = root(i);
    first[r] = std::min(first[r], at);
    last[r] = std::max(last[r], at);
  };
  int64_t nops = static_cast<int64_t>(p.ops.size());
  bool inputs_in_arena = !be_->host_memory();
  if (inputs_in_arena)
    for (int32_t x : p.inputs) touch(x, -1);
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
    if (t.view_base >= 0 || t.kind == TensorKind::Constant || last[i] < 0) continue;
    if (t.kind == TensorKind::Input && !inputs_in_arena) continue;
    order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p.tensors[a].nbytes() > p.tensors[b].nbytes(); });
  struct Placed { int64_t first, last; size_t off, size; };
  std::vector<Placed> placed;
  arena_bytes_ = 0;
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

void Executor::set_tactics(const std::vector<const Tactic*>& tactics, const std::vector<bool>& on_host) {
  tactics_ = tactics;
  on_host_ = on_host;
}

void Executor::prepare_layers() {
  states_.clear();
  workspace_bytes_ = 0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    states_.push_back(tactics_[i]->prepare(layers_[i]));
    if (!on_host_[i]) workspace_bytes_ = std::max(workspace_bytes_, align_up(tactics_[i]->workspace(layers_[i])));
  }
  std::lock_guard<std::mutex> l(pool_mu_);
  pool_.clear();  // contexts size their workspace from the tactics
}

size_t Executor::host_workspace_bytes() const {
  size_t ws = timing_host_workspace_;  // while building: the largest candidate's of any fallback layer
  for (size_t i = 0; i < layers_.size(); ++i)
    if (on_host_[i]) ws = std::max(ws, align_up(tactics_[i]->workspace(layers_[i])));
  return ws;
}

size_t Executor::transfer_bytes(size_t k) const {
  if (!on_host_[k]) return 0;
  size_t n = 0;
  for (auto* t : layers_[k].in)
    if (t && t->kind != TensorKind::Constant) n += t->nbytes();
  for (auto* t : layers_[k].out)
    if (t) n += t->nbytes();
  return n;
}

std::unique_ptr<Executor::Context> Executor::make_context() {
  const Plan& p = *plan_;
  auto c = std::make_unique<Context>();
  c->be = be_;
  c->cpu = cpu_;
  c->arena = be_->alloc(arena_bytes_ + workspace_bytes_ + kAlign, "the activation arena");
  c->stream = be_->create_stream();
  uint8_t* base = static_cast<uint8_t*>(c->arena);
  c->t.resize(p.tensors.size());
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    c->t[i].dtype = p.tensors[i].dtype;
    c->t[i].shape = p.tensors[i].shape;
    if (p.tensors[i].kind == TensorKind::Constant) c->t[i].data = const_dev_[i];
    else if (offsets_[i] >= 0) c->t[i].data = base + offsets_[i];
  }
  for (size_t i = 0; i < p.tensors.size(); ++i) {  // views
    size_t r = i;
    uint64_t off = 0;
    while (p.tensors[r].view_base >= 0) {
      off += p.tensors[r].view_offset;
      r = static_cast<size_t>(p.tensors[r].view_base);
    }
    if (r != i) c->t[i].data = static_cast<uint8_t*>(c->t[r].data) + off;
  }
  // Host buffers of the fallback layers: one slot per non-constant tensor they touch.
  size_t host_bytes = 0;
  for (size_t k = 0; k < layers_.size(); ++k) host_bytes += on_host_[k] ? align_up(transfer_bytes(k)) + kAlign * (layers_[k].in.size() + layers_[k].out.size()) : 0;
  size_t host_ws = host_workspace_bytes();
  c->host = cpu_->alloc(host_bytes + host_ws, "host buffers of fallback layers");
  uint8_t* hp = static_cast<uint8_t*>(c->host);
  auto host_slot = [&](const Tensor& dev) {
    Tensor h = dev;
    h.data = hp;
    hp += align_up(dev.nbytes());
    return h;
  };
  c->in.resize(layers_.size());
  c->out.resize(layers_.size());
  c->dev_in.resize(layers_.size());
  c->dev_out.resize(layers_.size());
  for (size_t k = 0; k < layers_.size(); ++k) {
    for (int32_t x : p.ops[k].inputs) {
      Tensor t = x < 0 ? Tensor{} : c->t[x];
      c->dev_in[k].push_back(t.data);
      if (on_host_[k] && x >= 0) t = p.tensors[x].kind == TensorKind::Constant ? Tensor{const_host_[x], t.dtype, t.shape} : host_slot(t);
      c->in[k].push_back(t);
    }
    for (int32_t x : p.ops[k].outputs) {
      Tensor t = x < 0 ? Tensor{} : c->t[x];
      c->dev_out[k].push_back(t.data);
      if (on_host_[k] && x >= 0) t = host_slot(t);
      c->out[k].push_back(t);
    }
  }
  for (RunContext* rc : {&c->rc, &c->host_rc}) {
    rc->pool = &ThreadPool::instance();
    rc->threads = rc->pool->size();
  }
  c->rc.stream = c->stream;
  c->rc.workspace = workspace_bytes_ ? base + arena_bytes_ : nullptr;
  c->rc.workspace_bytes = workspace_bytes_;
  c->host_rc.workspace = host_ws ? hp : nullptr;
  c->host_rc.workspace_bytes = host_ws;
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
  if (!be_->host_memory()) {  // inputs have arena slots on the device
    for (size_t i = 0; i < inputs.size(); ++i)  // an input no layer reads has no slot
      if (c.t[p.inputs[i]].data) be_->to_device(c.t[p.inputs[i]].data, inputs[i], p.tensors[p.inputs[i]].nbytes(), c.stream);
    return;
  }
  for (size_t i = 0; i < inputs.size(); ++i) c.t[p.inputs[i]].data = const_cast<void*>(inputs[i]);
  for (size_t k = 0; k < layers_.size(); ++k) {
    const PlanOp& op = p.ops[k];
    for (size_t j = 0; j < op.inputs.size(); ++j)
      if (op.inputs[j] >= 0 && p.tensors[op.inputs[j]].kind == TensorKind::Input) c.in[k][j].data = c.t[op.inputs[j]].data;
  }
}

void Executor::run_layer(Context& c, size_t k) {
  if (!on_host_[k]) {
    tactics_[k]->run(layers_[k], states_[k].get(), c.in[k].data(), c.out[k].data(), c.rc);
    return;
  }
  const Plan& p = *plan_;
  const PlanOp& op = p.ops[k];
  for (size_t j = 0; j < op.inputs.size(); ++j)
    if (op.inputs[j] >= 0 && p.tensors[op.inputs[j]].kind != TensorKind::Constant)
      be_->to_host(c.in[k][j].data, c.dev_in[k][j], c.in[k][j].nbytes(), c.stream);
  be_->synchronize(c.stream);
  tactics_[k]->run(layers_[k], states_[k].get(), c.in[k].data(), c.out[k].data(), c.host_rc);
  for (size_t j = 0; j < op.outputs.size(); ++j)
    if (op.outputs[j] >= 0) be_->to_device(c.dev_out[k][j], c.out[k][j].data, c.out[k][j].nbytes(), c.stream);
}

void Executor::execute(Context& c, const std::vector<const void*>& inputs, const std::vector<void*>& outputs,
                       std::vector<double>* times) {
  const Plan& p = *plan_;
  bind(c, inputs);
  bool fallback = std::find(on_host_.begin(), on_host_.end(), true) != on_host_.end();
  if (times) {
    for (size_t k = 0; k < layers_.size(); ++k) times->push_back(be_->time_ms([&] { run_layer(c, k); }, 1, 0, c.stream));
  } else if (fallback) {
    for (size_t k = 0; k < layers_.size(); ++k) run_layer(c, k);  // host work in between: no graph capture
  } else {
    be_->launch([&] {
      for (size_t k = 0; k < layers_.size(); ++k) run_layer(c, k);
    }, c.stream, &c.launch_cache);
  }
  if (outputs.size() != p.outputs.size()) fail("INTERNAL", "run got the wrong number of output buffers");
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& t = c.t[p.outputs[i]];
    if (t.nbytes()) be_->to_host(outputs[i], t.data, t.nbytes(), c.stream);
  }
  be_->synchronize(c.stream);
}

void Executor::run(const std::vector<const void*>& inputs, const std::vector<void*>& outputs) {
  be_->use_device(device_);
  auto c = acquire();
  execute(*c, inputs, outputs, nullptr);
  release(std::move(c));
}

std::vector<double> Executor::time_runs(const std::vector<const void*>& inputs, int iterations) {
  be_->use_device(device_);
  auto c = acquire();
  bind(*c, inputs);
  bool fallback = std::find(on_host_.begin(), on_host_.end(), true) != on_host_.end();
  auto body = [&] {
    if (fallback) {
      for (size_t k = 0; k < layers_.size(); ++k) run_layer(*c, k);
      return;
    }
    be_->launch([&] {
      for (size_t k = 0; k < layers_.size(); ++k) run_layer(*c, k);
    }, c->stream, &c->launch_cache);
  };
  auto times = be_->time_runs(body, iterations, c->stream);
  release(std::move(c));
  return times;
}

std::vector<double> Executor::profile(const std::vector<const void*>& inputs, const std::vector<void*>& outputs) {
  be_->use_device(device_);
  auto c = acquire();
  std::vector<double> times;
  execute(*c, inputs, outputs, &times);
  release(std::move(c));
  return times;
}

std::unique_ptr<Executor> Executor::load(std::shared_ptr<Plan> plan, const std::string& backend,
                                         const std::vector<LayerChoice>& choices, int device_id) {
  need_backend(backend).use_device(device_id);
  std::unique_ptr<Executor> e(new Executor(std::move(plan), &need_backend(backend)));
  e->device_ = device_id;
  if (choices.size() != e->layers_.size())
    fail("INVALID_ENGINE", "engine section TACT: " + std::to_string(choices.size()) + " tactic choices for " +
                               std::to_string(e->layers_.size()) + " layers");
  std::vector<const Tactic*> tactics;
  std::vector<bool> on_host;
  for (size_t k = 0; k < choices.size(); ++k) {
    const PlanOp& op = *e->layers_[k].op;
    const std::string& lb = choices[k].backend.empty() ? backend : choices[k].backend;
    if (lb != backend && lb != "cpu")
      fail("INVALID_ENGINE", "engine section TACT: layer '" + op.name + "' names backend '" + lb + "'");
    const Tactic* t = find_tactic(lb, op.kind, choices[k].tactic);
    if (!t)
      fail("ENGINE_MISMATCH", "engine section TACT: layer '" + op.name + "' (" + op.kind + ") uses tactic '" + choices[k].tactic +
                                  "', which this build of kiln's " + lb + " backend does not have; rebuild the engine");
    if (!t->can_implement(e->layers_[k]))
      fail("INVALID_ENGINE", "engine section TACT: tactic '" + choices[k].tactic + "' cannot run layer '" + op.name + "'");
    tactics.push_back(t);
    on_host.push_back(lb != backend);
  }
  e->set_tactics(tactics, on_host);
  e->choices_ = choices;
  e->prepare_layers();
  return e;
}

std::unique_ptr<Executor> Executor::reference(std::shared_ptr<Plan> plan,
                                              const std::vector<std::pair<std::string, std::string>>& overrides) {
  std::vector<LayerChoice> choices;
  for (const auto& op : plan->ops) {
    const auto& ts = tactics_for("cpu", op.kind);
    if (ts.empty()) fail("UNSUPPORTED", "layer '" + op.name + "' (" + op.kind + "): the cpu backend has no kernel for this op kind");
    LayerChoice c{"cpu", ts[0]->name(), {}};
    for (auto& [kind, tactic] : overrides)
      if (kind == op.kind) c.tactic = tactic;
    choices.push_back(c);
  }
  return load(std::move(plan), "cpu", choices);
}

std::unique_ptr<Executor> Executor::build(std::shared_ptr<Plan> plan, const BuildOptions& opts) {
  Backend* be = &need_backend(opts.backend);
  be->use_device(opts.device_id);
  std::unique_ptr<Executor> e(new Executor(std::move(plan), be));
  e->device_ = opts.device_id;
  const Plan& p = *e->plan_;
  size_t n = e->layers_.size();
  std::vector<std::vector<const Tactic*>> cands(n);
  std::vector<bool> on_host(n, false);
  std::vector<const Tactic*> chosen;
  std::vector<double> cached_ms(n, -1);  // decided from the timing cache: the chosen tactic's time
  for (size_t k = 0; k < n; ++k) {
    const PlanOp& op = p.ops[k];
    const auto& all = tactics_for(opts.backend, op.kind);
    // A layer the timing cache knows: its fastest cached tactic that can run it, without asking the
    // others (a library's can_implement may be costly: cuDNN compiles fused kernels to answer).
    if (opts.cache && opts.force.empty() && all.size() > 1) {
      std::string sig = layer_signature(e->layers_[k]);
      std::vector<std::pair<double, const Tactic*>> known;
      for (const Tactic* t : all) {
        auto it = opts.cache->find(sig + "|" + t->name());
        if (it != opts.cache->end() && it->second >= 0) known.emplace_back(it->second, t);
      }
      std::stable_sort(known.begin(), known.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      OnlyThisCandidate hint;
      for (auto& [ms, t] : known)
        if (t->can_implement(e->layers_[k]) && !(opts.strict && t->reduced_precision(e->layers_[k]))) {
          cands[k] = {t};
          cached_ms[k] = ms;
          break;
        }
      if (!cands[k].empty()) {
        chosen.push_back(cands[k][0]);
        continue;
      }
    }
    for (const Tactic* t : all)
      if (t->can_implement(e->layers_[k]) && !(opts.strict && t->reduced_precision(e->layers_[k]))) cands[k].push_back(t);
    if (opts.prefer_fast && cands[k].size() > 1 && cands[k][0]->reference()) std::rotate(cands[k].begin(), cands[k].begin() + 1, cands[k].end());
    for (auto& [kind, name] : opts.force) {
      if (kind != op.kind) continue;
      std::erase_if(cands[k], [&](const Tactic* t) { return name != t->name(); });
      if (cands[k].empty())
        fail("UNSUPPORTED", "layer '" + op.name + "' (" + op.kind + "): the forced tactic '" + name + "' cannot run it on the " + opts.backend + " backend");
    }
    if (cands[k].empty() && opts.backend != "cpu") {  // fall back to the CPU for this layer
      on_host[k] = true;
      for (const Tactic* t : tactics_for("cpu", op.kind))
        if (t->can_implement(e->layers_[k])) cands[k].push_back(t);
    }
    if (cands[k].empty())
      fail("UNSUPPORTED", "layer '" + op.name + "' (" + op.kind + "): " +
                              (all.empty() ? "the " + opts.backend + " backend has no kernel for this op kind"
                                           : "none of the " + opts.backend + " kernels for " + op.kind + " supports this configuration"));
    chosen.push_back(cands[k][0]);
  }
  e->set_tactics(chosen, on_host);
  e->choices_.resize(n);
  e->prepare_layers();
  // Timing runs every candidate in one context: its workspaces (device, and host for fallback layers)
  // must fit the largest candidate's.
  for (size_t k = 0; k < n; ++k)
    for (const Tactic* t : cands[k]) {
      size_t& ws = on_host[k] ? e->timing_host_workspace_ : e->workspace_bytes_;
      ws = std::max(ws, align_up(t->workspace(e->layers_[k])));
    }
  // A layer needs timing when it has a choice and some candidate's time is not in the cache.
  std::vector<std::string> sigs(n);
  auto cached = [&](size_t k, const Tactic* t) -> const double* {
    if (!opts.cache) return nullptr;
    auto it = opts.cache->find(sigs[k] + "|" + t->name());
    return it == opts.cache->end() ? nullptr : &it->second;
  };
  bool any_choice = false;
  for (size_t k = 0; k < n; ++k) {
    if (cands[k].size() < 2) continue;
    sigs[k] = layer_signature(e->layers_[k]);
    for (const Tactic* t : cands[k]) any_choice |= cached(k, t) == nullptr;
  }
  // Timing runs the plan once on generated inputs so that every layer sees realistic data: float
  // inputs uniform in [-1, 1], everything else zero (valid indices, false conditions).
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
    choice.backend = on_host[k] ? "cpu" : opts.backend;
    bool all_cached = cands[k].size() > 1 && opts.cache &&
                      std::all_of(cands[k].begin(), cands[k].end(), [&](const Tactic* t) { return cached(k, t) != nullptr; });
    if ((timing || all_cached) && cands[k].size() > 1) {
      double best = 1e300;
      for (const Tactic* t : cands[k]) {
        double med = -1;
        if (const double* hit = cached(k, t)) {
          med = *hit;
          choice.candidates.push_back({t->name(), med});
          if (med >= 0 && med < best) best = med, choice.tactic = t->name();
          continue;
        }
        // A candidate that fails here (a library refusing this configuration, say) is left out of
        // the choice — recorded untimed — and the others are still timed: one failure must not turn
        // timing off for the rest of the model.
        std::string why;
        try {
          e->tactics_[k] = t;
          e->states_[k] = t->prepare(e->layers_[k]);
          med = (on_host[k] ? e->cpu_ : be)->time_ms([&] { e->run_layer(*ctx, k); }, opts.timing_iterations, opts.timing_cap_ms, ctx->stream);
        } catch (const Error& err) {
          med = -1;
          why = err.what();
        }
        choice.candidates.push_back({t->name(), med, why});
        if (med >= 0 && med < best) {
          best = med;
          choice.tactic = t->name();
        }
      }
      // The fastest must also run inside the engine's CUDA graph (a library call may work directly and
      // fail under stream capture): the next fastest otherwise.
      while (!choice.tactic.empty() && !on_host[k]) {
        const Tactic* t = nullptr;
        for (const Tactic* c : cands[k])
          if (choice.tactic == c->name()) t = c;
        bool ok = false;
        try {
          e->tactics_[k] = t;
          e->states_[k] = t->prepare(e->layers_[k]);
          ok = !timing || be->capturable([&] { e->run_layer(*ctx, k); }, ctx->stream);
        } catch (const Error&) {
        }
        if (ok) break;
        double next = 1e300;
        std::string pick;
        for (auto& c : choice.candidates) {
          if (c.tactic == choice.tactic) {
            c.error = "fails inside a CUDA graph (stream capture)";
            c.ms = -1;
          } else if (c.ms >= 0 && c.ms < next) {
            next = c.ms;
            pick = c.tactic;
          }
        }
        choice.tactic = pick;
      }
      // None ran on the generated data (a data-dependent layer): the preference order decides.
      if (choice.tactic.empty()) choice.tactic = cands[k][0]->name();
      for (const Tactic* t : cands[k])
        if (choice.tactic == t->name()) e->tactics_[k] = t;
      e->states_[k] = e->tactics_[k]->prepare(e->layers_[k]);
    } else {
      choice.tactic = cands[k][0]->name();
      for (const Tactic* t : cands[k]) choice.candidates.push_back({t->name(), cached_ms[k]});
    }
    if (timing) {
      try {
        e->run_layer(*ctx, k);  // the chosen tactic writes this layer's outputs for the layers after it
      } catch (const Error&) {
        // data-dependent on generated inputs: later layers are timed on whatever the outputs hold
      }
    }
    if (opts.progress) opts.progress(k + 1, n, p.ops[k].name);
  }
  ctx.reset();
  e->timing_host_workspace_ = 0;
  e->prepare_layers();
  return e;
}

}  // namespace kiln

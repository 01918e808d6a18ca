// The executor: a Plan plus one chosen tactic per layer, with the memory plan that places every
// non-constant tensor in one arena from tensor lifetimes. Building chooses the tactics (timing the
// candidates on the real shapes); loading takes the recorded choices. Many runs may proceed at once:
// each takes its own Context (arena + workspace) from a pool.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "plan.h"
#include "tactic.h"

namespace kiln {

struct TacticTiming {
  std::string tactic;
  double ms = 0;  // median of the timed runs; < 0 when it was not timed
};

struct LayerChoice {
  std::string tactic;
  std::vector<TacticTiming> candidates;
};

struct BuildOptions {
  std::string backend = "cpu";
  bool time_tactics = true;
  int timing_iterations = 5;    // timed runs per candidate (median kept)
  double timing_cap_ms = 50.0;  // a candidate slower than this per run is timed once
  const std::atomic<int>* cancel = nullptr;
  // Called as layers are decided: (done, total, layer name).
  std::function<void(size_t, size_t, const std::string&)> progress;
};

class Executor {
 public:
  // Build: decide tactics.
  static std::unique_ptr<Executor> build(std::shared_ptr<Plan> plan, const BuildOptions& opts);
  // Load: take recorded choices (validated against the registry).
  static std::unique_ptr<Executor> load(std::shared_ptr<Plan> plan, const std::string& backend,
                                        const std::vector<LayerChoice>& choices);
  ~Executor();

  const Plan& plan() const { return *plan_; }
  std::shared_ptr<Plan> plan_ptr() const { return plan_; }
  const std::vector<LayerChoice>& choices() const { return choices_; }
  const std::string& backend() const { return backend_; }
  size_t arena_bytes() const { return arena_bytes_; }
  size_t workspace_bytes() const { return workspace_bytes_; }
  size_t constant_bytes() const { return constant_bytes_; }

  // Runs the plan. inputs[i] are the plan's inputs (caller-owned, read only); outputs are copied into
  // the caller's buffers outputs[i] (preallocated, sized as the plan says).
  void run(const std::vector<const void*>& inputs, const std::vector<void*>& outputs);
  // Per-layer wall times of one run (ms), for profiling.
  std::vector<double> profile(const std::vector<const void*>& inputs, const std::vector<void*>& outputs);

 private:
  struct Context;
  Executor(std::shared_ptr<Plan> plan, std::string backend);
  void plan_memory();
  void prepare_layers();
  std::unique_ptr<Context> make_context();
  std::unique_ptr<Context> acquire();
  void release(std::unique_ptr<Context> c);
  void bind(Context& c, const std::vector<const void*>& inputs);
  void run_layer(Context& c, size_t i);
  void execute(Context& c, const std::vector<const void*>& inputs, const std::vector<void*>& outputs,
               std::vector<double>* times);

  std::shared_ptr<Plan> plan_;
  std::string backend_;
  std::vector<LayerInfo> layers_;
  std::vector<const Tactic*> tactics_;
  std::vector<std::unique_ptr<LayerState>> states_;
  std::vector<LayerChoice> choices_;
  std::vector<int64_t> offsets_;  // arena offset per tensor; -1 for constants/inputs/views
  std::vector<uint8_t*> const_ptrs_;
  void* const_store_ = nullptr;
  size_t arena_bytes_ = 0, workspace_bytes_ = 0, constant_bytes_ = 0;
  std::mutex pool_mu_;
  std::vector<std::unique_ptr<Context>> pool_;
};

}  // namespace kiln

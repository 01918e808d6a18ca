// The executor: a Plan plus one chosen tactic per layer, with the memory plan that places every
// non-constant tensor in one arena from tensor lifetimes, on the engine's backend. Building chooses the
// tactics (timing the candidates on the real shapes); loading takes the recorded choices. A layer
// whose kind the engine's device backend cannot run falls back to the CPU backend, with its tensors
// copied to the host and back around it (named in the report). Many runs may proceed at once: each
// takes its own Context (arena, workspace, stream) from a pool.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend.h"
#include "plan.h"
#include "tactic.h"

namespace kiln {

struct TacticTiming {
  std::string tactic;
  double ms = 0;  // median of the timed runs; < 0 when it was not timed
  std::string error;  // why it failed while being timed (left out of the choice); not serialized
};

// What a layer's timing depends on: its kind, attributes, and the element types, shapes and kinds of
// its tensors (constant contents do not count). The timing cache's key, with the tactic name.
std::string layer_signature(const LayerInfo& L);

struct LayerChoice {
  std::string backend;  // the backend the layer runs on ("cpu" for a fallback layer of a GPU engine)
  std::string tactic;
  std::vector<TacticTiming> candidates;
};

struct BuildOptions {
  std::string backend = "cpu";
  bool time_tactics = true;
  int timing_iterations = 5;    // timed runs per candidate (median kept)
  double timing_cap_ms = 50.0;  // a candidate slower than this per run stops being repeated
  bool strict = false;          // leave out tactics with reduced-precision math (TF32)
  // Untimed builds: prefer the first faster tactic that can run a layer over the reference (the
  // accuracy guard's CPU runs; the reference stays the choice where nothing else applies).
  bool prefer_fast = false;
  int device_id = 0;            // device backends: which device the engine lives on
  // Tests: op kind -> the one tactic its layers must use (build fails if it cannot run one).
  std::vector<std::pair<std::string, std::string>> force;
  // Timing cache: "<layer signature>|<tactic>" -> median ms from an earlier build on the same device
  // and libraries. A layer whose every candidate is cached is decided without running anything.
  const std::unordered_map<std::string, double>* cache = nullptr;
  const std::atomic<int>* cancel = nullptr;
  // Called as layers are decided: (done, total, layer name).
  std::function<void(size_t, size_t, const std::string&)> progress;
};

class Executor {
 public:
  static std::unique_ptr<Executor> build(std::shared_ptr<Plan> plan, const BuildOptions& opts);
  static std::unique_ptr<Executor> load(std::shared_ptr<Plan> plan, const std::string& backend,
                                        const std::vector<LayerChoice>& choices, int device_id = 0);
  // Every layer on its reference (first registered) CPU tactic: constant folding, sub-plans, tests.
  // `overrides` maps op kinds to tactic names.
  static std::unique_ptr<Executor> reference(std::shared_ptr<Plan> plan,
                                             const std::vector<std::pair<std::string, std::string>>& overrides = {});
  ~Executor();

  const Plan& plan() const { return *plan_; }
  const std::vector<LayerChoice>& choices() const { return choices_; }
  std::string signature(size_t layer) const { return layer_signature(layers_[layer]); }
  Backend& backend() const { return *be_; }
  size_t arena_bytes() const { return arena_bytes_; }
  size_t workspace_bytes() const { return workspace_bytes_; }
  size_t constant_bytes() const { return constant_bytes_; }
  // Bytes copied between device and host per run by fallback layers (0 on the CPU backend).
  size_t transfer_bytes(size_t layer) const;

  // Runs the plan. inputs[i] are host buffers of the plan's inputs (read only); outputs[i] are host
  // buffers the results are copied into (sized as the plan says).
  void run(const std::vector<const void*>& inputs, const std::vector<void*>& outputs);
  // Device time of `iterations` runs of the layers alone (inputs uploaded once, nothing copied back):
  // what "GPU-only" latency means in the benchmarks.
  std::vector<double> time_runs(const std::vector<const void*>& inputs, int iterations);
  // One run with each layer's time (ms; device backends synchronize per layer).
  std::vector<double> profile(const std::vector<const void*>& inputs, const std::vector<void*>& outputs);

 private:
  struct Context;
  Executor(std::shared_ptr<Plan> plan, Backend* be);
  void plan_memory();
  void place_constants();
  void prepare_layers();
  void set_tactics(const std::vector<const Tactic*>& tactics, const std::vector<bool>& on_host);
  std::unique_ptr<Context> make_context();
  std::unique_ptr<Context> acquire();
  void release(std::unique_ptr<Context> c);
  void bind(Context& c, const std::vector<const void*>& inputs);
  void run_layer(Context& c, size_t k);
  void execute(Context& c, const std::vector<const void*>& inputs, const std::vector<void*>& outputs,
               std::vector<double>* times);
  size_t host_workspace_bytes() const;
  int device_ = 0;  // the backend's device index (use_device) for this engine

  std::shared_ptr<Plan> plan_;
  Backend* be_;
  Backend* cpu_;
  std::vector<LayerInfo> layers_;
  std::vector<const Tactic*> tactics_;
  std::vector<bool> on_host_;  // fallback layers of a device engine
  std::vector<std::unique_ptr<LayerState>> states_;
  std::vector<LayerChoice> choices_;
  std::vector<int64_t> offsets_;        // arena offset per tensor; -1 for constants, views, host inputs
  std::vector<uint8_t*> const_dev_;     // constants on the backend
  std::vector<uint8_t*> const_host_;    // the same on the host (fallback layers, CPU backend: same memory)
  void* const_store_ = nullptr;
  void* const_host_store_ = nullptr;
  size_t arena_bytes_ = 0, workspace_bytes_ = 0, constant_bytes_ = 0;
  size_t timing_host_workspace_ = 0;  // during build only: see host_workspace_bytes()
  std::mutex pool_mu_;
  std::vector<std::unique_ptr<Context>> pool_;
};

}  // namespace kiln

// The tactic interface: every backend implements every layer through it. For each op kind a backend
// registers one or more tactics. Exactly one CPU tactic per kind is the reference (plain, obviously
// correct code: the oracle every faster tactic and every GPU result is compared against). At build,
// the tactics whose can_implement() accepts the layer are timed on the real shapes and the fastest
// is kept; an engine records the chosen tactic by name, so loading never re-decides.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "plan.h"

namespace kiln {

class ThreadPool;
class Executor;

// What a tactic sees of a layer at build and load time: the op and its tensors' static descriptions.
struct LayerInfo {
  const PlanOp* op = nullptr;
  const Plan* plan = nullptr;
  std::vector<const PlanTensor*> in;   // nullptr for omitted optional inputs
  std::vector<const PlanTensor*> out;  // nullptr for omitted optional outputs
  // The constant contents of input i, or nullptr when it is not a constant.
  const uint8_t* const_data(size_t i) const {
    return i < in.size() && in[i] && in[i]->kind == TensorKind::Constant ? in[i]->data : nullptr;
  }
};

// Per-layer state a tactic prepares once (packed weights, index tables). Lives as long as the engine.
struct LayerState {
  virtual ~LayerState() = default;
};

// What a tactic gets at run time besides its tensors.
struct RunContext {
  ThreadPool* pool = nullptr;
  void* workspace = nullptr;  // workspace(layer) bytes, 256-byte aligned, private to this execution
  size_t workspace_bytes = 0;
  int threads = 1;
  void* stream = nullptr;  // device backends: the execution's stream (cudaStream_t for CUDA)
};

class Tactic {
 public:
  virtual ~Tactic() = default;
  virtual const char* name() const = 0;
  // True for the one plain, always-applicable implementation of the kind on the CPU backend.
  virtual bool reference() const { return false; }
  // Decided at build: a tactic that returns true must run the layer correctly at infer.
  virtual bool can_implement(const LayerInfo&) const { return true; }
  virtual std::unique_ptr<LayerState> prepare(const LayerInfo&) const { return nullptr; }
  virtual size_t workspace(const LayerInfo&) const { return 0; }
  // True when the tactic computes fp32 layers with reduced-precision math (TF32 on NVIDIA tensor
  // cores): a build with `strict` leaves it out.
  virtual bool reduced_precision(const LayerInfo&) const { return false; }
  // in/out hold the run-time tensors (data == nullptr for omitted ones).
  virtual void run(const LayerInfo& layer, LayerState* state, const Tensor* in, Tensor* out, RunContext& ctx) const = 0;
};

// Set on a thread while the executor asks one tactic whether it can run a layer whose choice is
// already known (from the timing cache): a tactic whose can_implement also prepares its siblings' work
// (cuDNN graph plans, finalized side by side for timing) may prepare only its own. A hint: it never
// changes what can_implement answers.
bool& only_this_candidate();
struct OnlyThisCandidate {
  OnlyThisCandidate() { only_this_candidate() = true; }
  ~OnlyThisCandidate() { only_this_candidate() = false; }
};

// Backend registry. Registration happens from static initializers in each kernel file
// (KILN_REGISTER_TACTIC), so adding a kernel touches no shared list.
void register_tactic(const char* backend, const char* kind, std::unique_ptr<Tactic> t);
const std::vector<const Tactic*>& tactics_for(const std::string& backend, const std::string& kind);
const Tactic* find_tactic(const std::string& backend, const std::string& kind, const std::string& name);
std::vector<std::string> registered_kinds(const std::string& backend);

struct TacticRegistrar {
  TacticRegistrar(const char* backend, const char* kind, std::unique_ptr<Tactic> t) {
    register_tactic(backend, kind, std::move(t));
  }
};

#define KILN_CAT2(a, b) a##b
#define KILN_CAT(a, b) KILN_CAT2(a, b)
// KILN_REGISTER_TACTIC("cpu", "Conv", ConvIm2col) registers one instance of the class for that kind.
#define KILN_REGISTER_TACTIC(backend, kind, cls) \
  static ::kiln::TacticRegistrar KILN_CAT(kiln_reg_, __COUNTER__)(backend, kind, std::make_unique<cls>())
// Registers one tactic instance built by an expression (for classes parameterized at construction).
#define KILN_REGISTER_TACTIC_EXPR(backend, kind, expr) \
  static ::kiln::TacticRegistrar KILN_CAT(kiln_reg_, __COUNTER__)(backend, kind, expr)

}  // namespace kiln

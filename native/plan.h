// The Plan as the native side sees it: decoded from the bytes that src/lower/plan.ts encodes
// (docs/plan-format.md is the specification of both). Decoding validates every count, length and index.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common.h"

namespace kiln {

struct Plan;

enum class TensorKind : uint8_t { Activation = 0, Input = 1, Output = 2, Constant = 3 };

struct PlanTensor {
  std::string name;
  DType dtype = DType::Undefined;
  Shape shape;
  TensorKind kind = TensorKind::Activation;
  int32_t view_base = -1;  // >= 0: a window into that tensor's storage
  uint64_t view_offset = 0;
  const uint8_t* data = nullptr;  // constants: points into the plan's bytes (kept alive by Plan::bytes)
  uint64_t data_len = 0;
  int64_t numel() const { return kiln::numel(shape); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
};

struct Attr {
  enum Type : uint8_t { Int = 1, Float = 2, String = 3, Ints = 4, Floats = 5, SubPlan = 6 } type = Int;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::shared_ptr<Plan> plan;
};

struct PlanOp {
  std::string kind, name;
  std::vector<int32_t> inputs, outputs;
  std::map<std::string, Attr> attrs;
  std::vector<std::string> origin;

  bool has(const std::string& k) const { return attrs.count(k) != 0; }
  // Accessors throw an INTERNAL error naming the layer when an attribute is missing or mistyped:
  // TS resolves every attribute, so a miss is a kiln bug, not a user error.
  int64_t i(const std::string& k) const;
  int64_t i(const std::string& k, int64_t dflt) const;
  double f(const std::string& k) const;
  double f(const std::string& k, double dflt) const;
  const std::string& s(const std::string& k) const;
  std::string s(const std::string& k, const std::string& dflt) const;
  const std::vector<int64_t>& ints(const std::string& k) const;
  std::vector<int64_t> ints(const std::string& k, const std::vector<int64_t>& dflt) const;
  const std::vector<double>& floats(const std::string& k) const;
  const Plan& plan(const std::string& k) const;
};

struct Plan {
  std::shared_ptr<const std::vector<uint8_t>> bytes;  // owns constant storage
  std::vector<PlanTensor> tensors;
  std::vector<PlanOp> ops;
  std::vector<int32_t> inputs, outputs;
};

constexpr uint32_t kPlanMagic = 0x4e4c504b;  // "KPLN"
constexpr uint32_t kPlanVersion = 1;

// Decodes a plan. `where` prefixes error messages (e.g. "engine section PLAN").
std::shared_ptr<Plan> decode_plan(std::shared_ptr<const std::vector<uint8_t>> bytes, const std::string& where);
// Same, for a window of a buffer owned elsewhere (sub-plans).
std::shared_ptr<Plan> decode_plan_window(std::shared_ptr<const std::vector<uint8_t>> owner, size_t off, size_t len,
                                         const std::string& where);

// A JSON description of a plan (no constant contents), for tests and `kiln inspect`.
std::string plan_to_json(const Plan& p);

}  // namespace kiln

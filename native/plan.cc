#include "plan.h"

#include "byte_reader.h"

#include <sstream>

namespace kiln {

namespace {

constexpr uint32_t kMaxCount = 1u << 24;

std::shared_ptr<Plan> decode(std::shared_ptr<const std::vector<uint8_t>> owner, size_t base, size_t len,
                             const std::string& where) {
  auto plan = std::make_shared<Plan>();
  plan->bytes = owner;
  const uint8_t* start = owner->data() + base;
  ByteReader r(start, len, where);
  if (r.get<uint32_t>("magic") != kPlanMagic) fail("INVALID_ENGINE", where + ": not a kiln plan (bad magic)");
  uint32_t version = r.get<uint32_t>("version");
  if (version != kPlanVersion)
    fail("ENGINE_MISMATCH", where + ": plan format version " + std::to_string(version) + ", this kiln reads version " +
                                std::to_string(kPlanVersion) + "; rebuild the engine");
  uint32_t nt = r.count("tensor", kMaxCount);
  plan->tensors.resize(nt);
  for (uint32_t ti = 0; ti < nt; ++ti) {
    PlanTensor& t = plan->tensors[ti];
    t.name = r.str("tensor name");
    t.dtype = static_cast<DType>(r.get<uint32_t>("tensor dtype"));
    uint32_t rank = r.count("tensor rank", 64);
    t.shape.resize(rank);
    for (auto& d : t.shape) {
      d = r.get<int64_t>("tensor dim");
      if (d < 0) fail("INVALID_ENGINE", where + ": tensor '" + t.name + "' has a negative dim");
    }
    // Sizes must fit comfortably in 64 bits (no overflow in numel() * element size anywhere later).
    {
      constexpr int64_t kMaxElements = int64_t(1) << 40;
      int64_t n = 1;
      for (int64_t d : t.shape) {
        if (d != 0 && n > kMaxElements / d)
          fail("UNSUPPORTED", where + ": tensor '" + t.name + "' of shape " + shape_str(t.shape) + " has more than 2^40 elements");
        n *= d;
      }
    }
    uint8_t kind = r.get<uint8_t>("tensor kind");
    if (kind > 3) fail("INVALID_ENGINE", where + ": tensor '" + t.name + "' has unknown kind " + std::to_string(kind));
    t.kind = static_cast<TensorKind>(kind);
    t.view_base = r.get<int32_t>("view base");
    t.view_offset = r.get<uint64_t>("view offset");
    size_t at = r.blob("constant data", &t.data_len);
    t.data = start + at;
    if (dtype_size(t.dtype) == 0)
      fail("UNSUPPORTED", where + ": tensor '" + t.name + "' has element type " + dtype_name(t.dtype) +
                              ", which the runtime does not hold");
    if (t.kind == TensorKind::Constant && t.data_len != t.nbytes())
      fail("INVALID_ENGINE", where + ": constant '" + t.name + "' holds " + std::to_string(t.data_len) + " bytes, its shape " +
                                 shape_str(t.shape) + " needs " + std::to_string(t.nbytes()));
  }
  auto check_index = [&](int32_t i, bool optional, const std::string& ctx) {
    if ((optional && i == -1) || (i >= 0 && static_cast<uint32_t>(i) < nt)) return;
    fail("INVALID_ENGINE", where + ": " + ctx + " refers to tensor " + std::to_string(i) + " of " + std::to_string(nt));
  };
  for (auto& t : plan->tensors) {
    if (t.view_base != -1) {
      check_index(t.view_base, false, "view '" + t.name + "'");
      const PlanTensor& b = plan->tensors[t.view_base];
      if (t.view_offset + t.nbytes() > b.nbytes())
        fail("INVALID_ENGINE", where + ": view '" + t.name + "' runs past the end of '" + b.name + "'");
    }
  }
  uint32_t no = r.count("op", kMaxCount);
  plan->ops.resize(no);
  for (auto& op : plan->ops) {
    op.kind = r.str("op kind");
    op.name = r.str("op name");
    uint32_t ni = r.count("op inputs", 1 << 16);
    op.inputs.resize(ni);
    for (auto& i : op.inputs) check_index(i = r.get<int32_t>("op input"), true, "layer '" + op.name + "' input");
    uint32_t nout = r.count("op outputs", 1 << 16);
    op.outputs.resize(nout);
    for (auto& o : op.outputs) check_index(o = r.get<int32_t>("op output"), true, "layer '" + op.name + "' output");
    uint32_t na = r.count("op attributes", 1 << 16);
    for (uint32_t a = 0; a < na; ++a) {
      std::string key = r.str("attribute name");
      Attr at;
      at.type = static_cast<Attr::Type>(r.get<uint8_t>("attribute type"));
      switch (at.type) {
        case Attr::Int: at.i = r.get<int64_t>("int attribute"); break;
        case Attr::Float: at.f = r.get<double>("float attribute"); break;
        case Attr::String: at.s = r.str("string attribute"); break;
        case Attr::Ints: {
          uint32_t c = r.count("ints attribute", kMaxCount);
          at.ints.resize(c);
          for (auto& x : at.ints) x = r.get<int64_t>("ints attribute");
          break;
        }
        case Attr::Floats: {
          uint32_t c = r.count("floats attribute", kMaxCount);
          at.floats.resize(c);
          for (auto& x : at.floats) x = r.get<double>("floats attribute");
          break;
        }
        case Attr::SubPlan: {
          uint64_t l;
          size_t at_off = r.blob("sub-plan", &l);
          at.plan = decode(owner, base + at_off, static_cast<size_t>(l), where + " > layer '" + op.name + "' attribute '" + key + "'");
          break;
        }
        default:
          fail("INVALID_ENGINE", where + ": layer '" + op.name + "' attribute '" + key + "' has unknown type");
      }
      op.attrs.emplace(std::move(key), std::move(at));
    }
    uint32_t ng = r.count("op origin", 1 << 20);
    op.origin.resize(ng);
    for (auto& s : op.origin) s = r.str("op origin");
  }
  uint32_t nin = r.count("plan inputs", kMaxCount);
  plan->inputs.resize(nin);
  for (auto& i : plan->inputs) check_index(i = r.get<int32_t>("plan input"), false, "plan input");
  uint32_t nout = r.count("plan outputs", kMaxCount);
  plan->outputs.resize(nout);
  for (auto& o : plan->outputs) check_index(o = r.get<int32_t>("plan output"), false, "plan output");
  if (r.pos() != len) fail("INVALID_ENGINE", where + ": " + std::to_string(len - r.pos()) + " stray bytes after the plan");
  return plan;
}

const Attr& get_attr(const PlanOp& op, const std::string& k, Attr::Type t) {
  auto it = op.attrs.find(k);
  if (it == op.attrs.end()) fail("INTERNAL", "layer '" + op.name + "' (" + op.kind + "): attribute '" + k + "' missing");
  if (it->second.type != t) fail("INTERNAL", "layer '" + op.name + "' (" + op.kind + "): attribute '" + k + "' has the wrong type");
  return it->second;
}

void json_str(std::ostringstream& o, const std::string& s) {
  o << '"';
  for (char c : s) {
    if (c == '"' || c == '\\') o << '\\' << c;
    else if (static_cast<unsigned char>(c) < 0x20) o << "\\u00" << "0123456789abcdef"[(c >> 4) & 0xf] << "0123456789abcdef"[c & 0xf];
    else o << c;
  }
  o << '"';
}

template <typename V>
void json_list(std::ostringstream& o, const V& v) {
  o << '[';
  for (size_t i = 0; i < v.size(); ++i) o << (i ? "," : "") << v[i];
  o << ']';
}

}  // namespace

int64_t PlanOp::i(const std::string& k) const { return get_attr(*this, k, Attr::Int).i; }
int64_t PlanOp::i(const std::string& k, int64_t d) const { return has(k) ? i(k) : d; }
double PlanOp::f(const std::string& k) const { return get_attr(*this, k, Attr::Float).f; }
double PlanOp::f(const std::string& k, double d) const { return has(k) ? f(k) : d; }
const std::string& PlanOp::s(const std::string& k) const { return get_attr(*this, k, Attr::String).s; }
std::string PlanOp::s(const std::string& k, const std::string& d) const { return has(k) ? s(k) : d; }
const std::vector<int64_t>& PlanOp::ints(const std::string& k) const { return get_attr(*this, k, Attr::Ints).ints; }
std::vector<int64_t> PlanOp::ints(const std::string& k, const std::vector<int64_t>& d) const { return has(k) ? ints(k) : d; }
const std::vector<double>& PlanOp::floats(const std::string& k) const { return get_attr(*this, k, Attr::Floats).floats; }
const Plan& PlanOp::plan(const std::string& k) const { return *get_attr(*this, k, Attr::SubPlan).plan; }

std::shared_ptr<Plan> decode_plan(std::shared_ptr<const std::vector<uint8_t>> bytes, const std::string& where) {
  size_t n = bytes->size();
  return decode(std::move(bytes), 0, n, where);
}

std::shared_ptr<Plan> decode_plan_window(std::shared_ptr<const std::vector<uint8_t>> owner, size_t off, size_t len,
                                         const std::string& where) {
  if (off > owner->size() || len > owner->size() - off) fail("INVALID_ENGINE", where + ": plan window out of range");
  return decode(std::move(owner), off, len, where);
}

static void plan_json(std::ostringstream& o, const Plan& p) {
  o << "{\"tensors\":[";
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    const auto& t = p.tensors[i];
    static const char* kinds[] = {"activation", "input", "output", "constant"};
    o << (i ? "," : "") << "{\"name\":";
    json_str(o, t.name);
    o << ",\"dtype\":" << static_cast<uint32_t>(t.dtype) << ",\"shape\":";
    json_list(o, t.shape);
    o << ",\"kind\":\"" << kinds[static_cast<int>(t.kind)] << "\"";
    if (t.view_base >= 0) o << ",\"view\":{\"base\":" << t.view_base << ",\"byteOffset\":" << t.view_offset << "}";
    if (t.kind == TensorKind::Constant) o << ",\"bytes\":" << t.data_len;
    o << "}";
  }
  o << "],\"ops\":[";
  for (size_t i = 0; i < p.ops.size(); ++i) {
    const auto& op = p.ops[i];
    o << (i ? "," : "") << "{\"kind\":";
    json_str(o, op.kind);
    o << ",\"name\":";
    json_str(o, op.name);
    o << ",\"inputs\":";
    json_list(o, op.inputs);
    o << ",\"outputs\":";
    json_list(o, op.outputs);
    o << ",\"attrs\":{";
    bool first = true;
    for (const auto& [k, a] : op.attrs) {
      o << (first ? "" : ",");
      first = false;
      json_str(o, k);
      o << ':';
      switch (a.type) {
        case Attr::Int: o << a.i; break;
        case Attr::Float: o << a.f; break;
        case Attr::String: json_str(o, a.s); break;
        case Attr::Ints: json_list(o, a.ints); break;
        case Attr::Floats: json_list(o, a.floats); break;
        case Attr::SubPlan: plan_json(o, *a.plan); break;
      }
    }
    o << "},\"origin\":[";
    for (size_t j = 0; j < op.origin.size(); ++j) {
      o << (j ? "," : "");
      json_str(o, op.origin[j]);
    }
    o << "]}";
  }
  o << "],\"inputs\":";
  json_list(o, p.inputs);
  o << ",\"outputs\":";
  json_list(o, p.outputs);
  o << "}";
}

std::string plan_to_json(const Plan& p) {
  std::ostringstream o;
  o.precision(17);
  plan_json(o, p);
  return o.str();
}

}  // namespace kiln

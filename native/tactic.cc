#include "tactic.h"

#include <map>

namespace kiln {

namespace {
struct Registry {
  std::map<std::string, std::map<std::string, std::vector<std::unique_ptr<Tactic>>>> owned;
  std::map<std::string, std::map<std::string, std::vector<const Tactic*>>> views;
};
Registry& registry() {
  static Registry r;  // filled by static initializers before any call from JS
  return r;
}
const std::vector<const Tactic*> kEmpty;
}  // namespace

void register_tactic(const char* backend, const char* kind, std::unique_ptr<Tactic> t) {
  auto& r = registry();
  auto& views = r.views[backend][kind];
  // The reference goes first so that it is the deterministic fallback and the oracle.
  if (t->reference()) views.insert(views.begin(), t.get());
  else views.push_back(t.get());
  r.owned[backend][kind].push_back(std::move(t));
}

bool& only_this_candidate() {
  thread_local bool only = false;
  return only;
}

const std::vector<const Tactic*>& tactics_for(const std::string& backend, const std::string& kind) {
  auto& r = registry();
  auto b = r.views.find(backend);
  if (b == r.views.end()) return kEmpty;
  auto k = b->second.find(kind);
  return k == b->second.end() ? kEmpty : k->second;
}

const Tactic* find_tactic(const std::string& backend, const std::string& kind, const std::string& name) {
  for (const Tactic* t : tactics_for(backend, kind))
    if (name == t->name()) return t;
  return nullptr;
}

std::vector<std::string> registered_kinds(const std::string& backend) {
  std::vector<std::string> out;
  auto& r = registry();
  auto b = r.views.find(backend);
  if (b != r.views.end())
    for (auto& [k, v] : b->second) out.push_back(k);
  return out;
}

}  // namespace kiln

#include "backend.h"

#include <algorithm>
#include <chrono>
#include <map>

namespace kiln {

namespace {
std::map<std::string, std::unique_ptr<Backend>>& backends() {
  static std::map<std::string, std::unique_ptr<Backend>> m;
  return m;
}
}  // namespace

void register_backend(std::unique_ptr<Backend> b) {
  std::string n = b->name();
  backends()[n] = std::move(b);
}

Backend* find_backend(const std::string& name) {
  auto it = backends().find(name);
  return it == backends().end() ? nullptr : it->second.get();
}

std::vector<std::string> backend_names() {
  std::vector<std::string> out;
  for (auto& [k, v] : backends()) out.push_back(k);
  return out;
}

double Backend::time_ms(const std::function<void()>& fn, int iters, double cap_ms, void* stream) {
  auto now = [] { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count(); };
  fn();
  synchronize(stream);
  std::vector<double> runs;
  for (int r = 0; r < iters; ++r) {
    double t0 = now();
    fn();
    synchronize(stream);
    runs.push_back(now() - t0);
    if (runs.back() > cap_ms) break;
  }
  std::sort(runs.begin(), runs.end());
  return runs[runs.size() / 2];
}

std::vector<double> Backend::time_runs(const std::function<void()>& fn, int iters, void* stream) {
  std::vector<double> runs;
  for (int r = 0; r < iters; ++r) runs.push_back(time_ms(fn, 1, 1e300, stream));
  return runs;
}

}  // namespace kiln

// The CPU backend: tensors in aligned host memory, layers run on the calling thread with the pool.
#include <cstdlib>

#include "../backend.h"

namespace kiln {
namespace {

class CpuBackend : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  bool host_memory() const override { return true; }
  void* alloc(size_t bytes, const char* what) override {
    if (bytes == 0) return nullptr;
    void* p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
    if (!p) fail("RUNTIME", std::string("out of host memory allocating ") + what + " (" + std::to_string(bytes) + " bytes)");
    return p;
  }
  void release(void* p) override { std::free(p); }
  void to_device(void* dst, const void* src, size_t n, void*) override {
    if (n) std::memcpy(dst, src, n);
  }
  void to_host(void* dst, const void* src, size_t n, void*) override {
    if (n) std::memcpy(dst, src, n);
  }
  std::string device() const override {
#if defined(__x86_64__)
    return "cpu x86_64";
#elif defined(__aarch64__)
    return "cpu aarch64";
#else
    return "cpu";
#endif
  }
  std::string capability() const override {
    std::string caps;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) caps += "avx2,";
    if (__builtin_cpu_supports("fma")) caps += "fma,";
    if (__builtin_cpu_supports("avx512f")) caps += "avx512f,";
#endif
    if (!caps.empty()) caps.pop_back();
    return caps;
  }
};

}  // namespace
KILN_REGISTER_BACKEND(CpuBackend);
}  // namespace kiln

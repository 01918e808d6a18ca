// Shared by the CUDA backend's host code (native/cuda/*.cc): status checks that turn a failed CUDA
// runtime, cuBLASLt or cuDNN call into a kiln::Error (code RUNTIME) naming the call, its status and the
// source line (never an abort), the per-thread library handles, and small helpers for tactics.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <string>

#include "common.h"
#include "plan.h"
#include "tactic.h"

namespace kiln {
namespace cu {

inline bool ok(cudaError_t s) { return s == cudaSuccess; }
inline bool ok(cublasStatus_t s) { return s == CUBLAS_STATUS_SUCCESS; }
inline bool ok(cudnnStatus_t s) { return s == CUDNN_STATUS_SUCCESS; }
inline std::string status_name(cudaError_t s) { return std::string(cudaGetErrorName(s)) + " (" + cudaGetErrorString(s) + ")"; }
inline std::string status_name(cublasStatus_t s) { return cublasLtGetStatusName(s); }
inline std::string status_name(cudnnStatus_t s) { return cudnnGetErrorString(s); }

[[noreturn]] inline void raise(const std::string& where, const char* call, const std::string& status, const char* file, int line) {
  const char* base = file;
  for (const char* p = file; *p; ++p)
    if (*p == '/') base = p + 1;
  fail("RUNTIME", (where.empty() ? "" : where + ": ") + call + " failed: " + status + " at " + base + ":" + std::to_string(line));
}

inline std::string where(const LayerInfo& L) { return "layer '" + L.op->name + "' (" + L.op->kind + ")"; }

// Byte alignment (a power of two, at most 256) of a tensor's storage: arena slots and constants are
// 256-byte aligned, views add their offsets.
inline size_t alignment_of(const Plan& p, const PlanTensor* t) {
  uint64_t off = 0;
  for (size_t guard = 0; t && t->view_base >= 0 && guard <= p.tensors.size(); ++guard) {
    off += t->view_offset;
    t = &p.tensors[t->view_base];
  }
  size_t a = 256;
  while (a > 1 && off % a) a /= 2;
  return a;
}

// The library tactics' shape: everything follows from make(L) — the layer's prepared State (with its
// `workspace` bytes), or nullptr when the library cannot run the layer. `why` says what the library
// lacks when an engine names a tactic that cannot run here.
template <typename State>
class LibraryTactic : public Tactic {
 public:
  bool can_implement(const LayerInfo& L) const override { return make(L) != nullptr; }
  size_t workspace(const LayerInfo& L) const override {
    auto st = make(L);
    return st ? static_cast<size_t>(st->workspace) : 0;
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = make(L);
    if (!st) fail("INVALID_ENGINE", where(L) + ": tactic " + name() + " cannot run this layer on this device (" + why() + ")");
    return st;
  }

 protected:
  virtual std::unique_ptr<State> make(const LayerInfo& L) const = 0;
  virtual std::string why() const = 0;
};

// The calling thread's library handles for the current device (created on first use; kept for the
// thread's life). Throw RUNTIME when the library cannot start.
cublasLtHandle_t lt_handle();
cudnnHandle_t cudnn_handle();
// Destroys every thread's library handles (the addon's unload); they are made again on next use.
void release_handles();

}  // namespace cu
}  // namespace kiln

// Checks a CUDA runtime / cuBLASLt / cuDNN call: KILN_CUDA_TRY(cudaMalloc(&p, n)).
#define KILN_CUDA_TRY(call)                                                                    \
  do {                                                                                         \
    auto kiln_status_ = (call);                                                                \
    if (!::kiln::cu::ok(kiln_status_))                                                         \
      ::kiln::cu::raise("", #call, ::kiln::cu::status_name(kiln_status_), __FILE__, __LINE__); \
  } while (0)
// The same, naming a layer (a LayerInfo) first.
#define KILN_CUDA_TRY_AT(layer, call)                                                                            \
  do {                                                                                                           \
    auto kiln_status_ = (call);                                                                                  \
    if (!::kiln::cu::ok(kiln_status_))                                                                           \
      ::kiln::cu::raise(::kiln::cu::where(layer), #call, ::kiln::cu::status_name(kiln_status_), __FILE__, __LINE__); \
  } while (0)

namespace kiln {
namespace cu {

// A cuBLASLt heuristic preference for a layer: the workspace limit and the alignments (bytes) the
// algorithms may assume of cuBLASLt's A, B and C = D; destroyed with the object.
struct LtPreference {
  cublasLtMatmulPreference_t p = nullptr;
  LtPreference(const LayerInfo& L, uint64_t workspace, uint32_t a, uint32_t b, uint32_t cd) {
    KILN_CUDA_TRY_AT(L, cublasLtMatmulPreferenceCreate(&p));
    try {
      KILN_CUDA_TRY_AT(L, cublasLtMatmulPreferenceSetAttribute(p, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof(workspace)));
      KILN_CUDA_TRY_AT(L, cublasLtMatmulPreferenceSetAttribute(p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &a, sizeof(a)));
      KILN_CUDA_TRY_AT(L, cublasLtMatmulPreferenceSetAttribute(p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &b, sizeof(b)));
      KILN_CUDA_TRY_AT(L, cublasLtMatmulPreferenceSetAttribute(p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &cd, sizeof(cd)));
      KILN_CUDA_TRY_AT(L, cublasLtMatmulPreferenceSetAttribute(p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &cd, sizeof(cd)));
    } catch (...) {
      cublasLtMatmulPreferenceDestroy(p);
      throw;
    }
  }
  ~LtPreference() { cublasLtMatmulPreferenceDestroy(p); }
  LtPreference(const LtPreference&) = delete;
  LtPreference& operator=(const LtPreference&) = delete;
};

// A cuBLASLt matmul with its layouts (cuBLASLt's A, B and C = D) and the algorithm picked for it,
// destroyed with the object: the int8 tactics' states (int8_gemm_cublaslt.cc, int8_conv_cublaslt.cc).
struct LtOp {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulAlgo_t algo{};
  size_t lt_workspace = 0;  // the algorithm's
  LtOp() = default;
  LtOp(const LtOp&) = delete;
  LtOp& operator=(const LtOp&) = delete;
  ~LtOp() {
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
  // Takes the index-th algorithm of cuBLASLt's heuristic for desc and the layouts; false when there is
  // none (or cuBLASLt does not support the combination at all).
  bool pick(const LayerInfo& L, const LtPreference& pref, int index) {
    constexpr int kMax = 8;
    cublasLtMatmulHeuristicResult_t res[kMax] = {};
    int got = 0;
    if (index < 0 || index >= kMax) return false;
    const cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(lt_handle(), desc, la, lb, lc, lc, pref.p, index + 1, res, &got);
    if (s == CUBLAS_STATUS_NOT_SUPPORTED) return false;
    KILN_CUDA_TRY_AT(L, s);
    if (got <= index || res[index].state != CUBLAS_STATUS_SUCCESS) return false;
    algo = res[index].algo;
    lt_workspace = res[index].workspaceSize;
    return true;
  }
};

}  // namespace cu
}  // namespace kiln

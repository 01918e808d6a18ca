// Host side shared by the CUDA int8 tactics (int8_tactics.cc: direct and tensor-core kernels for
// Int8Conv and Int8Gemm; int8_gemm_cublaslt.cc: Int8Gemm on cuBLASLt's IMMA): reading a layer into the
// kernels' geometry (int8_kernels.h) with the CPU's parameter checks (int8::read_params), and the
// per-layer device arrays made once in prepare(): channel multipliers, zero-point corrections, packed
// weights. Nothing here allocates or copies at run time.
#pragma once

#include <memory>
#include <string>

#include "../cpu/qgemm_int8.h"
#include "int8_kernels.h"
#include "tactic.h"

namespace kiln {
namespace i8cu {

// Device memory owned by a layer state; freed by the destructor (which never throws).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer();
  // Allocates `bytes` and copies them from the host (synchronously; prepare() time only).
  void upload(const LayerInfo& L, const void* src, size_t bytes);
  template <typename T> const T* as() const { return static_cast<const T*>(p_); }

 private:
  void* p_ = nullptr;
};

// An Int8Conv or Int8Gemm layer as the kernels see it.
struct Layer {
  Geom g;
  int8::Params p;
  bool u8 = false;        // uint8 activations
  int pad8 = 0;           // the zero point in the int8 domain (x_zero_point - 128 for uint8)
  int K = 0;              // window length (Cg * kernel size; K for Int8Gemm)
  int64_t rows = 0;       // Int8Gemm's M (positions of all images for Int8Conv)
  bool has_bias = false, has_residual = false;
  bool pooled = false;  // Int8ConvPool: g is the convolution, `pool` the max pool whose output Y is
  StemPool pool;
};

// Reads and validates the layer (Int8Conv, Int8ConvPool or Int8Gemm; throws INVALID_ENGINE naming it,
// like the CPU tactics) and refuses what the int32-indexed kernels cannot address (a tensor of 2^31
// elements or more: UNSUPPORTED).
Layer read_layer(const LayerInfo& L);
// read_layer without the throw: false when it would throw.
bool readable(const LayerInfo& L);

// What every int8 CUDA tactic keeps: the layer, the multipliers on the device and, for the kernels
// that read int8-domain activations, the corrections pad8 * Σ_k W[c, k] (needs W constant).
struct State : LayerState {
  Layer l;
  DeviceBuffer mult, corr;
  DeviceBuffer fmult, fbias;  // the folded form's arrays (Epilogue::fold; fbias: a constant or no bias)
  Epilogue base;  // everything but the run's tensors
};
// Fills st for the layer; with_corr uploads the corrections (W must be constant).
void init_state(const LayerInfo& L, State& st, bool with_corr);
// The epilogue of one run: base plus the run's bias, residual and output.
Epilogue epilogue_for(const State& st, const Tensor* in, Tensor* out);

// Throws RUNTIME naming the layer when a launch failed.
void check(const LayerInfo& L, cudaError_t e, const char* kernel);

}  // namespace i8cu
}  // namespace kiln

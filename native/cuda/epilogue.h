// Element-wise epilogues of the library tactics (cuBLASLt Gemm, cuDNN Conv) for what the libraries
// do not fuse: the fused activation of the 'activation' attribute (sgemm.h's Activation, computed in
// float), a per-channel bias, a residual input, and Gemm's broadcast C. float32 and float16. Launches
// only (graph-capturable); errors name the layer.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "../cpu/sgemm.h"
#include "common.h"
#include "tactic.h"

namespace kiln {
namespace cuep {

constexpr int kMaxBatch = 8;

// True when act can run on the device (every kind sgemm.h knows today).
bool supported(const Activation& act);

// y[i] = act(y[i] + bias[(i / inner) % channels] + z[i]) over n elements; bias and z may be null.
void bias_act(const LayerInfo& L, DType t, void* y, const void* bias, const void* z, int64_t n, int64_t inner, int64_t channels,
              const Activation& act, cudaStream_t s);

// Gemm's C and residual folded into the output before the product accumulates onto it:
// d[b, m, n] = beta * c[coff(b) + m * cm + n * cn] + z[(b * M + m) * N + n]   (c or z may be null)
struct GemmFill {
  int rank = 0;                    // batch dims
  int64_t batch[kMaxBatch] = {};   // extents
  int64_t cstride[kMaxBatch] = {}; // C's element strides along them
  int64_t M = 0, N = 0, cm = 0, cn = 0;
  float beta = 0;
};
void gemm_fill(const LayerInfo& L, DType t, void* d, const void* c, const void* z, const GemmFill& f, cudaStream_t s);

// A batch of matrices between a strided layout and a packed one ([batch..., rows, cols], rows of cols
// elements): packed[(b * rows + r) * cols + c] and strided[off + Σ_d idx_d(b) * stride[d] + r * ld + c],
// idx(b) the batch index b in the extents `batch`. Gather: strided → packed; scatter: packed → strided.
// For cuBLASLt's operands whose batch strides do not merge into one (gemm_cublaslt.cc's packed tactics).
struct BatchCopy {
  int rank = 0;
  int64_t batch[kMaxBatch] = {}, stride[kMaxBatch] = {};
  int64_t rows = 0, cols = 0, ld = 0, off = 0;
  int64_t elements() const;
};
void batch_copy(const LayerInfo& L, DType t, const void* src, void* dst, const BatchCopy& f, bool scatter, cudaStream_t s);

}  // namespace cuep
}  // namespace kiln

// The element-wise kernels around the cuBLASLt int8 GEMM (native/cuda/int8_gemm_cublaslt.cc):
// - gemm_epilogue: the int8 epilogue (int8_epilogue.cuh) over the int32 product, one thread per
//   element in a grid-stride loop (consecutive threads take consecutive columns, so the loads of the
//   product, the residual and the stores coalesce).
// - shift_u8: uint8 activations to the int8 values x - 128 (cuBLASLt's IMMA takes int8 only), four
//   bytes per thread step (x ^ 0x80 in each byte).
#include "int8_epilogue.cuh"
#include "kern.cuh"

namespace kiln {
namespace i8cu {
namespace {

using cuk::grid_for;  // blocks for a grid-stride loop (kern.cuh)
using cuk::kThreads;


__global__ void epilogue_kernel(const int32_t* __restrict__ acc, int64_t n, int64_t cols, Epilogue ep) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    put(ep, i, static_cast<int>(i % cols), acc[i]);
}

__global__ void shift_kernel(const uint32_t* __restrict__ x, uint32_t* __restrict__ y, int64_t words) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < words; i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = x[i] ^ 0x80808080u;
}

}  // namespace

cudaError_t gemm_epilogue(const int32_t* acc, int64_t rows, int64_t cols, const Epilogue& ep, cudaStream_t s) {
  int64_t n = rows * cols;
  if (n <= 0) return cudaSuccess;
  epilogue_kernel<<<grid_for(n), kThreads, 0, s>>>(acc, n, cols, ep);
  return cudaGetLastError();
}

cudaError_t shift_u8(const uint8_t* x, int8_t* y, int64_t n, cudaStream_t s) {
  int64_t words = n / 4;  // n is a multiple of 4 (cuBLASLt's IMMA needs K % 4 == 0)
  if (words <= 0) return cudaSuccess;
  shift_kernel<<<grid_for(words), kThreads, 0, s>>>(reinterpret_cast<const uint32_t*>(x), reinterpret_cast<uint32_t*>(y), words);
  return cudaGetLastError();
}

}  // namespace i8cu
}  // namespace kiln

// Host side shared by the CUDA int8 tactics (see int8_common.h).
#include "int8_common.h"

#include <cstring>
#include <vector>

#include "../cpu/conv_geom.h"

namespace kiln {
namespace i8cu {

DeviceBuffer::~DeviceBuffer() {
  if (p_) cudaFree(p_);
}

void DeviceBuffer::upload(const LayerInfo& L, const void* src, size_t bytes) {
  if (p_) cudaFree(p_);
  p_ = nullptr;
  if (bytes == 0) return;
  cudaError_t e = cudaMalloc(&p_, bytes);
  if (e != cudaSuccess) {
    p_ = nullptr;
    cudaGetLastError();
    fail("RUNTIME", "layer '" + L.op->name + "' (" + L.op->kind + "): out of device memory for " + std::to_string(bytes) + " bytes of int8 parameters: " +
                        cudaGetErrorString(e));
  }
  e = cudaMemcpy(p_, src, bytes, cudaMemcpyHostToDevice);
  if (e != cudaSuccess) fail("RUNTIME", "layer '" + L.op->name + "' (" + L.op->kind + "): cudaMemcpy of the int8 parameters failed: " + cudaGetErrorString(e));
}

namespace {

constexpr int64_t kMaxElems = (int64_t(1) << 31) - 1;

[[noreturn]] void bad(const LayerInfo& L, const char* code, const std::string& why) {
  fail(code, "layer '" + L.op->name + "' (" + L.op->kind + "): " + why);
}

}  // namespace

Layer read_layer(const LayerInfo& L) {
  const PlanOp& op = *L.op;
  Layer l;
  int64_t channels = 0;
  if (op.kind == "Int8Conv" || op.kind == "Int8ConvPool") {
    ConvGeom cg = conv_geom(L, false);
    if (op.kind == "Int8ConvPool") {
      // Y is the pool's output; the geometry is the convolution's
      const FusedPool fp = fused_pool(L, cg);
      l.pooled = true;
      for (int i = 0; i < 2; ++i) {
        if (fp.out[i] > kMaxElems || fp.k[i] > 64 || fp.s[i] > 64) bad(L, "UNSUPPORTED", "a pool too large for the CUDA int8 kernels");
        l.pool.k[i] = static_cast<int>(fp.k[i]), l.pool.s[i] = static_cast<int>(fp.s[i]), l.pool.p[i] = static_cast<int>(fp.p[i]), l.pool.out[i] = static_cast<int>(fp.out[i]);
      }
      if (cg.N * cg.M * cg.out_size() > kMaxElems) bad(L, "UNSUPPORTED", "the convolution's output is too large for the CUDA int8 kernels");
    }
    Geom& g = l.g;
    g.N = static_cast<int>(cg.N), g.C = static_cast<int>(cg.C), g.M = static_cast<int>(cg.M), g.G = static_cast<int>(cg.G);
    g.Cg = static_cast<int>(cg.Cg), g.Mg = static_cast<int>(cg.Mg);
    for (int i = 0; i < 3; ++i) {
      g.in[i] = static_cast<int>(cg.in[i]), g.out[i] = static_cast<int>(cg.out[i]), g.k[i] = static_cast<int>(cg.k[i]);
      g.s[i] = static_cast<int>(cg.s[i]), g.d[i] = static_cast<int>(cg.d[i]), g.p[i] = static_cast<int>(cg.p[i]);
      // the window's input coordinates (out * s - p + k * d) are int32 in the kernels
      if (cg.p[i] < 0 || cg.p[i] > kMaxElems / 4 || (cg.out[i] - 1) * cg.s[i] + (cg.k[i] - 1) * cg.d[i] > kMaxElems / 4)
        bad(L, "UNSUPPORTED", "strides, dilations or pads too large for the CUDA int8 kernels");
    }
    g.channels_last = cg.channels_last;
    l.K = static_cast<int>(cg.Cg * cg.k_size());
    l.rows = cg.N * cg.out_size();
    l.has_bias = cg.has_bias;
    l.has_residual = cg.has_residual;
    channels = cg.M;
  } else if (op.kind == "Int8Gemm") {
    int64_t M = op.i("M"), N = op.i("N"), K = op.i("K");
    if (L.in.size() < 2 || !L.in[0] || !L.in[1] || L.out.empty() || !L.out[0]) bad(L, "INVALID_ENGINE", "needs inputs A, W and an output");
    if (M < 0 || N < 0 || K < 0 || L.in[0]->numel() != M * K || L.in[1]->numel() != N * K || L.out[0]->numel() != M * N)
      bad(L, "INVALID_ENGINE", "A, W and Y do not have M x K, N x K and M x N elements");
    l.has_bias = L.in.size() > 2 && L.in[2];
    l.has_residual = L.in.size() > 3 && L.in[3];
    if (l.has_bias && L.in[2]->numel() != N) bad(L, "INVALID_ENGINE", "the bias must have N elements");
    if (l.has_residual && L.in[3]->numel() != M * N) bad(L, "INVALID_ENGINE", "the residual must have M x N elements");
    if (M > kMaxElems || N > kMaxElems || K > kMaxElems) bad(L, "UNSUPPORTED", "matrix sizes too large for the CUDA int8 kernels");
    // a channels-last 1x1 convolution of one image with M positions (int8_kernels.h)
    Geom& g = l.g;
    g.C = static_cast<int>(K), g.Cg = static_cast<int>(K), g.M = static_cast<int>(N), g.Mg = static_cast<int>(N);
    g.in[2] = g.out[2] = static_cast<int>(M);
    g.channels_last = true;
    l.K = static_cast<int>(K);
    l.rows = M;
    channels = N;
  } else {
    bad(L, "INTERNAL", "not an int8 layer kind");
  }
  if (l.has_bias && L.in[2]->dtype != DType::F32) bad(L, "INVALID_ENGINE", "the bias must be float32");
  for (const PlanTensor* t : {L.in[0], L.in[1], L.out[0]})
    if (t->numel() > kMaxElems) bad(L, "UNSUPPORTED", "a tensor of 2^31 elements or more is too large for the CUDA int8 kernels");
  l.p = int8::read_params(L, channels);
  l.u8 = L.in[0]->dtype == DType::U8;
  l.pad8 = l.u8 ? l.p.x_zp - 128 : l.p.x_zp;
  return l;
}

bool readable(const LayerInfo& L) {
  try {
    read_layer(L);
    return true;
  } catch (const Error&) {
    return false;
  }
}

void init_state(const LayerInfo& L, State& st, bool with_corr) {
  st.l = read_layer(L);
  const Layer& l = st.l;
  const int64_t channels = l.g.M;
  st.mult.upload(L, l.p.mult.data(), l.p.mult.size() * sizeof(float));
  Epilogue& e = st.base;
  e.mult = st.mult.as<float>();
  if (with_corr && l.pad8 != 0) {
    const int8_t* w = reinterpret_cast<const int8_t*>(L.const_data(1));
    if (!w) bad(L, "INTERNAL", "the int8 CUDA kernels need constant weights");
    std::vector<int32_t> corr(static_cast<size_t>(channels));
    for (int64_t c = 0; c < channels; ++c) {
      int32_t sum = 0;
      for (int64_t k = 0; k < l.K; ++k) sum += w[c * l.K + k];
      corr[c] = static_cast<int32_t>(static_cast<uint32_t>(sum) * static_cast<uint32_t>(l.pad8));
    }
    st.corr.upload(L, corr.data(), corr.size() * sizeof(int32_t));
    e.corr = st.corr.as<int32_t>();
  }
  e.out_type = l.p.out == DType::I8 ? kOutI8 : l.p.out == DType::U8 ? kOutU8 : kOutF32;
  e.y_scale = l.p.y_scale;
  e.y_zp = static_cast<float>(l.p.y_zp);
  e.act = l.p.act.kind;
  e.res_type = l.p.res == DType::I8 ? kOutI8 : l.p.res == DType::U8 ? kOutU8 : kOutF32;
  e.r_scale = l.p.r_scale;
  e.r_zp = static_cast<float>(l.p.r_zp);
  e.lo = l.p.act.lo, e.hi = l.p.act.hi, e.alpha = l.p.act.alpha, e.beta = l.p.act.beta;
  if (!l.p.fold.on) return;
  st.fmult.upload(L, l.p.fmult.data(), l.p.fmult.size() * sizeof(float));
  const uint8_t* bias = l.has_bias ? L.const_data(2) : nullptr;
  if (!l.has_bias || bias) {
    std::vector<float> fb(static_cast<size_t>(channels));
    for (int64_t c = 0; c < channels; ++c) {
      float b = 0;
      if (bias) std::memcpy(&b, bias + c * sizeof(float), sizeof(float));
      fb[c] = bias ? int8::fold_bias(b, l.p.y_scale, l.p.y_zp) : static_cast<float>(l.p.y_zp);
    }
    st.fbias.upload(L, fb.data(), fb.size() * sizeof(float));
  }
  fold_epilogue(e, st.fmult.as<float>(), st.fbias.as<float>());
}

Epilogue epilogue_for(const State& st, const Tensor* in, Tensor* out) {
  Epilogue e = st.base;
  e.bias = st.l.has_bias ? static_cast<const float*>(in[2].data) : nullptr;
  e.residual = st.l.has_residual ? in[3].data : nullptr;
  e.out = out[0].data;
  return e;
}

void check(const LayerInfo& L, cudaError_t e, const char* kernel) {
  if (e != cudaSuccess) fail("RUNTIME", "layer '" + L.op->name + "' (" + L.op->kind + "): CUDA kernel " + kernel + " failed: " + cudaGetErrorString(e));
}

}  // namespace i8cu
}  // namespace kiln

// Scaled dot-product attention for the "cuda" backend: kind 'Attention' (cuda.attention.warp), matching
// native/cpu/attention.cc:
//   out[b,h,s,:] = softmax_j(scale · Σ_d Q[b,h,s,d]·K[b,h,j,d] + mask[b,h,s,j]) · V[b,h,j,:]
// Q, K, V, the mask and the output are read and written through the layer's element strides over
// (b, h, position, d), so the transposes around attention cost nothing. One warp per query row
// (grid-stride over the B·H·S rows, up to 4 warps a block): the row of Q is staged in shared memory,
// each lane scores keys j ≡ lane (mod 32) into the warp's shared score row, the softmax is
// max-subtracted as on the CPU (warp-shuffle max and sum), and each lane accumulates ⌈Dv/32⌉ output
// columns over the T weights. The score matrix is never stored in global memory; the warp's shared
// memory holds T + D floats, so can_implement() refuses T + D over kMaxRow (and D or Dv over 256)
// rather than failing at run. float32, and float16 (computed in float) when every tensor is float16.
// Nothing is allocated, copied or synchronized at run time.
#include <cmath>

#include "kern.cuh"

namespace kiln {
namespace cuk {
namespace {

constexpr int kMaxD = 256;               // D and Dv
constexpr int kAcc = kMaxD / 32;         // output columns per lane
constexpr int kSmemBytes = 48 * 1024;    // the default dynamic shared memory limit (no opt-in needed)
constexpr int64_t kMaxRow = kSmemBytes / sizeof(float);  // T + D of one warp
constexpr int kMaxWarps = 4;

struct Params {
  int64_t B, H, S, T, D, Dv;
  int64_t qs[4], ks[4], vs[4], os[4], ms[4];
  float scale;
  const void *q, *k, *v, *m;
  void* o;
};

struct State : LayerState {
  Params p{};
  bool mask = false;
  int warps = 1;
};

// Builds the state; an empty string, or why the layer cannot run here.
std::string build(const LayerInfo& L, State& st) {
  const PlanOp& op = *L.op;
  Params& p = st.p;
  std::vector<int64_t> d = op.ints("dims", {});
  if (d.size() != 6) return "dims must be [B, H, S, T, D, Dv]";
  for (int64_t x : d)
    if (x < 0) return "negative dim";
  p.B = d[0], p.H = d[1], p.S = d[2], p.T = d[3], p.D = d[4], p.Dv = d[5];
  if (p.D > kMaxD || p.Dv > kMaxD) return "D and Dv must be at most " + std::to_string(kMaxD);
  if (p.T + p.D > kMaxRow) return "T + D over " + std::to_string(kMaxRow) + " (a warp's scores must fit in shared memory)";
  if (L.in.size() < 3 || !L.in[0] || !L.in[1] || !L.in[2]) return "Q, K and V are required";
  st.mask = L.in.size() > 3 && L.in[3];
  p.scale = static_cast<float>(op.f("scale", 1.0));
  DType t = L.out[0]->dtype;
  if (t != DType::F32 && t != DType::F16) return "takes float32 or float16 tensors";
  auto take = [&](const char* attr, int64_t (&dst)[4], const PlanTensor* x, int64_t n2, int64_t n3, const char* what) -> std::string {
    std::vector<int64_t> s = op.ints(attr, {});
    if (s.size() != 4) return std::string(attr) + " must have 4 entries";
    for (int i = 0; i < 4; ++i) {
      if (s[i] < 0) return std::string(what) + " has a negative stride";
      dst[i] = s[i];
    }
    if (x->dtype != t) return std::string(what) + " must have the output's element type";
    int64_t reach = (p.B - 1) * s[0] + (p.H - 1) * s[1] + (n2 - 1) * s[2] + (n3 - 1) * s[3];
    if (p.B && p.H && n2 && n3 && reach >= x->numel()) return std::string(what) + " is smaller than its strides reach";
    return "";
  };
  std::string why;
  if (!(why = take("q_strides", p.qs, L.in[0], p.S, p.D, "Q")).empty()) return why;
  if (!(why = take("k_strides", p.ks, L.in[1], p.T, p.D, "K")).empty()) return why;
  if (!(why = take("v_strides", p.vs, L.in[2], p.T, p.Dv, "V")).empty()) return why;
  if (!(why = take("o_strides", p.os, L.out[0], p.S, p.Dv, "the output")).empty()) return why;
  if (st.mask && !(why = take("mask_strides", p.ms, L.in[3], p.S, p.T, "the mask")).empty()) return why;
  int64_t w = kMaxRow / std::max<int64_t>(1, p.T + p.D);
  st.warps = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(kMaxWarps, w)));
  return "";
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <typename T>
__global__ void attention_kernel(Params p) {
  extern __shared__ float smem[];
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  float* qrow = smem + static_cast<int64_t>(w) * (p.T + p.D);
  float* prow = qrow + p.D;
  const T* Q = static_cast<const T*>(p.q);
  const T* K = static_cast<const T*>(p.k);
  const T* V = static_cast<const T*>(p.v);
  const T* M = static_cast<const T*>(p.m);
  T* O = static_cast<T*>(p.o);
  const int64_t rows = p.B * p.H * p.S;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * nw + w; r < rows; r += static_cast<int64_t>(gridDim.x) * nw) {
    int64_t s = r % p.S, h = (r / p.S) % p.H, b = r / (p.S * p.H);
    const T* q = Q + b * p.qs[0] + h * p.qs[1] + s * p.qs[2];
    const T* k = K + b * p.ks[0] + h * p.ks[1];
    const T* v = V + b * p.vs[0] + h * p.vs[1];
    const T* m = M ? M + b * p.ms[0] + h * p.ms[1] + s * p.ms[2] : nullptr;
    for (int64_t d = lane; d < p.D; d += 32) qrow[d] = ld(q[d * p.qs[3]]);
    __syncwarp();
    float mx = -INFINITY;
    for (int64_t j = lane; j < p.T; j += 32) {
      const T* kj = k + j * p.ks[2];
      float dot = 0.f;
      for (int64_t d = 0; d < p.D; ++d) dot += qrow[d] * ld(kj[d * p.ks[3]]);
      float x = dot * p.scale + (m ? ld(m[j * p.ms[3]]) : 0.f);
      prow[j] = x;
      mx = fmaxf(mx, x);
    }
    mx = warp_max(mx);
    float sum = 0.f;
    for (int64_t j = lane; j < p.T; j += 32) {
      float e = expf(prow[j] - mx);
      prow[j] = e;
      sum += e;
    }
    sum = warp_sum(sum);
    __syncwarp();  // every lane's weights are in prow
    float acc[kAcc];
#pragma unroll
    for (int i = 0; i < kAcc; ++i) acc[i] = 0.f;
    for (int64_t j = 0; j < p.T; ++j) {
      float wj = prow[j];
      const T* vj = v + j * p.vs[2];
#pragma unroll
      for (int i = 0; i < kAcc; ++i) {
        int64_t d = lane + 32 * i;
        if (d < p.Dv) acc[i] += wj * ld(vj[d * p.vs[3]]);
      }
    }
    T* o = O + b * p.os[0] + h * p.os[1] + s * p.os[2];
#pragma unroll
    for (int i = 0; i < kAcc; ++i) {
      int64_t d = lane + 32 * i;
      if (d < p.Dv) st(o[d * p.os[3]], acc[i] / sum);
    }
    __syncwarp();  // the row's shared memory is free for the next row
  }
}

class AttentionCuda : public Tactic {
 public:
  const char* name() const override { return "cuda.attention.warp"; }
  bool can_implement(const LayerInfo& L) const override {
    State st;
    return build(L, st).empty();
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = std::make_unique<State>();
    std::string why = build(L, *st);
    if (!why.empty()) fail("INVALID_ENGINE", where(L) + ": " + why);
    return st;
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const State& st = *static_cast<State*>(s);
    Params p = st.p;
    int64_t rows = p.B * p.H * p.S;
    if (rows == 0 || p.Dv == 0) return;
    p.q = in[0].data, p.k = in[1].data, p.v = in[2].data;
    p.m = st.mask ? in[3].data : nullptr;
    p.o = out[0].data;
    cudaStream_t stream = stream_of(ctx);
    int threads = 32 * st.warps;
    size_t smem = static_cast<size_t>(st.warps) * (p.T + p.D) * sizeof(float);
    unsigned grid = grid_for(rows * 32, threads);
    bool ok = dispatch_float(out[0].dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      attention_kernel<T><<<grid, threads, smem, stream>>>(p);
    });
    if (!ok) fail("INTERNAL", where(L) + ": cuda.attention.warp got " + dtype_name(out[0].dtype));
    check_launch(L, "attention.warp");
  }
};

}  // namespace
}  // namespace cuk
KILN_REGISTER_TACTIC("cuda", "Attention", cuk::AttentionCuda);
}  // namespace kiln

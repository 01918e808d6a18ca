// Fused element-wise chains for the "cuda" backend: kind 'Elementwise' (cuda.elementwise.fused), the
// graph optimizer's element-wise fusion, matching native/cpu/elementwise.cc. The program (at most
// kMaxInstr instructions over at most kMaxIn inputs) travels by value in the kernel's parameter struct:
// instruction k computes unary(a) or binary(a, b) in float, with the formulas of the Unary/Binary
// kernels (elementwise_ops.cuh, the op a run-time value). One thread per output element (grid-stride):
// the element's offset in every input comes from the broadcast strides of the merged index space
// (prepared once), the inputs are read once into a register file, the instructions run over it, and
// the last result is stored. Each input is float32 or float16 on its own (an fp16 engine's chain may read
// a float32 graph input or constant beside float16 activations), the output either; everything is
// computed in float and the result rounded once. Two kernels: one element per thread (any layout), and
// pairs — when the innermost merged dim is even, every input is contiguous (stride 1) or broadcast
// (stride 0) along it and every pointer is aligned, a thread loads each input as one half2/float2 (or
// one broadcast value), runs the program on both lanes and stores one half2/float2, halving the index
// arithmetic and the memory transactions. Nothing is allocated, copied or synchronized at run time.
#include <sstream>

#include "elementwise_ops.cuh"
#include "kern.cuh"

namespace kiln {
namespace cuk {
namespace {

constexpr int kMaxIn = 16;
constexpr int kMaxInstr = 32;
constexpr int64_t kNone = -1000;  // the CPU program's "no operand"

// The program as the kernel sees it. a/c name a slot of the register file: inputs 0..kMaxIn-1, the
// result of instruction k at kMaxIn + k.
struct Program {
  int nin = 0, n = 0;
  uint8_t op[kMaxInstr] = {};
  uint8_t unary[kMaxInstr] = {};
  uint8_t a[kMaxInstr] = {}, c[kMaxInstr] = {};
  float alpha[kMaxInstr] = {}, beta[kMaxInstr] = {}, gamma[kMaxInstr] = {};
  uint32_t half = 0;   // bit k: input k is float16 (else float32)
  uint32_t bcast = 0;  // bit k: input k is broadcast along the innermost dim (pairs kernel only)
  const void* in[kMaxIn] = {};
};

struct State : LayerState {
  Program prog;
  Strided<kMaxIn> sp;
  bool idx32 = true;
  bool pairs = false;   // the pairs kernel applies (pointer alignment is checked at run)
  Strided<kMaxIn> spp;  // the index space of pairs: the innermost dim halved, strides in pairs
};

bool float_uop(UOp u) { return !uop_bool_result(u) && u != UOp::Not && u != UOp::BitwiseNot && u != UOp::Count; }
bool float_bop(BOp b) { return !is_cmp(b) && !is_logic(b) && !is_bits(b) && b != BOp::Count; }

// Builds the state; an empty string, or why the layer cannot run here.
std::string build(const LayerInfo& L, State& st) {
  const PlanOp& op = *L.op;
  std::vector<std::string> names;
  std::stringstream ss(op.s("ops", ""));
  for (std::string item; std::getline(ss, item, ',');) names.push_back(item);
  std::vector<int64_t> args = op.ints("args", {});
  std::vector<double> params = op.has("params") ? op.floats("params") : std::vector<double>{};
  if (names.empty() || args.size() != 2 * names.size() || params.size() != 3 * names.size()) return "malformed program";
  if (names.size() > static_cast<size_t>(kMaxInstr)) return "more than " + std::to_string(kMaxInstr) + " instructions";
  if (L.in.size() > static_cast<size_t>(kMaxIn)) return "more than " + std::to_string(kMaxIn) + " inputs";
  Program& p = st.prog;
  p.nin = static_cast<int>(L.in.size());
  p.n = static_cast<int>(names.size());
  for (int k = 0; k < p.n; ++k) {
    const std::string& nm = names[k];
    if (nm.size() < 3 || nm[1] != ':' || (nm[0] != 'u' && nm[0] != 'b')) return "malformed instruction '" + nm + "'";
    p.unary[k] = nm[0] == 'u';
    if (p.unary[k]) {
      UOp u;
      if (!parse_uop(nm.substr(2), u) || !float_uop(u)) return "unsupported instruction '" + nm + "'";
      p.op[k] = static_cast<uint8_t>(u);
    } else {
      BOp b;
      if (!parse_bop_name(nm.substr(2), false, b) || !float_bop(b)) return "unsupported instruction '" + nm + "'";
      p.op[k] = static_cast<uint8_t>(b);
    }
    int64_t a = args[2 * k], c = args[2 * k + 1];
    if (a == kNone || (!p.unary[k] && c == kNone)) return "instruction " + std::to_string(k) + " lacks an operand";
    auto slot = [&](int64_t r, uint8_t& s) {
      if (r == kNone) return s = 0, true;
      if (r >= p.nin || (r < 0 && -(r + 1) >= k)) return false;
      s = static_cast<uint8_t>(r >= 0 ? r : kMaxIn + (-(r + 1)));
      return true;
    };
    if (!slot(a, p.a[k]) || !slot(c, p.c[k])) return "instruction " + std::to_string(k) + " reads an operand it cannot";
    p.alpha[k] = static_cast<float>(params[3 * k]);
    p.beta[k] = static_cast<float>(params[3 * k + 1]);
    p.gamma[k] = static_cast<float>(params[3 * k + 2]);
  }
  auto is_float = [](const PlanTensor* x) { return x && (x->dtype == DType::F32 || x->dtype == DType::F16); };
  if (!is_float(L.out[0])) return "the output must be float32 or float16";
  const Shape& os = L.out[0]->shape;
  std::vector<std::vector<int64_t>> strides;
  for (int k = 0; k < p.nin; ++k) {
    const PlanTensor* x = L.in[k];
    if (!is_float(x)) return "every input must be float32 or float16";
    if (x->shape.size() > os.size()) return "an input has a higher rank than the output";
    if (x->dtype == DType::F16) p.half |= 1u << k;
    strides.push_back(bcast_strides(x->shape, os));
  }
  strides.resize(kMaxIn, std::vector<int64_t>(os.size(), 0));
  if (!make_strided<kMaxIn>(os, strides, st.sp)) return "broadcast rank over " + std::to_string(kMaxRank);
  st.idx32 = fits32(st.sp, L.out[0]->numel());
  // Pairs: the innermost dim even and every input contiguous or broadcast along it. Then every pair
  // starts at an even offset of each contiguous input (its outer strides are multiples of that dim).
  int r = st.sp.rank;
  st.pairs = r > 0 && st.sp.shape[r - 1] % 2 == 0;
  for (int k = 0; k < p.nin && st.pairs; ++k) {
    int64_t s = st.sp.stride[k][r - 1];
    if (s != 0 && s != 1) st.pairs = false;
    if (s == 0) p.bcast |= 1u << k;
  }
  if (st.pairs) {
    st.spp = st.sp;
    st.spp.shape[r - 1] /= 2;
    for (int k = 0; k < kMaxIn; ++k) st.spp.stride[k][r - 1] *= 2;
  }
  return "";
}

__device__ __forceinline__ float load_in(const Program& p, int k, int64_t off) {
  return (p.half >> k) & 1 ? __half2float(static_cast<const __half*>(p.in[k])[off]) : static_cast<const float*>(p.in[k])[off];
}
// Input k's elements off and off + 1 (or element off twice when k is broadcast along the pair).
__device__ __forceinline__ float2 load_pair(const Program& p, int k, int64_t off) {
  if ((p.bcast >> k) & 1) {
    float v = load_in(p, k, off);
    return make_float2(v, v);
  }
  if ((p.half >> k) & 1) return __half22float2(*reinterpret_cast<const __half2*>(static_cast<const __half*>(p.in[k]) + off));
  return *reinterpret_cast<const float2*>(static_cast<const float*>(p.in[k]) + off);
}

// Runs the program over register file r (inputs in slots 0..nin-1); the result is r[kMaxIn + n - 1].
template <typename V>
__device__ __forceinline__ void run_program(const Program& p, V* r);
template <>
__device__ __forceinline__ void run_program<float>(const Program& p, float* r) {
  for (int k = 0; k < p.n; ++k) {
    float x = r[p.a[k]], y = r[p.c[k]];
    r[kMaxIn + k] = p.unary[k] ? ufloat_rt(static_cast<UOp>(p.op[k]), x, p.alpha[k], p.beta[k], p.gamma[k])
                               : bfloat_rt(static_cast<BOp>(p.op[k]), x, y, false);
  }
}
template <>
__device__ __forceinline__ void run_program<float2>(const Program& p, float2* r) {
  for (int k = 0; k < p.n; ++k) {
    float2 x = r[p.a[k]], y = r[p.c[k]], z;
    if (p.unary[k]) {
      UOp u = static_cast<UOp>(p.op[k]);
      z.x = ufloat_rt(u, x.x, p.alpha[k], p.beta[k], p.gamma[k]);
      z.y = ufloat_rt(u, x.y, p.alpha[k], p.beta[k], p.gamma[k]);
    } else {
      BOp b = static_cast<BOp>(p.op[k]);
      z.x = bfloat_rt(b, x.x, y.x, false);
      z.y = bfloat_rt(b, x.y, y.y, false);
    }
    r[kMaxIn + k] = z;
  }
}

template <typename T, typename I>
__global__ void fused_kernel(Program p, Strided<kMaxIn> sp, T* out, int64_t n) {
  I step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < static_cast<I>(n); i += step) {
    I off[kMaxIn];
    offsets<I, kMaxIn>(sp, i, off);
    float r[kMaxIn + kMaxInstr];
#pragma unroll
    for (int k = 0; k < kMaxIn; ++k)
      if (k < p.nin) r[k] = load_in(p, k, off[k]);
    run_program(p, r);
    st(out[i], r[kMaxIn + p.n - 1]);
  }
}

// Stores lanes x and y at out[2i], out[2i + 1] with one 4-byte (half2) or 8-byte (float2) store.
__device__ __forceinline__ void store_pair(__half* out, int64_t i, float2 v) { reinterpret_cast<__half2*>(out)[i] = __floats2half2_rn(v.x, v.y); }
__device__ __forceinline__ void store_pair(float* out, int64_t i, float2 v) { reinterpret_cast<float2*>(out)[i] = v; }

// One thread per pair of output elements (2i, 2i + 1); sp is the index space of pairs.
template <typename T, typename I>
__global__ void fused_pairs_kernel(Program p, Strided<kMaxIn> sp, T* out, int64_t pairs) {
  I step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < static_cast<I>(pairs); i += step) {
    I off[kMaxIn];
    offsets<I, kMaxIn>(sp, i, off);
    float2 r[kMaxIn + kMaxInstr];
#pragma unroll
    for (int k = 0; k < kMaxIn; ++k)
      if (k < p.nin) r[k] = load_pair(p, k, off[k]);
    run_program(p, r);
    store_pair(out, i, r[kMaxIn + p.n - 1]);
  }
}

class ElementwiseFusedCuda : public Tactic {
 public:
  const char* name() const override { return "cuda.elementwise.fused"; }
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
    int64_t n = out[0].numel();
    if (n == 0) return;
    Program p = st.prog;
    for (int k = 0; k < p.nin; ++k) p.in[k] = in[k].data;
    cudaStream_t stream = stream_of(ctx);
    // Pairs need every pair's address aligned to its width: the bases (views may start anywhere).
    bool pairs = st.pairs && aligned(out[0].data, 2 * dtype_size(out[0].dtype));
    for (int k = 0; k < p.nin && pairs; ++k)
      if (!((p.bcast >> k) & 1)) pairs = aligned(p.in[k], 2 * dtype_size(in[k].dtype));
    bool ok = dispatch_float(out[0].dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      T* y = static_cast<T*>(out[0].data);
      if (pairs && st.idx32) fused_pairs_kernel<T, uint32_t><<<grid_for(n / 2), kThreads, 0, stream>>>(p, st.spp, y, n / 2);
      else if (pairs) fused_pairs_kernel<T, int64_t><<<grid_for(n / 2), kThreads, 0, stream>>>(p, st.spp, y, n / 2);
      else if (st.idx32) fused_kernel<T, uint32_t><<<grid_for(n), kThreads, 0, stream>>>(p, st.sp, y, n);
      else fused_kernel<T, int64_t><<<grid_for(n), kThreads, 0, stream>>>(p, st.sp, y, n);
    });
    if (!ok) fail("INTERNAL", where(L) + ": cuda.elementwise.fused got " + dtype_name(out[0].dtype));
    check_launch(L, "elementwise.fused");
  }
};

}  // namespace
}  // namespace cuk
KILN_REGISTER_TACTIC("cuda", "Elementwise", cuk::ElementwiseFusedCuda);
}  // namespace kiln

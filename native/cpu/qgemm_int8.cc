// Int8Gemm: Y[M, N] = epilogue(sum_k (A[m, k] - a_zp) * W[n, k]) with A int8/uint8 [M, K] (a MatMul's
// leading dims flattened into M), W int8 [N, K] (one row per output channel), optional float bias [N]
// and residual [M, N], float32 or requantized int8/uint8 output (qgemm_int8.h has the epilogue).
// Attributes M, N, K plus the int8 parameters (x_scale/x_zero_point are A's). Variants:
//   cpu.int8_gemm          reference: int32 sums of one element at a time.
//   cpu.int8_gemm.packed   constant W packed once as int16 rows; each task packs one A row at a time
//                          (minus its zero point) and takes four output channels per pass of the AVX2
//                          dot (portable loop without AVX2); tasks split the rows, or the columns when
//                          there are fewer rows than threads (batch-1 fully connected layers).
// Also here: the shared core of qgemm_int8.h (parameters, weight packing, the int16 dot).
#include "qgemm_int8.h"

#include <cstring>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "../threadpool.h"

namespace kiln::int8 {

Params read_params(const LayerInfo& L, int64_t channels) {
  const PlanOp& op = *L.op;
  auto bad = [&](const std::string& why) { fail("INVALID_ENGINE", "layer '" + op.name + "' (" + op.kind + "): " + why); };
  if (L.in.size() < 2 || !L.in[0] || !L.in[1] || L.out.empty() || !L.out[0]) bad("needs inputs X, W and an output");
  Params p;
  DType xt = L.in[0]->dtype;
  if (xt != DType::I8 && xt != DType::U8) bad(std::string("the activation input must be int8 or uint8, got ") + dtype_name(xt));
  if (L.in[1]->dtype != DType::I8) bad(std::string("the weights must be int8, got ") + dtype_name(L.in[1]->dtype));
  p.x_scale = static_cast<float>(op.f("x_scale"));
  p.x_zp = static_cast<int32_t>(op.i("x_zero_point"));
  if (!(p.x_scale > 0) || !std::isfinite(p.x_scale)) bad("x_scale must be positive and finite");
  if (xt == DType::U8 ? (p.x_zp < 0 || p.x_zp > 255) : (p.x_zp < -128 || p.x_zp > 127)) bad("x_zero_point is out of the activation type's range");
  const auto& ws = op.floats("w_scales");
  if (ws.size() != 1 && static_cast<int64_t>(ws.size()) != channels)
    bad("w_scales has " + std::to_string(ws.size()) + " values, expected 1 or " + std::to_string(channels));
  p.mult.resize(channels);
  for (int64_t c = 0; c < channels; ++c) {
    double s = ws[ws.size() == 1 ? 0 : c];
    if (!(s > 0) || !std::isfinite(s)) bad("w_scales must be positive and finite");
    p.mult[c] = static_cast<float>(p.x_scale * s);
  }
  p.act = parse_activation(L);
  p.out = L.out[0]->dtype;
  // the scale and zero point of a quantized tensor of type t, from attributes <name>_scale and <name>_zero_point
  auto quantized = [&](const char* name, DType t, const char* what, float& scale, int32_t& zp) {
    const std::string s = std::string(name) + "_scale", z = std::string(name) + "_zero_point";
    scale = static_cast<float>(op.f(s));
    zp = static_cast<int32_t>(op.i(z));
    if (!(scale > 0) || !std::isfinite(scale)) bad(s + " must be positive and finite");
    if (t == DType::U8 ? (zp < 0 || zp > 255) : (zp < -128 || zp > 127)) bad(z + " is out of the " + what + " type's range");
  };
  if (p.out == DType::I8 || p.out == DType::U8) {
    quantized("y", p.out, "output", p.y_scale, p.y_zp);
  } else if (p.out != DType::F32) {
    bad(std::string("the output must be float32, int8 or uint8, got ") + dtype_name(p.out));
  }
  if (L.in.size() > 3 && L.in[3]) {
    p.res = L.in[3]->dtype;
    if (p.res == DType::I8 || p.res == DType::U8) {
      quantized("residual", p.res, "residual", p.r_scale, p.r_zp);
    } else if (p.res != DType::F32) {
      bad(std::string("the residual must be float32, int8 or uint8, got ") + dtype_name(p.res));
    }
  }
  p.fold = fold_for(p.out != DType::F32, p.out == DType::I8, p.y_scale, p.y_zp, p.act, p.res == DType::F32, p.r_scale);
  if (p.fold.on) {
    p.fmult.resize(channels);
    for (int64_t c = 0; c < channels; ++c) p.fmult[c] = fold_mult(p.mult[c], p.y_scale);
  }
  return p;
}

std::vector<int16_t> pack_weights(const int8_t* w, int64_t rows, int64_t K) {
  int64_t Kp = padded(K);
  std::vector<int16_t> out(static_cast<size_t>(rows * Kp), 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < K; ++k) out[r * Kp + k] = w[r * K + k];
  return out;
}

namespace {

template <int N>
void dot_portable(const int16_t* a, const int16_t* w, int64_t ldw, int64_t Kp, int32_t* out) {
  for (int j = 0; j < N; ++j) {
    const int16_t* wr = w + j * ldw;
    int32_t s = 0;
    for (int64_t k = 0; k < Kp; ++k) s += static_cast<int32_t>(a[k]) * wr[k];
    out[j] = s;
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) inline int32_t hsum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_hadd_epi32(s, s);
  s = _mm_hadd_epi32(s, s);
  return _mm_cvtsi128_si32(s);
}

// N accumulators share each 16-value load of `a`; two loads per step keep the multiply units busy.
template <int N>
__attribute__((target("avx2"))) void dot_avx2(const int16_t* a, const int16_t* w, int64_t ldw, int64_t Kp, int32_t* out) {
  __m256i acc[N];
  for (int j = 0; j < N; ++j) acc[j] = _mm256_setzero_si256();
  for (int64_t k = 0; k < Kp; k += 16) {
    __m256i va = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + k));
    for (int j = 0; j < N; ++j)
      acc[j] = _mm256_add_epi32(acc[j], _mm256_madd_epi16(va, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + j * ldw + k))));
  }
  for (int j = 0; j < N; ++j) out[j] = hsum(acc[j]);
}

const bool kHaveAvx2 = __builtin_cpu_supports("avx2");
#endif

template <int N>
void dot_n(const int16_t* a, const int16_t* w, int64_t ldw, int64_t Kp, int32_t* out) {
#if defined(__x86_64__)
  if (kHaveAvx2) return dot_avx2<N>(a, w, ldw, Kp, out);
#endif
  dot_portable<N>(a, w, ldw, Kp, out);
}

}  // namespace

void dot_rows(const int16_t* a, const int16_t* w, int64_t ldw, int64_t Kp, int n, int32_t* out) {
  switch (n) {
    case 4: return dot_n<4>(a, w, ldw, Kp, out);
    case 3: return dot_n<3>(a, w, ldw, Kp, out);
    case 2: return dot_n<2>(a, w, ldw, Kp, out);
    default: return dot_n<1>(a, w, ldw, Kp, out);
  }
}

int64_t task_slots() { return std::max(1, ThreadPool::instance().size()); }

namespace {

struct GemmDims {
  int64_t M, N, K;
  bool has_bias, has_residual;
};

// Shapes and attributes, checked against the tensors.
GemmDims gemm_dims(const LayerInfo& L) {
  const PlanOp& op = *L.op;
  auto bad = [&](const std::string& why) { fail("INVALID_ENGINE", "layer '" + op.name + "' (Int8Gemm): " + why); };
  if (L.in.size() < 2 || !L.in[0] || !L.in[1] || L.out.empty() || !L.out[0]) bad("needs inputs A, W and an output");
  GemmDims d{op.i("M"), op.i("N"), op.i("K"), L.in.size() > 2 && L.in[2], L.in.size() > 3 && L.in[3]};
  if (d.M < 0 || d.N < 0 || d.K < 0) bad("negative matrix size");
  if (L.in[0]->numel() != d.M * d.K) bad("A has " + std::to_string(L.in[0]->numel()) + " elements, M x K is " + std::to_string(d.M * d.K));
  if (L.in[1]->numel() != d.N * d.K) bad("W has " + std::to_string(L.in[1]->numel()) + " elements, N x K is " + std::to_string(d.N * d.K));
  if (L.out[0]->numel() != d.M * d.N) bad("Y has " + std::to_string(L.out[0]->numel()) + " elements, M x N is " + std::to_string(d.M * d.N));
  if (d.has_bias && (L.in[2]->dtype != DType::F32 || L.in[2]->numel() != d.N)) bad("the bias must be float32 with N elements");
  if (d.has_residual && L.in[3]->numel() != d.M * d.N) bad("the residual must have M x N elements");
  return d;
}

Store store_for(const Params& p, const GemmDims& d, const Tensor* in, Tensor* out) {
  return Store{p, d.has_bias ? in[2].as<float>() : nullptr, d.has_residual ? in[3].data : nullptr, out[0].data};
}

class Int8GemmRef : public Tactic {
 public:
  const char* name() const override { return "cpu.int8_gemm"; }
  bool reference() const override { return true; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext&) const override {
    GemmDims d = gemm_dims(L);
    Params p = read_params(L, d.N);
    Store st = store_for(p, d, in, out);
    const int8_t* w = in[1].as<int8_t>();
    for (int64_t m = 0; m < d.M; ++m)
      for (int64_t n = 0; n < d.N; ++n) {
        int32_t acc = 0;
        for (int64_t k = 0; k < d.K; ++k) acc += centered(in[0].data, in[0].dtype, m * d.K + k, p.x_zp) * w[n * d.K + k];
        st.put(m * d.N + n, n, acc);
      }
  }
};

struct PackedState : LayerState {
  GemmDims d;
  Params p;
  std::vector<int16_t> w;
};

class Int8GemmPacked : public Tactic {
 public:
  const char* name() const override { return "cpu.int8_gemm.packed"; }
  bool can_implement(const LayerInfo& L) const override { return L.const_data(1) != nullptr; }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = std::make_unique<PackedState>();
    st->d = gemm_dims(L);
    st->p = read_params(L, st->d.N);
    st->w = pack_weights(reinterpret_cast<const int8_t*>(L.const_data(1)), st->d.N, st->d.K);
    return st;
  }
  size_t workspace(const LayerInfo& L) const override { return static_cast<size_t>(task_slots() * padded(L.op->i("K"))) * sizeof(int16_t); }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const auto& st = *static_cast<PackedState*>(s);
    const GemmDims& d = st.d;
    Store put = store_for(st.p, d, in, out);
    int64_t Kp = padded(d.K);
    int64_t T = std::max<int64_t>(1, std::min<int64_t>(task_slots(), ctx.threads));
    bool split_rows = d.M >= T;
    int16_t* ws = static_cast<int16_t*>(ctx.workspace);
    const void* A = in[0].data;
    DType at = in[0].dtype;
    auto task = [&](int64_t t) {
      int16_t* a = ws + t * Kp;
      int64_t m0 = 0, m1 = d.M, n0 = 0, n1 = d.N;
      if (split_rows) m0 = d.M * t / T, m1 = d.M * (t + 1) / T;
      else n0 = d.N * t / T, n1 = d.N * (t + 1) / T;
      std::memset(a + d.K, 0, static_cast<size_t>(Kp - d.K) * sizeof(int16_t));
      int32_t acc[4];
      for (int64_t m = m0; m < m1; ++m) {
        for (int64_t k = 0; k < d.K; ++k) a[k] = static_cast<int16_t>(centered(A, at, m * d.K + k, st.p.x_zp));
        for (int64_t n = n0; n < n1; n += 4) {
          int cnt = static_cast<int>(std::min<int64_t>(4, n1 - n));
          dot_rows(a, st.w.data() + n * Kp, Kp, Kp, cnt, acc);
          for (int j = 0; j < cnt; ++j) put.put(m * d.N + n + j, n + j, acc[j]);
        }
      }
    };
    run_tasks(ctx, T, task);
  }
};

}  // namespace
}  // namespace kiln::int8

namespace kiln {
KILN_REGISTER_TACTIC("cpu", "Int8Gemm", int8::Int8GemmRef);
KILN_REGISTER_TACTIC("cpu", "Int8Gemm", int8::Int8GemmPacked);
}  // namespace kiln

// Gemm on the CUDA backend through cuBLASLt (see native/cpu/gemm.cc for the attribute contract):
//   out[b, m, n] = act(alpha * sum_k A[b](m, k) * B[b](k, n) + beta * C[b, m, n] + residual[b, m, n])
// kiln's row-major product is cuBLASLt's column-major Dᵀ = Bᵀ·Aᵀ, so a per-N bias vector is
// cuBLASLt's BIAS epilogue (fused with RELU / GELU(tanh) where the activation is one of those). Batch
// dims that merge into one stride run as one strided-batched call; the rest loop on the host, or, in
// the packed tactics, the operands whose strides do not merge (attention's Q·Kᵀ over batch and heads
// of a [batch, seq, heads, dim] tensor) are copied into the workspace packed ([batch..., rows, cols];
// an output of that kind is written there and scattered after), and the whole batch is one call. Any
// other C, and the residual, are written into the output first (cuep::gemm_fill) and accumulated with
// beta = 1; activations cuBLASLt has no epilogue for run after it (cuep::bias_act).
// Tactics: cuda.cublaslt.algoN (fp32 math for float32, fp32 accumulation for float16) and
// cuda.cublaslt.tf32.algoN (float32 on TF32 tensor cores; left out by `strict`), N = the rank of the
// algorithm in cuBLASLt's heuristic for the layer, each timed as its own candidate; cuda.cublaslt.packed.algoN
// and cuda.cublaslt.tf32.packed.algoN where batch dims loop on the host otherwise.
#include <algorithm>
#include <memory>
#include <numeric>

#include "../gemm_dims.h"
#include "cuda_util.h"
#include "epilogue.h"

namespace kiln {
namespace {

constexpr int kAlgos = 6, kPackedAlgos = 3;
constexpr uint64_t kMaxWorkspace = 32ull << 20;

size_t align256(size_t n) { return (n + 255) / 256 * 256; }

struct LtState : LayerState, GemmDims {
  float alpha = 1, beta = 0;
  DType dt = DType::F32;
  bool has_c = false, has_z = false;
  bool bias_epilogue = false;  // C is a per-N vector added by cuBLASLt
  bool fill = false;           // C (general) and/or the residual are written into D first
  bool post_act = false;       // the activation runs after the product
  Activation act;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  cuep::GemmFill gf;
  // Host-looped outer batch dims (extents, A/B element strides) and the strided inner batch.
  std::vector<int64_t> outer, outer_sa, outer_sb, outer_sd;
  int64_t inner = 1, inner_sa = 0, inner_sb = 0, inner_sd = 0;
  int64_t ldd = 0;  // the output's row stride (d_ld; N when contiguous)
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;  // cuBLASLt's A (= kiln B), B (= kiln A), C = D
  // packed operands: A and B gathered into the workspace, D written there and scattered
  bool pack_a = false, pack_b = false, pack_d = false;
  cuep::BatchCopy pa, pb, pd;
  cublasLtMatmulAlgo_t algo{};
  size_t lt_workspace = 0;  // cuBLASLt's share, first in the workspace
  size_t workspace = 0;     // all of it: cuBLASLt's, then the packed A, B and D
  size_t pack_bytes(const cuep::BatchCopy& f) const { return align256(static_cast<size_t>(f.elements()) * dtype_size(dt)); }
  ~LtState() override {
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (ld) cublasLtMatrixLayoutDestroy(ld);
  }
};

cudaDataType_t cuda_type(DType t) { return t == DType::F16 ? CUDA_R_16F : CUDA_R_32F; }

bool types_ok(const LayerInfo& L) {
  if (L.in.size() < 2 || !L.in[0] || !L.in[1] || L.out.empty() || !L.out[0]) return false;
  DType t = L.out[0]->dtype;
  if (t != DType::F32 && t != DType::F16) return false;
  for (auto* x : L.in)
    if (x && x->dtype != t) return false;
  return true;
}

// The matmul descriptor (per call: the bias pointer is per execution context).
struct OpDesc {
  cublasLtMatmulDesc_t d = nullptr;
  ~OpDesc() {
    if (d) cublasLtMatmulDescDestroy(d);
  }
};

void make_desc(const LayerInfo& L, const LtState& st, const void* bias, OpDesc& od) {
  KILN_CUDA_TRY_AT(L, cublasLtMatmulDescCreate(&od.d, st.compute, CUDA_R_32F));
  cublasOperation_t opa = st.tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = st.ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  KILN_CUDA_TRY_AT(L, cublasLtMatmulDescSetAttribute(od.d, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof(opa)));
  KILN_CUDA_TRY_AT(L, cublasLtMatmulDescSetAttribute(od.d, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof(opb)));
  KILN_CUDA_TRY_AT(L, cublasLtMatmulDescSetAttribute(od.d, CUBLASLT_MATMUL_DESC_EPILOGUE, &st.epilogue, sizeof(st.epilogue)));
  if (st.bias_epilogue) {
    int64_t zero = 0;
    KILN_CUDA_TRY_AT(L, cublasLtMatmulDescSetAttribute(od.d, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    KILN_CUDA_TRY_AT(L, cublasLtMatmulDescSetAttribute(od.d, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, &zero, sizeof(zero)));
  }
}

// Strides that merge into one along the dims' extents (each the next one's times its extent).
bool merges(const std::vector<int64_t>& extents, const std::vector<int64_t>& strides) {
  for (size_t d = 1; d < extents.size(); ++d)
    if (strides[d - 1] != strides[d] * extents[d]) return false;
  return true;
}

// Packs one operand: the copy from its layout (offset, leading dimension, batch strides) into packed
// [batch..., rows, cols], whose strides then replace its own.
void pack(cuep::BatchCopy& f, const std::vector<int64_t>& extents, std::vector<int64_t>& strides, int64_t rows, int64_t cols, int64_t& off, int64_t& ld) {
  f.rank = static_cast<int>(extents.size());
  for (size_t d = 0; d < extents.size(); ++d) f.batch[d] = extents[d], f.stride[d] = strides[d];
  f.rows = rows, f.cols = cols, f.ld = ld, f.off = off;
  off = 0, ld = cols;
  int64_t step = rows * cols;
  for (size_t d = extents.size(); d-- > 0;) {
    strides[d] = step;
    step *= extents[d];
  }
}

// Reads and checks the layer; nullptr (with no CUDA call made) when cuBLASLt cannot take it. packed:
// the packed tactics' view of it (nullptr unless some batch strides do not merge).
std::unique_ptr<LtState> analyze(const LayerInfo& L, bool tf32, bool packed) {
  if (!types_ok(L)) return nullptr;
  const PlanOp& op = *L.op;
  auto st = std::make_unique<LtState>();
  st->dt = L.out[0]->dtype;
  if (tf32 && st->dt != DType::F32) return nullptr;
  st->compute = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  static_cast<GemmDims&>(*st) = GemmDims::read(op);
  st->alpha = static_cast<float>(op.f("alpha"));
  st->beta = static_cast<float>(op.f("beta"));
  std::vector<int64_t> batch = op.ints("batch"), sa = op.ints("a_batch_strides"), sb = op.ints("b_batch_strides"), sc;
  st->has_c = L.in.size() > 2 && L.in[2];
  st->has_z = L.in.size() > 3 && L.in[3];
  if (st->has_c) sc = op.ints("c_strides");
  st->act = parse_activation(L);
  if (!cuep::supported(st->act)) return nullptr;
  size_t nb = batch.size();
  if (st->M < 1 || st->N < 1 || st->K < 1 || sa.size() != nb || sb.size() != nb || (st->has_c && sc.size() != nb + 2)) return nullptr;
  if (nb > static_cast<size_t>(cuep::kMaxBatch)) return nullptr;
  // Every element an index reaches lies inside its tensor (as the CPU tactics check).
  int64_t nbatch = 1, ra = 0, rb = 0, rc = 0;
  for (size_t d = 0; d < nb; ++d) {
    if (batch[d] < 1 || sa[d] < 0 || sb[d] < 0 || (st->has_c && sc[d] < 0)) return nullptr;
    nbatch *= batch[d];
    ra += (batch[d] - 1) * sa[d];
    rb += (batch[d] - 1) * sb[d];
    if (st->has_c) rc += (batch[d] - 1) * sc[d];
  }
  // cuBLASLt's column-major view needs a leading dimension of at least the stored rows' length
  if (st->a_off < 0 || st->b_off < 0 || st->lda < (st->ta ? st->M : st->K) || st->ldb < (st->tb ? st->K : st->N)) return nullptr;
  if (st->last_a(ra) >= L.in[0]->numel() || st->last_b(rb) >= L.in[1]->numel()) return nullptr;
  if (L.out[0]->numel() != nbatch * st->M * st->N) return nullptr;
  if (st->has_c) {
    if (sc[nb] < 0 || sc[nb + 1] < 0 || rc + (st->M - 1) * sc[nb] + (st->N - 1) * sc[nb + 1] >= L.in[2]->numel()) return nullptr;
  }
  if (st->has_z && L.in[3]->numel() != L.out[0]->numel()) return nullptr;
  // the output's layout: contiguous [batch..., M, N], or d_batch_strides / d_ld (no C, no residual)
  std::vector<int64_t> sd(nb, 0);
  {
    int64_t step = st->M * st->N;
    for (size_t d = nb; d-- > 0;) {
      sd[d] = step;
      step *= batch[d];
    }
  }
  st->ldd = op.i("d_ld", st->N);
  if (op.has("d_batch_strides") || op.has("d_ld")) {
    if (st->has_c || st->has_z) return nullptr;
    if (op.has("d_batch_strides")) sd = op.ints("d_batch_strides");
    if (sd.size() != nb || st->ldd < st->N) return nullptr;
    int64_t rd = 0;
    for (size_t d = 0; d < nb; ++d) {
      if (sd[d] < 0) return nullptr;
      rd += (batch[d] - 1) * sd[d];
    }
    if (rd + (st->M - 1) * st->ldd + st->N - 1 >= L.out[0]->numel()) return nullptr;
  }
  // Epilogue: a per-N bias vector shared by every batch item goes to cuBLASLt; anything else is filled.
  bool c_vec = st->has_c && st->beta == 1.f && (sc[nb] == 0 || st->M == 1) && sc[nb + 1] == 1;
  for (size_t d = 0; d < nb && c_vec; ++d) c_vec = sc[d] == 0 || batch[d] == 1;  // a batch dim of extent 1 never moves
  st->bias_epilogue = c_vec && !st->has_z;
  st->fill = (st->has_c && !st->bias_epilogue) || st->has_z;
  if (st->fill) {
    cuep::GemmFill& f = st->gf;
    f.rank = static_cast<int>(nb);
    for (size_t d = 0; d < nb; ++d) {
      f.batch[d] = batch[d];
      f.cstride[d] = st->has_c ? sc[d] : 0;
    }
    f.M = st->M;
    f.N = st->N;
    f.cm = st->has_c ? sc[nb] : 0;
    f.cn = st->has_c ? sc[nb + 1] : 0;
    f.beta = st->beta;
  }
  switch (st->act.kind) {
    case Activation::None: st->epilogue = st->bias_epilogue ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT; break;
    case Activation::Relu: st->epilogue = st->bias_epilogue ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU; break;
    case Activation::GeluTanh: st->epilogue = st->bias_epilogue ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU; break;
    default:
      st->epilogue = st->bias_epilogue ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
      st->post_act = true;
  }
  // Batch dims: size-1 dims dropped; the longest suffix whose strides merge becomes one strided batch.
  std::vector<int64_t> bd, bsa, bsb, bsd;
  for (size_t d = 0; d < nb; ++d)
    if (batch[d] != 1) {
      bd.push_back(batch[d]);
      bsa.push_back(sa[d]);
      bsb.push_back(sb[d]);
      bsd.push_back(sd[d]);
    }
  if (packed) {
    // only where the batch dims would loop on the host: pack whatever does not merge
    if (merges(bd, bsa) && merges(bd, bsb) && merges(bd, bsd)) return nullptr;
    if (!merges(bd, bsa)) st->pack_a = true, pack(st->pa, bd, bsa, st->ta ? st->K : st->M, st->ta ? st->M : st->K, st->a_off, st->lda);
    if (!merges(bd, bsb)) st->pack_b = true, pack(st->pb, bd, bsb, st->tb ? st->N : st->K, st->tb ? st->K : st->N, st->b_off, st->ldb);
    if (!merges(bd, bsd)) {
      if (st->fill) return nullptr;  // C and the residual are written into D before the product
      int64_t off = 0;
      st->pack_d = true, pack(st->pd, bd, bsd, st->M, st->N, off, st->ldd);
    }
    for (const cuep::BatchCopy* f : {&st->pa, &st->pb, &st->pd})
      if (f->rows * f->cols >= (int64_t{1} << 31)) return nullptr;  // batch_copy's index math is 32-bit within a matrix
  }
  size_t split = bd.size();
  if (split > 0) {
    --split;
    while (split > 0 && bsa[split - 1] == bsa[split] * bd[split] && bsb[split - 1] == bsb[split] * bd[split] && bsd[split - 1] == bsd[split] * bd[split])
      --split;
    st->inner = 1;
    for (size_t d = split; d < bd.size(); ++d) st->inner *= bd[d];
    st->inner_sa = bsa.back();
    st->inner_sb = bsb.back();
    st->inner_sd = bsd.back();
  }
  if (st->inner > INT32_MAX) return nullptr;
  st->outer.assign(bd.begin(), bd.begin() + split);
  st->outer_sa.assign(bsa.begin(), bsa.begin() + split);
  st->outer_sb.assign(bsb.begin(), bsb.begin() + split);
  st->outer_sd.assign(bsd.begin(), bsd.begin() + split);
  return st;
}

// Layouts and the heuristic's algorithms for the layer (col-major view: D is N x M).
int heuristics(const LayerInfo& L, LtState& st, cublasLtMatmulHeuristicResult_t* res, int want) {
  cudaDataType_t t = cuda_type(st.dt);
  int64_t M = st.M, N = st.N, K = st.K;
  KILN_CUDA_TRY_AT(L, cublasLtMatrixLayoutCreate(&st.la, t, st.tb ? K : N, st.tb ? N : K, st.ldb));
  KILN_CUDA_TRY_AT(L, cublasLtMatrixLayoutCreate(&st.lb, t, st.ta ? M : K, st.ta ? K : M, st.lda));
  KILN_CUDA_TRY_AT(L, cublasLtMatrixLayoutCreate(&st.ld, t, N, M, st.ldd));
  if (st.inner > 1) {
    int32_t count = static_cast<int32_t>(st.inner);
    for (auto [lay, stride] : {std::pair{st.la, st.inner_sb}, std::pair{st.lb, st.inner_sa}, std::pair{st.ld, st.inner_sd}}) {
      KILN_CUDA_TRY_AT(L, cublasLtMatrixLayoutSetAttribute(lay, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
      KILN_CUDA_TRY_AT(L, cublasLtMatrixLayoutSetAttribute(lay, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
    }
  }
  // Alignment the algorithms may assume: the tensors' own and that of every host-looped offset.
  size_t es = dtype_size(st.dt);
  auto align = [&](size_t a, const std::vector<int64_t>& strides) {
    for (int64_t s : strides)
      while (a > 1 && (static_cast<size_t>(s) * es) % a) a /= 2;
    return static_cast<uint32_t>(a);
  };
  std::vector<int64_t> dstr = st.outer_sd;
  dstr.insert(dstr.end(), {st.ldd, st.inner_sd});
  // kiln's B is cuBLASLt's A and the other way round; operand starts and leading dimensions count too
  std::vector<int64_t> sa_all = st.outer_sa, sb_all = st.outer_sb;
  sa_all.insert(sa_all.end(), {st.a_off, st.lda, st.inner_sa});
  sb_all.insert(sb_all.end(), {st.b_off, st.ldb, st.inner_sb});
  // (a packed operand lies in the workspace: 256-byte aligned)
  uint32_t aa = align(st.pack_b ? 256 : cu::alignment_of(*L.plan, L.in[1]), sb_all), ab = align(st.pack_a ? 256 : cu::alignment_of(*L.plan, L.in[0]), sa_all),
           ad = align(st.pack_d ? 256 : cu::alignment_of(*L.plan, L.out[0]), dstr);
  cu::LtPreference pref(L, kMaxWorkspace, aa, ab, ad);
  OpDesc od;
  make_desc(L, st, nullptr, od);  // the bias pointer is set per run; the heuristic does not read it
  int got = 0;
  cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(cu::lt_handle(), od.d, st.la, st.lb, st.ld, st.ld, pref.p, want, res, &got);
  if (s == CUBLAS_STATUS_NOT_SUPPORTED) return 0;
  KILN_CUDA_TRY_AT(L, s);
  return got;
}

class GemmLt : public cu::LibraryTactic<LtState> {
 public:
  GemmLt(int index, bool tf32, bool packed) : index_(index), tf32_(tf32), packed_(packed) {
    name_ = std::string("cuda.cublaslt.") + (tf32 ? "tf32." : "") + (packed ? "packed." : "") + "algo" + std::to_string(index);
  }
  const char* name() const override { return name_.c_str(); }
  bool reduced_precision(const LayerInfo&) const override { return tf32_; }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const LtState& st = *static_cast<LtState*>(s);
    cudaStream_t stream = static_cast<cudaStream_t>(ctx.stream);
    if (ctx.workspace_bytes < st.workspace) fail("INTERNAL", cu::where(L) + ": workspace too small for " + name_);
    if (st.fill) cuep::gemm_fill(L, st.dt, out[0].data, st.has_c ? in[2].data : nullptr, st.has_z ? in[3].data : nullptr, st.gf, stream);
    OpDesc od;
    make_desc(L, st, st.bias_epilogue ? in[2].data : nullptr, od);
    float beta = st.fill ? 1.f : 0.f;
    size_t es = dtype_size(st.dt);
    int64_t nouter = 1;
    for (int64_t d : st.outer) nouter *= d;
    auto* A = static_cast<const uint8_t*>(in[0].data);
    auto* B = static_cast<const uint8_t*>(in[1].data);
    auto* D = static_cast<uint8_t*>(out[0].data);
    auto* pack_at = static_cast<uint8_t*>(ctx.workspace) + align256(st.lt_workspace);
    if (st.pack_a) {
      cuep::batch_copy(L, st.dt, A, pack_at, st.pa, false, stream);
      A = pack_at, pack_at += st.pack_bytes(st.pa);
    }
    if (st.pack_b) {
      cuep::batch_copy(L, st.dt, B, pack_at, st.pb, false, stream);
      B = pack_at, pack_at += st.pack_bytes(st.pb);
    }
    if (st.pack_d) D = pack_at;
    cublasLtHandle_t h = cu::lt_handle();
    for (int64_t o = 0; o < nouter; ++o) {
      int64_t oa = 0, ob = 0, odd = 0, rem = o;
      for (size_t d = st.outer.size(); d-- > 0;) {
        int64_t i = rem % st.outer[d];
        rem /= st.outer[d];
        oa += i * st.outer_sa[d];
        ob += i * st.outer_sb[d];
        odd += i * st.outer_sd[d];
      }
      uint8_t* Dp = D + static_cast<size_t>(odd) * es;
      KILN_CUDA_TRY_AT(L, cublasLtMatmul(h, od.d, &st.alpha, B + (ob + st.b_off) * es, st.la, A + (oa + st.a_off) * es, st.lb, &beta, Dp, st.ld, Dp, st.ld, &st.algo,
                                         ctx.workspace, st.lt_workspace, stream));
    }
    if (st.pack_d) cuep::batch_copy(L, st.dt, D, out[0].data, st.pd, true, stream);
    if (st.post_act) cuep::bias_act(L, st.dt, out[0].data, nullptr, nullptr, out[0].numel(), 1, 1, st.act, stream);
  }

 private:
  std::string why() const override { return "cuBLASLt offers no such algorithm"; }
  std::unique_ptr<LtState> make(const LayerInfo& L) const override {
    auto st = analyze(L, tf32_, packed_);
    if (!st) return nullptr;
    cublasLtMatmulHeuristicResult_t res[kAlgos] = {};
    int got = heuristics(L, *st, res, kAlgos);
    if (got <= index_ || res[index_].state != CUBLAS_STATUS_SUCCESS) return nullptr;
    st->algo = res[index_].algo;
    st->lt_workspace = res[index_].workspaceSize;
    st->workspace = st->lt_workspace;
    if (st->pack_a || st->pack_b || st->pack_d) {
      st->workspace = align256(st->lt_workspace);
      for (auto [on, f] : {std::pair{st->pack_a, &st->pa}, std::pair{st->pack_b, &st->pb}, std::pair{st->pack_d, &st->pd}})
        if (on) st->workspace += st->pack_bytes(*f);
    }
    return st;
  }
  int index_;
  bool tf32_, packed_;
  std::string name_;
};

struct RegisterAll {
  RegisterAll() {
    for (bool tf32 : {false, true})
      for (int i = 0; i < kAlgos; ++i) register_tactic("cuda", "Gemm", std::make_unique<GemmLt>(i, tf32, false));
    for (bool tf32 : {false, true})
      for (int i = 0; i < kPackedAlgos; ++i) register_tactic("cuda", "Gemm", std::make_unique<GemmLt>(i, tf32, true));
  }
} register_all;

}  // namespace
}  // namespace kiln

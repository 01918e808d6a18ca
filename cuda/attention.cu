// Scaled dot-product attention for the "cuda" backend: kind 'Attention', matching native/cpu/attention.cc:
//   out[b,h,s,:] = softmax_j(scale · Σ_d Q[b,h,s,d]·K[b,h,j,d] + mask[b,h,s,j]) · V[b,h,j,:]
// Q, K, V, the mask and the output are read and written through the layer's element strides over
// (b, h, position, d), so the transposes around attention cost nothing. Two families:
//
// cuda.attention.warp — one warp per query row
// (grid-stride over the B·H·S rows, up to 4 warps a block): the row of Q is staged in shared memory,
// each lane scores keys j ≡ lane (mod 32) into the warp's shared score row, the softmax is
// max-subtracted as on the CPU (warp-shuffle max and sum), and each lane accumulates ⌈Dv/32⌉ output
// columns over the T weights. The score matrix is never stored in global memory; the warp's shared
// memory holds T + D floats, so can_implement() refuses T + D over kMaxRow (and D or Dv over 256)
// rather than failing at run. float32, and float16 (computed in float) when every tensor is float16.
//
// cuda.attention.mma (64 queries a block: 4 warps of 16 rows) and cuda.attention.mma.split (16 queries
// a block: 4 warps share the rows and split each tile's keys, merging their partial softmax at the end —
// 4× the warps for short sequences, where one warp per 16 rows leaves most of the chip idle: BERT-base
// batch 1 has 96 such warps for 528 schedulers) — tensor cores, flash-attention style, float16 Q/K/V/
// mask/output with float32 accumulation. A block owns one (b·h, query tile); each warp 16 query rows,
// whose Q fragments are loaded from global memory into registers once. Key tiles of 64 are staged in shared memory (K row-major, V
// transposed, both padded by 8 halves so the fragment loads hit 32 distinct banks; zero outside T and
// D; every global load of a tile issued at once, and for D up to 64 the next tile loaded into
// registers while this one is computed), S = Q·Kᵀ is 16×64 per warp (mma.sync m16n8k16, f32 accumulators), scaled, masked (the mask read
// through its broadcast strides) and folded into a running max and sum (online softmax in base 2); the
// exponentials, rounded to float16, are the A operand of O += P·V straight from the accumulator
// registers (the m16n8 C layout of two adjacent key octets is the m16k16 A layout). D and Dv up to 128,
// padded to 32/64/96/128 (a template each); any S and T. Loads from global memory are 16-byte vectors
// when the tensor is contiguous along d with 8-aligned strides and base, else element by element.
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
  return "";
}

// build() and the limits of the warp kernel.
std::string build_warp(const LayerInfo& L, State& st) {
  std::string why = build(L, st);
  if (!why.empty()) return why;
  const Params& p = st.p;
  if (p.D > kMaxD || p.Dv > kMaxD) return "D and Dv must be at most " + std::to_string(kMaxD);
  if (p.T + p.D > kMaxRow) return "T + D over " + std::to_string(kMaxRow) + " (a warp's scores must fit in shared memory)";
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
    return build_warp(L, st).empty();
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = std::make_unique<State>();
    std::string why = build_warp(L, *st);
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


// ---- cuda.attention.mma -------------------------------------------------------------------------
constexpr int kMmaMaxD = 128;
constexpr int kKeyTile = 64;  // keys per shared-memory tile
constexpr float kLog2e = 1.4426950408889634f;

// build() and the limits of the tensor-core kernel: float16 only, D and Dv up to 128, T >= 1, B·H a
// grid dimension.
std::string build_mma(const LayerInfo& L, State& st) {
  std::string why = build(L, st);
  if (!why.empty()) return why;
  const Params& p = st.p;
  if (L.out[0]->dtype != DType::F16) return "tensor-core attention takes float16 tensors";
  if (p.D > kMmaMaxD || p.Dv > kMmaMaxD) return "D and Dv must be at most " + std::to_string(kMmaMaxD);
  if (p.T < 1) return "no keys (T = 0)";
  if (p.S > INT32_MAX || p.T > INT32_MAX) return "S or T over 2^31 - 1";
  if (p.B * p.H > 65535) return "B·H over 65535 (a grid dimension)";
  return "";
}

// The padded head size: 32, 64, 96 or 128.
inline int padded_d(const Params& p) { return static_cast<int>((std::max<int64_t>({p.D, p.Dv, 1}) + 31) / 32 * 32); }

__device__ __forceinline__ uint32_t ld_pair(const __half* p) { return *reinterpret_cast<const uint32_t*>(p); }
__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
  __half2 h = __floats2half2_rn(lo, hi);  // lo in the low 16 bits: the lower column
  return *reinterpret_cast<uint32_t*>(&h);
}

// c += a · b for one m16n8k16 tile: a 16×16 row-major (4 f16x2 registers: rows g / g+8, columns 2t,2t+1
// and +8), b 16×8 column-major (2 registers: rows 2t,2t+1 and +8 of column g), c 16×8 float (rows g and
// g+8, columns 2t, 2t+1), with g = lane / 4, t = lane % 4.
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// A ROWS × DP window of a strided source (row r, column c at src[r·rs + c·cs]), zero outside
// rows_valid × cols_valid, carried through registers into shared memory at dst[r·ldr + c·ldc]: load()
// issues every global load of the thread at once (one memory latency per tile, and a tile can be in
// flight while the previous one is computed), store() writes them. `vec`: cs == 1 and every row start
// 16-byte aligned, so whole 8-column chunks load as one 16-byte vector. ROW_FAST: consecutive threads
// take consecutive rows of one chunk (for the transposed store, where it avoids bank conflicts); else
// consecutive chunks of one row (coalesced reads).
// Columns c0 … c0 + 7 of row r element by element, zero outside rows_valid × cols_valid: the edges and
// strided layouts, kept out of line so the unrolled fast path stays small (the instruction cache).
__device__ __noinline__ uint4 load_chunk_slow(const __half* src, int64_t rs, int64_t cs, int r, int c0, int rows_valid, int cols_valid) {
  union {
    uint4 u;
    __half h[8];
  } c;
  for (int e = 0; e < 8; ++e) c.h[e] = r < rows_valid && c0 + e < cols_valid ? src[r * rs + (c0 + e) * cs] : __float2half(0.f);
  return c.u;
}

template <int DP, int ROWS, int NT, bool ROW_FAST>
struct Tile {
  static constexpr int kChunks = DP / 8, kIter = ROWS * kChunks / NT;
  static_assert(ROWS * kChunks % NT == 0, "whole chunks per thread");
  // Chunks held in registers at once (16 registers); a tile of more takes kPasses load/store passes.
  static constexpr int kHeld = kIter < 4 ? kIter : 4, kPasses = (kIter + kHeld - 1) / kHeld;
  union Chunk {
    uint4 u;
    __half h[8];
  };
  Chunk c[kHeld];
  __device__ __forceinline__ static int row(int it) {
    const int i = threadIdx.x + it * NT;
    return ROW_FAST ? i % ROWS : i / kChunks;
  }
  __device__ __forceinline__ static int col(int it) {
    const int i = threadIdx.x + it * NT;
    return 8 * (ROW_FAST ? i / ROWS : i % kChunks);
  }
  __device__ __forceinline__ void load(int pass, const __half* src, int64_t rs, int64_t cs, int rows_valid, int cols_valid, bool vec) {
#pragma unroll
    for (int k = 0; k < kHeld; ++k) {
      const int it = pass * kHeld + k;
      if (it >= kIter) break;
      const int r = row(it), c0 = col(it);
      if (r < rows_valid && vec && c0 + 8 <= cols_valid) c[k].u = __ldg(reinterpret_cast<const uint4*>(src + r * rs + c0));
      else c[k].u = load_chunk_slow(src, rs, cs, r, c0, rows_valid, cols_valid);
    }
  }
  __device__ __forceinline__ void store(int pass, __half* dst, int ldr, int ldc) const {
#pragma unroll
    for (int k = 0; k < kHeld; ++k) {
      const int it = pass * kHeld + k;
      if (it >= kIter) break;
      const int r = row(it), c0 = col(it);
      if (ldc == 1) {
        *reinterpret_cast<uint4*>(dst + r * ldr + c0) = c[k].u;
      } else {
#pragma unroll
        for (int e = 0; e < 8; ++e) dst[r * ldr + (c0 + e) * ldc] = c[k].h[e];
      }
    }
  }
};

// Columns col, col + 1 of a row of Q (element stride cs) as one f16x2 register, zero past D or for a
// row past S. `vec2`: cs == 1 and every row start 4-byte aligned.
__device__ __forceinline__ uint32_t q_pair(const __half* q, bool row_ok, int col, int D, int64_t cs, bool vec2) {
  if (!row_ok) return 0u;
  if (vec2 && col + 1 < D) return __ldg(reinterpret_cast<const unsigned int*>(q + col));
  __half2 h = __halves2half2(col < D ? q[col * cs] : __float2half(0.f), col + 1 < D ? q[(col + 1) * cs] : __float2half(0.f));
  return *reinterpret_cast<uint32_t*>(&h);
}

// vec: bit 0, Q rows load as f16x2 pairs; bits 1 and 2, K and V rows as 16-byte vectors.
// QW query warps × KW key warps: warp (qw, kw) owns query rows 16·qw … + 15 of the block's 16·QW and
// keys kw·BN … + BN − 1 of every staged tile of KW·BN keys; with KW > 1 the warps of a row group merge
// their running max, sum and output through shared memory at the end (more warps for few rows).
template <int DP, int QW, int KW>
__global__ void __launch_bounds__(QW * KW * 32) attention_mma_kernel(Params p, unsigned vec) {
  constexpr int NT = QW * KW * 32;
  constexpr int BNB = KW == 1 ? kKeyTile : DP <= 64 ? 128 : 64;  // keys staged per tile (shared memory)
  constexpr int BN = BNB / KW;                                    // keys per warp and tile
  static_assert(BN % 16 == 0, "key steps of 16");
  constexpr int LD = DP + 8, LDV = BNB + 8;
  using KTile = Tile<DP, BNB, NT, false>;
  using VTile = Tile<DP, BNB, NT, true>;
  // The next tile is prefetched into registers while this one is computed when one pass holds it.
  static_assert(KTile::kPasses == VTile::kPasses, "K and V tiles stage in the same passes");
  constexpr bool kPrefetch = KTile::kPasses == 1;
  constexpr int kStageBytes = (BNB * LD + DP * LDV) * 2;
  constexpr int kMergeBytes = KW > 1 ? QW * KW * 32 * (4 + DP / 2) * 4 : 0;  // per lane: m, l (2 each), o
  __shared__ __align__(16) unsigned char smem[kStageBytes > kMergeBytes ? kStageBytes : kMergeBytes];
  __half* sK = reinterpret_cast<__half*>(smem);  // K tile [key][d]
  __half* sV = sK + BNB * LD;                    // V tile transposed: [d][key]
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int qw = w / KW, kw = w % KW;
  const int64_t b = blockIdx.y / p.H, h = blockIdx.y % p.H;
  const int S = static_cast<int>(p.S), T = static_cast<int>(p.T), D = static_cast<int>(p.D), Dv = static_cast<int>(p.Dv);
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * (16 * QW) + 16 * qw + g;
  const int64_t row[2] = {r0, r0 + 8};

  const __half* Kb = static_cast<const __half*>(p.k) + b * p.ks[0] + h * p.ks[1];
  const __half* Vb = static_cast<const __half*>(p.v) + b * p.vs[0] + h * p.vs[1];
  KTile kt;
  VTile vt;
  if (kPrefetch) {
    kt.load(0, Kb, p.ks[2], p.ks[3], min(BNB, T), D, vec & 2);
    vt.load(0, Vb, p.vs[2], p.vs[3], min(BNB, T), Dv, vec & 4);
  }

  // This warp's 16 query rows as A fragments, straight from global memory (rows g and g + 8 of the
  // warp's 16, columns 2t, 2t + 1 and + 8 of each 16-column step).
  const __half* Q = static_cast<const __half*>(p.q) + b * p.qs[0] + h * p.qs[1];
  const __half* q0 = Q + (row[0] < S ? row[0] : 0) * p.qs[2];
  const __half* q1 = Q + (row[1] < S ? row[1] : 0) * p.qs[2];
  uint32_t qa[DP / 16][4];
#pragma unroll
  for (int kk = 0; kk < DP / 16; ++kk) {
    const int c = 16 * kk + 2 * t;
    qa[kk][0] = q_pair(q0, row[0] < S, c, D, p.qs[3], vec & 1);
    qa[kk][1] = q_pair(q1, row[1] < S, c, D, p.qs[3], vec & 1);
    qa[kk][2] = q_pair(q0, row[0] < S, c + 8, D, p.qs[3], vec & 1);
    qa[kk][3] = q_pair(q1, row[1] < S, c + 8, D, p.qs[3], vec & 1);
  }
  float o[DP / 8][4];
#pragma unroll
  for (int n = 0; n < DP / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const float sl2 = p.scale * kLog2e;
  const __half* M = p.m ? static_cast<const __half*>(p.m) + b * p.ms[0] + h * p.ms[1] : nullptr;
  const __half* Mr[2] = {M && row[0] < S ? M + row[0] * p.ms[2] : nullptr, M && row[1] < S ? M + row[1] * p.ms[2] : nullptr};

#pragma unroll 1
  for (int j0 = 0; j0 < T; j0 += BNB) {
    if (j0 > 0) __syncthreads();  // every warp is done with the previous tile
    if (kPrefetch) {
      kt.store(0, sK, LD, 1);
      vt.store(0, sV, 1, LDV);
    } else {
      const int keys = min(BNB, T - j0);
#pragma unroll
      for (int pass = 0; pass < KTile::kPasses; ++pass) {
        kt.load(pass, Kb + j0 * p.ks[2], p.ks[2], p.ks[3], keys, D, vec & 2);
        vt.load(pass, Vb + j0 * p.vs[2], p.vs[2], p.vs[3], keys, Dv, vec & 4);
        kt.store(pass, sK, LD, 1);
        vt.store(pass, sV, 1, LDV);
      }
    }
    __syncthreads();
    if (kPrefetch && j0 + BNB < T) {
      const int jn = j0 + BNB, kn = min(BNB, T - jn);
      kt.load(0, Kb + jn * p.ks[2], p.ks[2], p.ks[3], kn, D, vec & 2);
      vt.load(0, Vb + jn * p.vs[2], p.vs[2], p.vs[3], kn, Dv, vec & 4);
    }
    const int jw = j0 + kw * BN;  // this warp's first key
    const int keys = min(BN, T - jw);
    if (keys <= 0) continue;  // warp-uniform: nothing of this tile for this warp
    const __half* sKw = sK + kw * BN * LD;
    const __half* sVw = sV + kw * BN;

    // S = Q·Kᵀ: 16 rows × BN keys per warp, key octet n in s[n]
    float s[BN / 8][4];
#pragma unroll
    for (int n = 0; n < BN / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < DP / 16; ++kk) {
#pragma unroll
      for (int n = 0; n < BN / 8; ++n) {
        const __half* kb = sKw + (8 * n + g) * LD + 16 * kk + 2 * t;
        mma16816(s[n], qa[kk], ld_pair(kb), ld_pair(kb + 8));
      }
    }
    // scale and mask in base 2; keys past T are -inf
    float tmax[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < BN / 8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e >> 1, j = 8 * n + 2 * t + (e & 1);
        float x = -INFINITY;
        if (j < keys) {
          x = s[n][e] * sl2;
          if (Mr[r]) x += __half2float(Mr[r][(jw + j) * p.ms[3]]) * kLog2e;
        }
        s[n][e] = x;
        tmax[r] = fmaxf(tmax[r], x);
      }
    }
    float base[2], alpha[2], rsum[2] = {0.f, 0.f};
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      // a row's scores are spread over the 4 threads of its quad
      tmax[r] = fmaxf(tmax[r], __shfl_xor_sync(0xffffffffu, tmax[r], 1));
      tmax[r] = fmaxf(tmax[r], __shfl_xor_sync(0xffffffffu, tmax[r], 2));
      const float mn = fmaxf(m[r], tmax[r]);
      base[r] = mn == -INFINITY ? 0.f : mn;  // all -inf so far: exp2(-inf - 0) = 0, not NaN
      alpha[r] = exp2f(m[r] - base[r]);
      m[r] = mn;
    }
#pragma unroll
    for (int n = 0; n < BN / 8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[n][e] = exp2f(s[n][e] - base[e >> 1]);
        rsum[e >> 1] += s[n][e];
      }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      rsum[r] += __shfl_xor_sync(0xffffffffu, rsum[r], 1);
      rsum[r] += __shfl_xor_sync(0xffffffffu, rsum[r], 2);
      l[r] = l[r] * alpha[r] + rsum[r];
    }
#pragma unroll
    for (int n = 0; n < DP / 8; ++n) {
      o[n][0] *= alpha[0], o[n][1] *= alpha[0];
      o[n][2] *= alpha[1], o[n][3] *= alpha[1];
    }
    // O += P·V: key octets 2kk and 2kk+1 of the accumulators are the A fragment of key step kk
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      const uint32_t pa[4] = {pack_half2(s[2 * kk][0], s[2 * kk][1]), pack_half2(s[2 * kk][2], s[2 * kk][3]),
                              pack_half2(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack_half2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int n = 0; n < DP / 8; ++n) {
        const __half* vb = sVw + (8 * n + g) * LDV + 16 * kk + 2 * t;
        mma16816(o[n], pa, ld_pair(vb), ld_pair(vb + 8));
      }
    }
  }
  if (KW > 1) {
    // Merge the KW partial results of each row group into warp kw = 0: per lane m, l (rows g, g + 8)
    // and the o fragments, laid out lane-fastest (conflict-free).
    constexpr int kPer = 4 + DP / 2;
    float* mg = reinterpret_cast<float*>(smem);
    __syncthreads();  // the tiles are no longer read
    if (kw > 0) {
      float* dst = mg + static_cast<int64_t>(w) * 32 * kPer + lane;
      dst[0] = m[0], dst[32] = m[1], dst[64] = l[0], dst[96] = l[1];
#pragma unroll
      for (int n = 0; n < DP / 8; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) dst[(4 + 4 * n + e) * 32] = o[n][e];
    }
    __syncthreads();
    if (kw > 0) return;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = m[r];
      for (int k = 1; k < KW; ++k) mx = fmaxf(mx, mg[(static_cast<int64_t>(w + k) * 32 * kPer) + r * 32 + lane]);
      const float base = mx == -INFINITY ? 0.f : mx;
      const float a0 = exp2f(m[r] - base);
      l[r] *= a0;
#pragma unroll
      for (int n = 0; n < DP / 8; ++n) o[n][2 * r] *= a0, o[n][2 * r + 1] *= a0;
      for (int k = 1; k < KW; ++k) {
        const float* src = mg + static_cast<int64_t>(w + k) * 32 * kPer + lane;
        const float ak = exp2f(src[r * 32] - base);
        l[r] += ak * src[(2 + r) * 32];
#pragma unroll
        for (int n = 0; n < DP / 8; ++n) {
          o[n][2 * r] += ak * src[(4 + 4 * n + 2 * r) * 32];
          o[n][2 * r + 1] += ak * src[(4 + 4 * n + 2 * r + 1) * 32];
        }
      }
    }
  }
  __half* O = static_cast<__half*>(p.o) + b * p.os[0] + h * p.os[1];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (row[r] >= S) continue;
    const float inv = 1.f / l[r];
#pragma unroll
    for (int n = 0; n < DP / 8; ++n)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int d = 8 * n + 2 * t + e;
        if (d < Dv) O[row[r] * p.os[2] + d * p.os[3]] = __float2half_rn(o[n][2 * r + e] * inv);
      }
  }
}

template <int QW, int KW>
void launch_mma(const Params& p, int dp, unsigned vec, cudaStream_t stream) {
  dim3 grid(static_cast<unsigned>((p.S + 16 * QW - 1) / (16 * QW)), static_cast<unsigned>(p.B * p.H));
  constexpr int nt = QW * KW * 32;
  switch (dp) {
    case 32: attention_mma_kernel<32, QW, KW><<<grid, nt, 0, stream>>>(p, vec); break;
    case 64: attention_mma_kernel<64, QW, KW><<<grid, nt, 0, stream>>>(p, vec); break;
    case 96: attention_mma_kernel<96, QW, KW><<<grid, nt, 0, stream>>>(p, vec); break;
    default: attention_mma_kernel<128, QW, KW><<<grid, nt, 0, stream>>>(p, vec); break;
  }
}

// True when rows of tensor x (element strides s over b, h, position, d; d extent n) load as 16-byte
// vectors: contiguous along d, every row start a multiple of 8 elements, the base 16-byte aligned.
inline bool vec16(const void* x, const int64_t (&s)[4]) {
  return s[3] == 1 && s[0] % 8 == 0 && s[1] % 8 == 0 && s[2] % 8 == 0 && aligned(x, 16);
}

template <int QW, int KW>
class AttentionMmaCuda : public Tactic {
 public:
  const char* name() const override { return KW == 1 ? "cuda.attention.mma" : "cuda.attention.mma.split"; }
  bool can_implement(const LayerInfo& L) const override {
    State st;
    return build_mma(L, st).empty();
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = std::make_unique<State>();
    std::string why = build_mma(L, *st);
    if (!why.empty()) fail("INVALID_ENGINE", where(L) + ": " + why);
    return st;
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const State& st = *static_cast<State*>(s);
    Params p = st.p;
    if (p.B * p.H * p.S == 0 || p.Dv == 0) return;
    p.q = in[0].data, p.k = in[1].data, p.v = in[2].data;
    p.m = st.mask ? in[3].data : nullptr;
    p.o = out[0].data;
    const bool q2 = p.qs[3] == 1 && p.qs[0] % 2 == 0 && p.qs[1] % 2 == 0 && p.qs[2] % 2 == 0 && aligned(p.q, 4);
    unsigned vec = (q2 ? 1u : 0u) | (vec16(p.k, p.ks) ? 2u : 0u) | (vec16(p.v, p.vs) ? 4u : 0u);
    launch_mma<QW, KW>(p, padded_d(p), vec, stream_of(ctx));
    check_launch(L, name());
  }
};

}  // namespace
}  // namespace cuk
KILN_REGISTER_TACTIC("cuda", "Attention", cuk::AttentionCuda);
KILN_REGISTER_TACTIC_EXPR("cuda", "Attention", (std::make_unique<cuk::AttentionMmaCuda<4, 1>>()));
KILN_REGISTER_TACTIC_EXPR("cuda", "Attention", (std::make_unique<cuk::AttentionMmaCuda<1, 4>>()));
}  // namespace kiln

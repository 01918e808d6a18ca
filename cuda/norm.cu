// Normalizations for the "cuda" backend, matching native/cpu/norm.cc. float32 and float16 (float16
// computed in float, statistics accumulated in double as the CPU does). Variants:
// - 'Normalize' (cuda.normalize): one block per group of the view; modes meanvar (eps inside or
//   outside the root), rms, l1, l2; scale and bias broadcast in the view's rank; optional outputs
//   mean and 1/σ per group. Kept and reduced dims of up to 8 each. LayerNorm's common case — meanvar
//   or rms over one contiguous dim of at most 2048 — takes a row kernel instead: one warp per row,
//   the row read once into registers (coalesced), mean and centred variance by warp shuffles in
//   float, no shared memory or block barriers.
// - 'BatchNorm' (cuda.batchnorm): inference batch normalization, channel axis 1, one thread per
//   element; scale, B, mean and var of X's type or float32.
// - 'LRN' (cuda.lrn): local response normalization across channels, one thread per element.
#include "kern.cuh"

namespace kiln {
namespace cuk {
namespace {

enum class Mode { MeanVar, Rms, L1, L2 };

struct NParams {
  int mode;
  bool eps_outside;
  double eps;
  int nk, nr;
  int64_t kdim[kMaxRank], kx[kMaxRank], ks[kMaxRank], kb[kMaxRank];
  int64_t rdim[kMaxRank], rx[kMaxRank], rs[kMaxRank], rb[kMaxRank];
  int64_t groups, gsize;
  bool stats_half;  // the mean / 1/σ outputs are float16 (else float32)
};

bool make_params(const LayerInfo& L, NParams& p) {
  const std::string& m = L.op->s("mode");
  p.mode = m == "meanvar" ? 0 : m == "rms" ? 1 : m == "l1" ? 2 : m == "l2" ? 3 : -1;
  if (p.mode < 0) return false;
  DType t = L.in[0]->dtype;
  if (t != DType::F32 && t != DType::F16) return false;
  p.eps = L.op->f("epsilon");
  p.eps_outside = L.op->i("eps_outside", 0) != 0;
  Shape view = L.op->ints("view");
  if (numel(view) != L.in[0]->numel()) return false;
  const auto& sshape = L.op->ints("scale_shape");
  const auto& bshape = L.op->ints("bias_shape");
  bool has_s = L.in.size() > 1 && L.in[1] && !sshape.empty(), has_b = L.in.size() > 2 && L.in[2] && !bshape.empty();
  if ((has_s && (L.in[1]->dtype != t || sshape.size() != view.size() || numel(sshape) != L.in[1]->numel())) ||
      (has_b && (L.in[2]->dtype != t || bshape.size() != view.size() || numel(bshape) != L.in[2]->numel())))
    return false;
  std::vector<int64_t> xs(view.size()), ss(view.size(), 0), bs(view.size(), 0);
  int64_t acc = 1;
  for (int d = static_cast<int>(view.size()) - 1; d >= 0; --d) xs[d] = acc, acc *= view[d];
  if (has_s) ss = bcast_strides(sshape, view);
  if (has_b) bs = bcast_strides(bshape, view);
  std::vector<bool> red(view.size(), false);
  for (int64_t a : L.op->ints("axes")) {
    if (a < 0 || a >= static_cast<int64_t>(view.size())) return false;
    red[a] = true;
  }
  p.nk = p.nr = 0;
  p.groups = p.gsize = 1;
  for (size_t k = 0; k < view.size(); ++k) {
    if (view[k] == 1) continue;
    if (red[k]) {
      if (p.nr == kMaxRank) return false;
      p.rdim[p.nr] = view[k], p.rx[p.nr] = xs[k], p.rs[p.nr] = ss[k], p.rb[p.nr] = bs[k], ++p.nr;
      p.gsize *= view[k];
    } else {
      if (p.nk == kMaxRank) return false;
      p.kdim[p.nk] = view[k], p.kx[p.nk] = xs[k], p.ks[p.nk] = ss[k], p.kb[p.nk] = bs[k], ++p.nk;
      p.groups *= view[k];
    }
  }
  for (size_t k = 1; k < 3; ++k)
    if (L.out.size() > k && L.out[k] && L.out[k]->dtype != DType::F32 && L.out[k]->dtype != DType::F16) return false;
  p.stats_half = L.out.size() > 1 && L.out[1] && L.out[1]->dtype == DType::F16;
  return true;
}

struct DSum {
  __device__ double operator()(double a, double b) const { return a + b; }
};

template <typename T>
__global__ void normalize_kernel(const T* __restrict__ x, const T* __restrict__ sc, const T* __restrict__ bi, T* __restrict__ y,
                                 void* mean_out, void* inv_out, NParams p) {
  __shared__ double sm[32];
  for (int64_t g = blockIdx.x; g < p.groups; g += gridDim.x) {
    int64_t xo = 0, so = 0, bo = 0, t = g;
    for (int k = p.nk - 1; k >= 0; --k) {
      int64_t i = t % p.kdim[k];
      t /= p.kdim[k];
      xo += i * p.kx[k], so += i * p.ks[k], bo += i * p.kb[k];
    }
    auto xat = [&](int64_t e) { return static_cast<double>(ld(x[xo + decompose(e, p.nr, p.rdim, p.rx)])); };
    double n = static_cast<double>(p.gsize), mean = 0, inv = 1;
    if (p.mode == 0) {
      double s = 0;
      for (int64_t e = threadIdx.x; e < p.gsize; e += blockDim.x) s += xat(e);
      mean = block_reduce(s, DSum{}, sm) / n;
      double s2 = 0;
      for (int64_t e = threadIdx.x; e < p.gsize; e += blockDim.x) {
        double d = xat(e) - mean;
        s2 += d * d;
      }
      double var = block_reduce(s2, DSum{}, sm) / n;
      inv = p.eps_outside ? 1.0 / (sqrt(var) + p.eps) : 1.0 / sqrt(var + p.eps);
    } else if (p.mode == 1 || p.mode == 3) {
      double s2 = 0;
      for (int64_t e = threadIdx.x; e < p.gsize; e += blockDim.x) {
        double v = xat(e);
        s2 += v * v;
      }
      s2 = block_reduce(s2, DSum{}, sm);
      inv = p.mode == 1 ? 1.0 / sqrt(s2 / n + p.eps) : s2 > 0 ? 1.0 / sqrt(s2) : 0.0;
    } else {
      double s1 = 0;
      for (int64_t e = threadIdx.x; e < p.gsize; e += blockDim.x) s1 += fabs(xat(e));
      s1 = block_reduce(s1, DSum{}, sm);
      inv = s1 > 0 ? 1.0 / s1 : 0.0;
    }
    float fm = static_cast<float>(mean), fi = static_cast<float>(inv);
    for (int64_t e = threadIdx.x; e < p.gsize; e += blockDim.x) {
      int64_t a = xo, b = so, c = bo, r = e;
      for (int d = p.nr - 1; d >= 0; --d) {
        int64_t i = r % p.rdim[d];
        r /= p.rdim[d];
        a += i * p.rx[d], b += i * p.rs[d], c += i * p.rb[d];
      }
      float v = (ld(x[a]) - fm) * fi;
      if (sc) v *= ld(sc[b]);
      if (bi) v += ld(bi[c]);
      st(y[a], v);
    }
    if (threadIdx.x == 0) {
      if (p.stats_half) {
        if (mean_out) static_cast<__half*>(mean_out)[g] = __float2half_rn(fm);
        if (inv_out) static_cast<__half*>(inv_out)[g] = __float2half_rn(fi);
      } else {
        if (mean_out) static_cast<float*>(mean_out)[g] = fm;
        if (inv_out) static_cast<float*>(inv_out)[g] = fi;
      }
    }
  }
}

// The row kernel's limit: values per lane.
constexpr int kRowWarps = 4;
inline int row_vpl(const NParams& p) {
  if (p.nr != 1 || p.rx[0] != 1 || (p.mode != 0 && p.mode != 1)) return 0;
  return p.gsize <= 256 ? 8 : p.gsize <= 1024 ? 32 : p.gsize <= 2048 ? 64 : 0;
}

__device__ __forceinline__ float warp_allsum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// One warp per group whose reduced elements are one contiguous run of gsize <= 32·VPL: lane l holds
// elements l, l + 32, …, so every load and store of the warp is coalesced.
template <typename T, int VPL>
__global__ void __launch_bounds__(kRowWarps * 32) normalize_rows_kernel(const T* __restrict__ x, const T* __restrict__ sc, const T* __restrict__ bi,
                                                                        T* __restrict__ y, void* mean_out, void* inv_out, NParams p) {
  const int lane = threadIdx.x & 31;
  const int64_t n = p.gsize, rs = p.rs[0], rb = p.rb[0];
  for (int64_t g = static_cast<int64_t>(blockIdx.x) * kRowWarps + (threadIdx.x >> 5); g < p.groups; g += static_cast<int64_t>(gridDim.x) * kRowWarps) {
    int64_t xo = 0, so = 0, bo = 0, t = g;
    for (int k = p.nk - 1; k >= 0; --k) {
      int64_t i = t % p.kdim[k];
      t /= p.kdim[k];
      xo += i * p.kx[k], so += i * p.ks[k], bo += i * p.kb[k];
    }
    float v[VPL];
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < VPL; ++i) {
      const int64_t e = lane + 32 * i;
      v[i] = e < n ? static_cast<float>(ld(x[xo + e])) : 0.f;
      s += v[i];
    }
    const float mean = p.mode == 0 ? warp_allsum(s) / static_cast<float>(n) : 0.f;
    float s2 = 0.f;
#pragma unroll
    for (int i = 0; i < VPL; ++i) {
      const float d = lane + 32 * i < n ? v[i] - mean : 0.f;
      s2 += d * d;
    }
    const float ms = warp_allsum(s2) / static_cast<float>(n), eps = static_cast<float>(p.eps);
    const float inv = p.mode == 0 && p.eps_outside ? 1.f / (sqrtf(ms) + eps) : 1.f / sqrtf(ms + eps);
#pragma unroll
    for (int i = 0; i < VPL; ++i) {
      const int64_t e = lane + 32 * i;
      if (e >= n) break;
      float o = (v[i] - mean) * inv;
      if (sc) o *= static_cast<float>(ld(sc[so + e * rs]));
      if (bi) o += static_cast<float>(ld(bi[bo + e * rb]));
      st(y[xo + e], o);
    }
    if (lane == 0) {
      if (p.stats_half) {
        if (mean_out) static_cast<__half*>(mean_out)[g] = __float2half_rn(mean);
        if (inv_out) static_cast<__half*>(inv_out)[g] = __float2half_rn(inv);
      } else {
        if (mean_out) static_cast<float*>(mean_out)[g] = mean;
        if (inv_out) static_cast<float*>(inv_out)[g] = inv;
      }
    }
  }
}

class NormalizeCuda : public Tactic {
 public:
  const char* name() const override { return "cuda.normalize"; }
  bool can_implement(const LayerInfo& L) const override {
    NParams p;
    return make_params(L, p);
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override { return nullptr; }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    NParams p;
    if (!make_params(L, p)) fail("INTERNAL", where(L) + ": cuda.normalize cannot run this layer");
    if (p.groups == 0) return;
    const auto& sshape = L.op->ints("scale_shape");
    const auto& bshape = L.op->ints("bias_shape");
    bool has_s = L.in.size() > 1 && L.in[1] && !sshape.empty(), has_b = L.in.size() > 2 && L.in[2] && !bshape.empty();
    void* mo = L.out.size() > 1 && L.out[1] ? out[1].data : nullptr;
    void* io = L.out.size() > 2 && L.out[2] ? out[2].data : nullptr;
    if (p.gsize == 0) {
      if (mo || io) fail("UNSUPPORTED", where(L) + ": statistics of empty groups");
      return;
    }
    unsigned blocks = static_cast<unsigned>(p.groups < 65535 * 16 ? p.groups : 65535 * 16);
    const int vpl = row_vpl(p);
    cudaStream_t stream = stream_of(ctx);
    dispatch_float(in[0].dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* sc = has_s ? in[1].as<T>() : nullptr;
      const T* bi = has_b ? in[2].as<T>() : nullptr;
      unsigned row_blocks = grid_for(p.groups * 32, kRowWarps * 32);
      if (vpl == 8) normalize_rows_kernel<T, 8><<<row_blocks, kRowWarps * 32, 0, stream>>>(in[0].as<T>(), sc, bi, out[0].as<T>(), mo, io, p);
      else if (vpl == 32) normalize_rows_kernel<T, 32><<<row_blocks, kRowWarps * 32, 0, stream>>>(in[0].as<T>(), sc, bi, out[0].as<T>(), mo, io, p);
      else if (vpl == 64) normalize_rows_kernel<T, 64><<<row_blocks, kRowWarps * 32, 0, stream>>>(in[0].as<T>(), sc, bi, out[0].as<T>(), mo, io, p);
      else normalize_kernel<T><<<blocks, block_for(p.gsize), 0, stream>>>(in[0].as<T>(), sc, bi, out[0].as<T>(), mo, io, p);
    });
    check_launch(L, name());
  }
};

// ---- BatchNorm ------------------------------------------------------------------------------------
template <typename T, typename P>
__global__ void batchnorm_kernel(const T* __restrict__ x, T* __restrict__ y, const P* sc, const P* b, const P* m, const P* v, double eps,
                                 int64_t C, int64_t inner, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t c = (i / inner) % C;
    double a = static_cast<double>(ld(sc[c])) / sqrt(static_cast<double>(ld(v[c])) + eps);
    double k = static_cast<double>(ld(b[c])) - static_cast<double>(ld(m[c])) * a;
    st(y[i], static_cast<double>(ld(x[i])) * a + k);
  }
}

class BatchNormCuda : public Tactic {
 public:
  const char* name() const override { return "cuda.batchnorm"; }
  bool can_implement(const LayerInfo& L) const override {
    if (L.in.size() < 5) return false;
    DType t = L.in[0]->dtype;
    if (t != DType::F32 && t != DType::F16) return false;
    const Shape& s = L.in[0]->shape;
    int64_t C = s.size() >= 2 ? s[1] : 1;
    for (int i = 1; i < 5; ++i)
      if (!L.in[i] || L.in[i]->numel() != C || L.in[i]->dtype != L.in[1]->dtype) return false;
    return L.in[1]->dtype == t || L.in[1]->dtype == DType::F32;
  }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const Shape& s = in[0].shape;
    int64_t C = s.size() >= 2 ? s[1] : 1, inner = 1, n = in[0].numel();
    for (size_t k = 2; k < s.size(); ++k) inner *= s[k];
    if (n == 0) return;
    double eps = L.op->f("epsilon");
    dispatch_float(in[0].dtype, [&](auto tx) {
      dispatch_float(in[1].dtype, [&](auto tp) {
        using T = typename decltype(tx)::type;
        using P = typename decltype(tp)::type;
        batchnorm_kernel<T, P><<<grid_for(n), kThreads, 0, stream_of(ctx)>>>(in[0].as<T>(), out[0].as<T>(), in[1].as<P>(), in[2].as<P>(),
                                                                             in[3].as<P>(), in[4].as<P>(), eps, C, inner, n);
      });
    });
    check_launch(L, name());
  }
};

// ---- LRN ------------------------------------------------------------------------------------------
template <typename T>
__global__ void lrn_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t C, int64_t inner, int64_t n, int64_t size, double alpha,
                           double beta, double bias) {
  int64_t lo = (size - 1) / 2, hi = size - 1 - lo;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t j = i % inner, c = (i / inner) % C, b = i / inner / C;
    double sum = 0;
    int64_t k0 = c - lo < 0 ? 0 : c - lo, k1 = c + hi > C - 1 ? C - 1 : c + hi;
    for (int64_t k = k0; k <= k1; ++k) {
      double v = static_cast<double>(ld(x[(b * C + k) * inner + j]));
      sum += v * v;
    }
    st(y[i], static_cast<double>(ld(x[i])) / pow(bias + alpha / static_cast<double>(size) * sum, beta));
  }
}

class LrnCuda : public Tactic {
 public:
  const char* name() const override { return "cuda.lrn"; }
  bool can_implement(const LayerInfo& L) const override {
    DType t = L.in[0]->dtype;
    return (t == DType::F32 || t == DType::F16) && L.in[0]->shape.size() >= 2;
  }
  void run(const LayerInfo& L, LayerState*, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const Shape& s = in[0].shape;
    int64_t C = s[1], inner = 1, n = in[0].numel();
    for (size_t k = 2; k < s.size(); ++k) inner *= s[k];
    if (n == 0) return;
    dispatch_float(in[0].dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      lrn_kernel<T><<<grid_for(n), kThreads, 0, stream_of(ctx)>>>(in[0].as<T>(), out[0].as<T>(), C, inner, n, L.op->i("size"), L.op->f("alpha"),
                                                                   L.op->f("beta"), L.op->f("bias"));
    });
    check_launch(L, name());
  }
};

}  // namespace
}  // namespace cuk
KILN_REGISTER_TACTIC("cuda", "Normalize", cuk::NormalizeCuda);
KILN_REGISTER_TACTIC("cuda", "BatchNorm", cuk::BatchNormCuda);
KILN_REGISTER_TACTIC("cuda", "LRN", cuk::LrnCuda);
}  // namespace kiln

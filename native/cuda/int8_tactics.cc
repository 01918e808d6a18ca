// Int8Conv and Int8Gemm on the CUDA backend through kiln's own kernels (cuda/int8_conv.cu); Int8Gemm
// runs as a channels-last 1x1 convolution (int8_kernels.h). Tactics, for each kind:
//   cuda.int8_conv.direct / cuda.int8_gemm.direct   one thread per output element, the reference's
//       loops on the device. Takes every layer the kernels can address (W need not be constant).
//   cuda.int8_conv.mma / cuda.int8_gemm.mma         tensor-core implicit GEMM (mma.sync m16n8k32,
//       sm_80 or newer); constant W packed once into 64 x 64 tiles with the zero-point corrections.
//   cuda.int8_conv.mma_cl.bm64/.bm128 / cuda.int8_gemm.mma_cl.bm64/.bm128   the channels-last
//       implicit GEMM with 16-byte asynchronous gathers and a 3-4 stage pipeline (cuda/int8_conv_cl.cu):
//       int8 activations with zero point 0, channels in multiples of 16, 64 or 128 positions x 64
//       channels a block.
//   cuda.int8_conv.mma_cl.bm128n128/.bm256n128/.bm128n128.w8 (and int8_gemm)   the same kernel with
//       128-channel blocks of 64 x 64 warps (.w8: 8 warps of 32 x 64): for layers with at least a wave
//       of such blocks (batch 32's).
//   cuda.int8_conv.mma_cl.bm64.splitk (and int8_gemm)   the same with K split among blocks, for layers
//       whose output tiles are fewer than the GPU's SMs (batch 1's 7x7 maps): about two blocks per SM.
//   cuda.int8_conv.mma_cl.bm64.b6 / .bm128.w4 (and int8_gemm)   64 x 64 blocks six to an SM (few K
//       tiles: 1x1 layers), 128 x 64 blocks of 4 warps of 64 x 32.
//   cuda.int8_conv.im2col.bm64 / .bm128.w4   channels not a multiple of 16 (the stem's 3): the windows
//       gathered into a workspace, then the channels-last kernel as a 1x1 convolution over them.
//   cuda.int8_conv.pw.bn256   1x1 layers of 64 or 128 channels into multiples of 256 (ResNet's
//       64→256 and 128→512 with a residual): a persistent, streaming kernel (cuda/int8_conv_pw.cu).
//   cuda.int8_conv.stem / cuda.int8_conv_pool.stem   ResNet's stem (7x7 stride 2 over 3 channels into
//       64) by space-to-depth from one shared-memory patch per block of outputs (cuda/int8_conv_stem.cu);
//       the .int8_conv_pool one is the only CUDA tactic of Int8ConvPool (the stem and its max pool).
// Both layouts (channels_last or not) and every group/stride/pad/dilation. Int8Gemm also has the
// cuBLASLt IMMA tactics of int8_gemm_cublaslt.cc.
#include "int8_common.h"

#include "cuda_util.h"

#include <algorithm>
#include <vector>

namespace kiln {
namespace i8cu {
namespace {

class Direct : public Tactic {
 public:
  explicit Direct(const char* kind) : name_(std::string(kind) == "Int8Conv" ? "cuda.int8_conv.direct" : "cuda.int8_gemm.direct") {}
  const char* name() const override { return name_.c_str(); }
  bool can_implement(const LayerInfo& L) const override { return readable(L); }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = std::make_unique<State>();
    init_state(L, *st, false);
    return st;
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const State& st = *static_cast<State*>(s);
    cudaGetLastError();  // a stale non-sticky error from elsewhere is not this layer's
    check(L, conv_direct(st.l.g, Input{in[0].data, st.l.u8}, st.l.p.x_zp, static_cast<const int8_t*>(in[1].data), epilogue_for(st, in, out),
                         static_cast<cudaStream_t>(ctx.stream)),
          "int8 direct");
  }

 private:
  std::string name_;
};

struct MmaState : State {
  DeviceBuffer w;  // [G][mma_mgp][mma_kp]
};

// init_state, then the constant W packed for the tensor-core kernels (pack_mma_weights) and uploaded.
void init_packed(const LayerInfo& L, MmaState& st, bool with_corr) {
  init_state(L, st, with_corr);
  const Geom& g = st.l.g;
  std::vector<int8_t> packed(static_cast<size_t>(g.G) * mma_mgp(g) * mma_kp(g));
  pack_mma_weights(g, reinterpret_cast<const int8_t*>(L.const_data(1)), packed.data());
  st.w.upload(L, packed.data(), packed.size());
}

// init_state, then the constant W rearranged for the space-to-depth convolution (pack_s2d_weights) and
// uploaded: the s2d and stem tactics.
void init_s2d_packed(const LayerInfo& L, MmaState& st) {
  init_state(L, st, false);
  const Geom g2 = s2d_geom(st.l.g);
  std::vector<int8_t> packed(static_cast<size_t>(mma_mgp(g2)) * mma_kp(g2));
  pack_s2d_weights(st.l.g, reinterpret_cast<const int8_t*>(L.const_data(1)), packed.data());
  st.w.upload(L, packed.data(), packed.size());
}

// An attribute of the current device (0 when it cannot be read).
int device_attribute(cudaDeviceAttr a) {
  int dev = 0, v = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&v, a, dev) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return v;
}
int device_major() { return device_attribute(cudaDevAttrComputeCapabilityMajor); }
int device_sms() { return device_attribute(cudaDevAttrMultiProcessorCount); }

class Mma : public Tactic {
 public:
  explicit Mma(const char* kind) : name_(std::string(kind) == "Int8Conv" ? "cuda.int8_conv.mma" : "cuda.int8_gemm.mma") {}
  const char* name() const override { return name_.c_str(); }
  bool can_implement(const LayerInfo& L) const override {
    if (!L.const_data(1) || device_major() < 8) return false;
    try {
      Layer l = read_layer(L);
      // the padded window and the grid's group dim stay in range
      return l.K <= (1 << 30) && l.g.G <= 65535;
    } catch (const Error&) {
      return false;
    }
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    auto st = std::make_unique<MmaState>();
    init_packed(L, *st, true);
    return st;
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const auto& st = *static_cast<MmaState*>(s);
    cudaGetLastError();
    check(L, conv_mma(st.l.g, Input{in[0].data, st.l.u8}, st.l.pad8, st.w.as<int8_t>(), epilogue_for(st, in, out), static_cast<cudaStream_t>(ctx.stream)),
          "int8 mma");
  }

 private:
  std::string name_;
};

// The K split of the splitk variant: about two blocks per SM, each part at least two K tiles.
int split_for(const Geom& g) {
  const int tiles = mma_cl_tiles(g, kCl64), sms = device_sms(), kt = mma_kp(g) / kMmaBK;
  if (tiles <= 0 || tiles >= sms) return 1;
  return std::max(1, std::min({(2 * sms + tiles - 1) / tiles, kt / 2, 32}));
}

// The channels-last kernel: the packed W of Mma, no corrections (zero point 0).
class MmaCl : public Tactic {
 public:
  MmaCl(const char* kind, ClTile tile, bool splitk)
      : tile_(tile), splitk_(splitk),
        name_(std::string(std::string(kind) == "Int8Conv" ? "cuda.int8_conv" : "cuda.int8_gemm") + ".mma_cl.bm" + std::to_string(cl_bm(tile)) +
              (cl_bn(tile) != 64 ? "n" + std::to_string(cl_bn(tile)) : "") + (tile == kCl128x128w8 ? ".w8" : tile == kCl64x6 ? ".b6" : tile == kCl128w4 ? ".w4" : "") + (splitk ? ".splitk" : "")) {}
  const char* name() const override { return name_.c_str(); }
  bool can_implement(const LayerInfo& L) const override {
    if (!L.const_data(1) || device_major() < 8 || cu::alignment_of(*L.plan, L.in[0]) < 16) return false;
    try {
      Layer l = read_layer(L);
      if (!mma_cl_fits(l.g, l.u8, l.pad8) || (splitk_ && split_for(l.g) <= 1)) return false;
      // the 128-channel blocks only where they fill the GPU at least once
      return cl_bn(tile_) == 64 || mma_cl_tiles(l.g, tile_) >= device_sms();
    } catch (const Error&) {
      return false;
    }
  }
  size_t workspace(const LayerInfo& L) const override {
    if (!splitk_ || !can_implement(L)) return 0;
    return mma_cl_workspace(read_layer(L).g, tile_);
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    if (!can_implement(L)) fail("INVALID_ENGINE", cu::where(L) + ": tactic " + name_ + " cannot run this layer (it needs channels-last int8 activations with zero point 0 and channels in multiples of 16)");
    auto st = std::make_unique<ClState>();
    init_packed(L, *st, false);
    st->split = splitk_ ? split_for(st->l.g) : 1;
    return st;
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const auto& st = *static_cast<ClState*>(s);
    cudaGetLastError();
    if (st.split > 1 && ctx.workspace_bytes < mma_cl_workspace(st.l.g, tile_)) fail("INTERNAL", cu::where(L) + ": workspace too small for " + name_);
    check(L,
          conv_mma_cl(st.l.g, tile_, st.split, static_cast<const int8_t*>(in[0].data), st.w.as<int8_t>(), epilogue_for(st, in, out), ctx.workspace,
                      static_cast<cudaStream_t>(ctx.stream)),
          "int8 mma_cl");
  }

 private:
  struct ClState : MmaState {
    int split = 1;
  };
  ClTile tile_;
  bool splitk_;
  std::string name_;
};

// Channels not a multiple of 16 (the stem convolution's 3): X rearranged into a workspace that the
// channels-last kernel reads, either every window gathered (im2col: conv_im2col_cl, then a 1x1
// convolution) or, for strided layers, blocks of s x s pixels as channels (s2d: conv_s2d_cl, then a
// stride-1 convolution with a smaller window; a fraction of im2col's bytes).
class GatherCl : public Tactic {
 public:
  enum Kind { kIm2col, kS2d };
  GatherCl(Kind kind, ClTile tile)
      : kind_(kind), tile_(tile), name_(std::string(kind == kIm2col ? "cuda.int8_conv.im2col.bm" : "cuda.int8_conv.s2d.bm") + std::to_string(cl_bm(tile)) + (tile == kCl128w4 ? ".w4" : "")) {}
  const char* name() const override { return name_.c_str(); }
  bool can_implement(const LayerInfo& L) const override {
    if (!L.const_data(1) || device_major() < 8) return false;
    try {
      Layer l = read_layer(L);
      const Geom& g = l.g;
      if (!g.channels_last || l.u8 || l.pad8 != 0) return false;
      if (kind_ == kS2d) return s2d_fits(g);
      // where mma_cl cannot read X directly; the gathered rows stay int32-addressable
      return g.G == 1 && g.Cg % 16 != 0 && l.K <= 1536 && static_cast<int64_t>(im2col_geom(g).in[2]) * im2col_geom(g).C < (int64_t{1} << 31);
    } catch (const Error&) {
      return false;
    }
  }
  size_t workspace(const LayerInfo& L) const override {
    if (!can_implement(L)) return 0;
    return bytes(read_layer(L).g);
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    if (!can_implement(L)) fail("INVALID_ENGINE", cu::where(L) + ": tactic " + name_ + " cannot run this layer (it needs channels-last int8 activations with zero point 0 and one group)");
    auto st = std::make_unique<MmaState>();
    if (kind_ == kS2d) {
      init_s2d_packed(L, *st);
      return st;
    }
    init_state(L, *st, false);
    const Geom& g = st->l.g;
    const int8_t* src = reinterpret_cast<const int8_t*>(L.const_data(1));
    const Geom g2 = im2col_geom(g);
    std::vector<int8_t> packed(static_cast<size_t>(mma_mgp(g2)) * mma_kp(g2));
    // W's rows of K values, zero-padded to the gathered rows' Kc
    const int K = st->l.K, Kc = g2.C;
    std::vector<int8_t> w(static_cast<size_t>(g2.M) * Kc, 0);
    for (int m = 0; m < g2.M; ++m) std::copy(src + static_cast<size_t>(m) * K, src + static_cast<size_t>(m + 1) * K, w.begin() + static_cast<size_t>(m) * Kc);
    pack_mma_weights(g2, w.data(), packed.data());
    st->w.upload(L, packed.data(), packed.size());
    return st;
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const auto& st = *static_cast<MmaState*>(s);
    cudaGetLastError();
    if (ctx.workspace_bytes < bytes(st.l.g)) fail("INTERNAL", cu::where(L) + ": workspace too small for " + name_);
    const auto x = static_cast<const int8_t*>(in[0].data);
    const Epilogue ep = epilogue_for(st, in, out);
    const auto stream = static_cast<cudaStream_t>(ctx.stream);
    check(L, kind_ == kIm2col ? conv_im2col_cl(st.l.g, tile_, x, st.w.as<int8_t>(), ep, ctx.workspace, stream) : conv_s2d_cl(st.l.g, tile_, x, st.w.as<int8_t>(), ep, ctx.workspace, stream),
          kind_ == kIm2col ? "int8 im2col" : "int8 s2d");
  }

 private:
  // the workspace: the gathered windows or the rearranged image
  size_t bytes(const Geom& g) const { return kind_ == kIm2col ? im2col_bytes(g) : s2d_bytes(g); }
  Kind kind_;
  ClTile tile_;
  std::string name_;
};

// The streaming pointwise kernel (cuda/int8_conv_pw.cu): 1x1 layers of 64 or 128 input channels into
// multiples of 256, with or without an int8 residual (the bottlenecks' last layers): memory-bound, so
// a persistent grid keeps the next tile's loads in flight.
class PwCl : public Tactic {
 public:
  const char* name() const override { return "cuda.int8_conv.pw.bn256"; }
  bool can_implement(const LayerInfo& L) const override {
    if (!L.const_data(1) || device_major() < 8 || cu::alignment_of(*L.plan, L.in[0]) < 16 || cu::alignment_of(*L.plan, L.out[0]) < 16) return false;
    if (L.in.size() > 3 && L.in[3] && cu::alignment_of(*L.plan, L.in[3]) < 16) return false;
    try {
      Layer l = read_layer(L);
      const bool res = !l.has_residual || l.p.res == DType::I8 || l.p.res == DType::U8;
      return !l.pooled && !l.u8 && l.pad8 == 0 && res && l.p.fold.on && (l.p.out == DType::I8 || l.p.out == DType::U8) && pw_fits(l.g);
    } catch (const Error&) {
      return false;
    }
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    if (!can_implement(L))
      fail("INVALID_ENGINE", cu::where(L) + ": tactic " + std::string(name()) + " cannot run this layer (it needs a channels-last 1x1 convolution of 64 or 128 int8 channels with zero point 0 into a multiple of 256, an int8/uint8 output)");
    auto st = std::make_unique<MmaState>();
    init_packed(L, *st, false);
    return st;
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const auto& st = *static_cast<MmaState*>(s);
    cudaGetLastError();
    check(L, conv_pw_cl(st.l.g, static_cast<const int8_t*>(in[0].data), st.w.as<int8_t>(), epilogue_for(st, in, out), device_sms(), static_cast<cudaStream_t>(ctx.stream)),
          "int8 pw");
  }
};

// The stem kernel (cuda/int8_conv_stem.cu): ResNet's 7x7 stride 2 over 3 channels by space-to-depth,
// a 2-D region of outputs per block from one patch of X in shared memory; for Int8ConvPool the max
// pool after it in the same kernel (the convolution's output never leaves the SM).
class Stem : public Tactic {
 public:
  explicit Stem(const char* kind) : pooled_(std::string(kind) == "Int8ConvPool"), name_(pooled_ ? "cuda.int8_conv_pool.stem" : "cuda.int8_conv.stem") {}
  const char* name() const override { return name_.c_str(); }
  bool can_implement(const LayerInfo& L) const override {
    if (!L.const_data(1) || device_major() < 8 || cu::alignment_of(*L.plan, L.out[0]) < 16) return false;
    try {
      Layer l = read_layer(L);
      return l.pooled == pooled_ && l.g.channels_last && !l.u8 && l.pad8 == 0 && !l.has_residual && l.p.fold.on && (l.p.out == DType::I8 || l.p.out == DType::U8) &&
             stem_fits(l.g) && (!l.pooled || stem_pool_fits(l.pool));
    } catch (const Error&) {
      return false;
    }
  }
  std::unique_ptr<LayerState> prepare(const LayerInfo& L) const override {
    if (!can_implement(L))
      fail("INVALID_ENGINE", cu::where(L) + ": tactic " + name_ + " cannot run this layer (it needs a channels-last stride-2 convolution of at most 4 int8 channels with zero point 0 into 64, a 4x4 space-to-depth window and an int8/uint8 output without residual)");
    auto st = std::make_unique<MmaState>();
    init_s2d_packed(L, *st);
    return st;
  }
  void run(const LayerInfo& L, LayerState* s, const Tensor* in, Tensor* out, RunContext& ctx) const override {
    const auto& st = *static_cast<MmaState*>(s);
    cudaGetLastError();
    check(L,
          conv_stem_cl(st.l.g, st.l.pooled ? &st.l.pool : nullptr, static_cast<const int8_t*>(in[0].data), st.w.as<int8_t>(), epilogue_for(st, in, out),
                       static_cast<cudaStream_t>(ctx.stream)),
          "int8 stem");
  }

 private:
  bool pooled_;
  std::string name_;
};

struct RegisterAll {
  RegisterAll() {
    for (const char* kind : {"Int8Conv", "Int8Gemm"}) {
      register_tactic("cuda", kind, std::make_unique<MmaCl>(kind, kCl256x128, false));
      register_tactic("cuda", kind, std::make_unique<MmaCl>(kind, kCl128x128, false));
      register_tactic("cuda", kind, std::make_unique<MmaCl>(kind, kCl128x128w8, false));
      register_tactic("cuda", kind, std::make_unique<MmaCl>(kind, kCl128, false));
      register_tactic("cuda", kind, std::make_unique<MmaCl>(kind, kCl128w4, false));
      register_tactic("cuda", kind, std::make_unique<MmaCl>(kind, kCl64, false));
      register_tactic("cuda", kind, std::make_unique<MmaCl>(kind, kCl64x6, false));
      register_tactic("cuda", kind, std::make_unique<MmaCl>(kind, kCl64, true));
      if (std::string(kind) == "Int8Conv") {
        register_tactic("cuda", kind, std::make_unique<Stem>(kind));
        register_tactic("cuda", kind, std::make_unique<PwCl>());
        for (GatherCl::Kind gk : {GatherCl::kS2d, GatherCl::kIm2col}) {
          register_tactic("cuda", kind, std::make_unique<GatherCl>(gk, kCl64));
          register_tactic("cuda", kind, std::make_unique<GatherCl>(gk, kCl128w4));
        }
      }
      register_tactic("cuda", kind, std::make_unique<Mma>(kind));
      register_tactic("cuda", kind, std::make_unique<Direct>(kind));
    }
    register_tactic("cuda", "Int8ConvPool", std::make_unique<Stem>("Int8ConvPool"));
  }
} register_all;

}  // namespace
}  // namespace i8cu
}  // namespace kiln

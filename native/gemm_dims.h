// The native 'Gemm' kind's sizes and operand layout (the attribute contract is in native/cpu/gemm.cc),
// read once for every backend's tactics: M, N, K, the transposes, and where A and B start and their
// leading dimensions (default contiguous).
#pragma once

#include <cstdint>

#include "plan.h"

namespace kiln {

struct GemmDims {
  int64_t M = 0, N = 0, K = 0;
  bool ta = false, tb = false;
  int64_t a_off = 0, b_off = 0, lda = 0, ldb = 0;  // operand starts and leading dimensions

  static GemmDims read(const PlanOp& op) {
    GemmDims d;
    d.M = op.i("M");
    d.N = op.i("N");
    d.K = op.i("K");
    d.ta = op.i("transA") != 0;
    d.tb = op.i("transB") != 0;
    d.a_off = op.i("a_offset", 0);
    d.b_off = op.i("b_offset", 0);
    d.lda = op.i("a_ld", d.ta ? d.M : d.K);
    d.ldb = op.i("b_ld", d.tb ? d.K : d.N);
    return d;
  }
  // The last element of A / B that batch offset `reach` plus the matrix can touch.
  int64_t last_a(int64_t reach) const { return a_off + reach + (ta ? (K - 1) * lda + M - 1 : (M - 1) * lda + K - 1); }
  int64_t last_b(int64_t reach) const { return b_off + reach + (tb ? (N - 1) * ldb + K - 1 : (K - 1) * ldb + N - 1); }
};

}  // namespace kiln

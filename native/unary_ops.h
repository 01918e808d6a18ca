// The list of the native element-wise unary operations (the `op` attribute of the 'Unary' kind and
// the "u:" instructions of 'Elementwise'), as an X-macro: the one list the CPU kernels
// (native/cpu/unary_math.h) and the CUDA kernels (cuda/elementwise_ops.cuh) both expand.
#pragma once

#define KILN_UNARY_OPS(X)                                                                                           \
  X(Abs) X(Neg) X(Sign) X(Exp) X(Log) X(Sqrt) X(Reciprocal) X(Floor) X(Ceil) X(Round) X(Sin) X(Cos) X(Tan) X(Asin) \
  X(Acos) X(Atan) X(Sinh) X(Cosh) X(Asinh) X(Acosh) X(Atanh) X(Erf) X(Sigmoid) X(Tanh) X(Relu) X(LeakyRelu) X(Elu) \
  X(Selu) X(Celu) X(HardSigmoid) X(HardSwish) X(Softplus) X(Softsign) X(Gelu) X(GeluTanh) X(Mish)                  \
  X(ThresholdedRelu) X(Shrink) X(Swish) X(Clip) X(IsNaN) X(IsInf) X(Not) X(BitwiseNot)

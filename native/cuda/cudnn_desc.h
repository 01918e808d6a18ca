// One cuDNN backend descriptor that frees itself, with setters that record the first failure, and the
// convolution descriptor: used by the graph-API tactics (cudnn_graph.h) and the kernel benchmark
// bench/kernels/int8_conv_cudnn.cu. Needs only cudnn.h.
#pragma once

#include <cudnn.h>

#include <cstdint>

namespace kiln {
namespace cudnn_graph {

class Desc {
 public:
  explicit Desc(cudnnBackendDescriptorType_t t) { ok_ = cudnnBackendCreateDescriptor(t, &d_) == CUDNN_STATUS_SUCCESS; }
  ~Desc() {
    if (d_) cudnnBackendDestroyDescriptor(d_);
  }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
  cudnnBackendDescriptor_t get() const { return d_; }
  // Each setter records failure; finalize() says whether everything so far succeeded.
  template <typename T>
  Desc& set(cudnnBackendAttributeName_t a, cudnnBackendAttributeType_t t, const T* v, int64_t n = 1) {
    if (ok_) note(cudnnBackendSetAttribute(d_, a, t, n, v));
    return *this;
  }
  Desc& set_desc(cudnnBackendAttributeName_t a, const Desc& v) {
    cudnnBackendDescriptor_t x = v.get();
    return set(a, CUDNN_TYPE_BACKEND_DESCRIPTOR, &x);
  }
  bool finalize() {
    if (ok_) note(cudnnBackendFinalize(d_));
    return ok_;
  }
  bool ok() const { return ok_; }
  // The status of the call that failed first (CUDNN_STATUS_SUCCESS while none has).
  cudnnStatus_t status() const { return status_; }

 private:
  void note(cudnnStatus_t s) {
    if (s != CUDNN_STATUS_SUCCESS) ok_ = false, status_ = s;
  }
  cudnnBackendDescriptor_t d_ = nullptr;
  bool ok_ = false;
  cudnnStatus_t status_ = CUDNN_STATUS_SUCCESS;
};

// The least post padding >= 0 that makes cuDNN's output size, floor((in + pre + post - extent) / s) + 1,
// come out as `out` (a window that ends before the input's last rows, such as a strided 1x1, needs
// none); -1 when no padding does.
inline int64_t post_padding(int64_t in, int64_t out, int64_t k, int64_t s, int64_t d, int64_t pre) {
  const int64_t extent = (k - 1) * d + 1;
  int64_t post = (out - 1) * s + extent - in - pre;
  if (post < 0) post = 0;
  return (in + pre + post - extent) / s + 1 == out ? post : -1;
}

// Fills a 2-D cross-correlation's CONVOLUTION_DESCRIPTOR (accumulating in `acc`) and finalizes it.
inline bool conv_desc(Desc& conv, cudnnDataType_t acc, const int64_t stride[2], const int64_t dilation[2], const int64_t pre[2], const int64_t post[2]) {
  int64_t spatial = 2;
  cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  return conv.set(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, &acc)
      .set(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, &mode)
      .set(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, &spatial)
      .set(CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, dilation, 2)
      .set(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, stride, 2)
      .set(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, pre, 2)
      .set(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, post, 2)
      .finalize();
}

}  // namespace cudnn_graph
}  // namespace kiln

// Bounds-checked reading of little-endian binary data (the Plan and the engine bytes): every read says
// what it was reading and where, and a short buffer is an INVALID_ENGINE error, never a wild read.
#pragma once

#include <cstring>
#include <string>

#include "common.h"

namespace kiln {

class ByteReader {
 public:
  ByteReader(const uint8_t* p, size_t n, const std::string& where) : p_(p), n_(n), where_(where) {}
  size_t pos() const { return pos_; }
  void need(size_t k, const char* what) {
    if (k > n_ - pos_)
      fail("INVALID_ENGINE", where_ + ": truncated while reading " + what + " at byte " + std::to_string(pos_) +
                                 " (needs " + std::to_string(k) + ", " + std::to_string(n_ - pos_) + " left)");
  }
  template <typename T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  uint32_t count(const char* what, uint32_t max) {
    uint32_t c = get<uint32_t>(what);
    if (c > max) fail("INVALID_ENGINE", where_ + ": " + what + " count " + std::to_string(c) + " is implausible");
    return c;
  }
  std::string str(const char* what) {
    uint32_t len = get<uint32_t>(what);
    need(len, what);
    std::string s(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    return s;
  }
  // A length-prefixed blob: returns its offset within the buffer.
  size_t blob(const char* what, uint64_t* len) {
    *len = get<uint64_t>(what);
    if (*len > n_ - pos_) need(n_ - pos_ + 1, what);
    size_t at = pos_;
    pos_ += static_cast<size_t>(*len);
    return at;
  }
  bool done() const { return pos_ == n_; }
  const std::string& where() const { return where_; }

 private:
  const uint8_t* p_;
  size_t n_, pos_ = 0;
  std::string where_;
};

}  // namespace kiln

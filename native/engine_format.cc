#include "engine_format.h"

#include "byte_reader.h"

#include <array>

namespace kiln {

namespace {

class Out {
 public:
  std::vector<uint8_t> b;
  template <typename T>
  void put(T v) {
    size_t at = b.size();
    b.resize(at + sizeof(T));
    std::memcpy(b.data() + at, &v, sizeof(T));
  }
  void str(const std::string& s) {
    put<uint32_t>(static_cast<uint32_t>(s.size()));
    b.insert(b.end(), s.begin(), s.end());
  }
  void raw(const void* p, size_t n) { b.insert(b.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n); }
};

const std::array<uint32_t, 256>& crc_table() {
  static const std::array<uint32_t, 256> t = [] {
    std::array<uint32_t, 256> r{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      r[i] = c;
    }
    return r;
  }();
  return t;
}

constexpr size_t kTrailer = 8;  // crc32 + "KEND"

}  // namespace

uint32_t crc32(const uint8_t* data, size_t len) {
  const auto& t = crc_table();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < len; ++i) c = t[(c ^ data[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::vector<uint8_t> write_engine(const EngineHeader& h, const std::vector<uint8_t>& plan,
                                  const std::vector<LayerChoice>& choices, const std::string& meta) {
  Out tact;
  tact.put<uint32_t>(static_cast<uint32_t>(choices.size()));
  for (const auto& c : choices) {
    tact.str(c.backend);
    tact.str(c.tactic);
    tact.put<uint32_t>(static_cast<uint32_t>(c.candidates.size()));
    for (const auto& t : c.candidates) {
      tact.str(t.tactic);
      tact.put<double>(t.ms);
    }
  }
  Out hdr;
  hdr.str(h.kiln_version);
  hdr.str(h.backend);
  hdr.str(h.device);
  hdr.str(h.capability);
  hdr.str(h.libraries);
  hdr.str(h.build_options);

  struct Sec { const char* tag; const uint8_t* p; size_t n; };
  std::vector<Sec> secs = {{"PLAN", plan.data(), plan.size()},
                           {"TACT", tact.b.data(), tact.b.size()},
                           {"META", reinterpret_cast<const uint8_t*>(meta.data()), meta.size()}};
  Out o;
  o.raw(kEngineMagic, 8);
  o.put<uint32_t>(kEngineFormatVersion);
  o.put<uint32_t>(static_cast<uint32_t>(hdr.b.size()));
  o.raw(hdr.b.data(), hdr.b.size());
  o.put<uint32_t>(static_cast<uint32_t>(secs.size()));
  size_t table_at = o.b.size();
  size_t body = table_at + secs.size() * 20;
  for (const auto& s : secs) {
    body = (body + 63) / 64 * 64;  // each section starts 64-byte aligned within the file
    o.raw(s.tag, 4);
    o.put<uint64_t>(body);
    o.put<uint64_t>(s.n);
    body += s.n;
  }
  for (const auto& s : secs) {
    size_t at = (o.b.size() + 63) / 64 * 64;
    o.b.resize(at, 0);
    o.raw(s.p, s.n);
  }
  o.put<uint32_t>(crc32(o.b.data(), o.b.size()));
  o.raw(kTrailerMagic, 4);
  return std::move(o.b);
}

EngineParts read_engine(const uint8_t* data, size_t len) {
  if (len < 8 || std::memcmp(data, kEngineMagic, 8) != 0)
    fail("INVALID_ENGINE", "engine header: not a kiln engine (the first 8 bytes are not the kiln magic)");
  ByteReader in(data, len, "engine header");
  in.get<uint64_t>("magic");
  EngineParts parts;
  parts.header.format_version = in.get<uint32_t>("format version");
  if (parts.header.format_version != kEngineFormatVersion)
    fail("ENGINE_MISMATCH", "engine header: format version " + std::to_string(parts.header.format_version) +
                                ", this kiln reads version " + std::to_string(kEngineFormatVersion) + "; rebuild the engine");
  if (len < 16 + kTrailer || std::memcmp(data + len - 4, kTrailerMagic, 4) != 0)
    fail("INVALID_ENGINE", "engine trailer: missing; the engine is truncated (" + std::to_string(len) + " bytes)");
  uint32_t stored, actual = crc32(data, len - kTrailer);
  std::memcpy(&stored, data + len - kTrailer, 4);
  if (stored != actual) fail("INVALID_ENGINE", "engine trailer: checksum mismatch; the engine bytes are corrupt");
  uint32_t hlen = in.get<uint32_t>("header length");
  in.need(hlen, "header fields");
  ByteReader h(data + 16, hlen, "engine header");
  parts.header.kiln_version = h.str("kiln version");
  parts.header.backend = h.str("backend");
  parts.header.device = h.str("device");
  parts.header.capability = h.str("capability");
  parts.header.libraries = h.str("libraries");
  parts.header.build_options = h.str("build options");
  if (!h.done()) fail("INVALID_ENGINE", "engine header: stray bytes after the header fields");
  size_t pos = 16 + hlen;
  ByteReader t(data + pos, len - kTrailer - pos, "engine section table");
  uint32_t nsec = t.get<uint32_t>("section count");
  if (nsec > 64) fail("INVALID_ENGINE", "engine section table: " + std::to_string(nsec) + " sections is implausible");
  bool have_plan = false, have_tact = false;
  for (uint32_t i = 0; i < nsec; ++i) {
    char tag[5] = {0};
    for (int k = 0; k < 4; ++k) tag[k] = static_cast<char>(t.get<uint8_t>("section tag"));
    uint64_t off = t.get<uint64_t>("section offset"), n = t.get<uint64_t>("section length");
    std::string where = std::string("engine section ") + tag;
    if (off > len - kTrailer || n > len - kTrailer - off)
      fail("INVALID_ENGINE", where + ": offset " + std::to_string(off) + " + length " + std::to_string(n) +
                                 " runs past the end of the engine (" + std::to_string(len) + " bytes)");
    const uint8_t* p = data + off;
    if (std::string(tag) == "PLAN") {
      parts.plan = std::make_shared<const std::vector<uint8_t>>(p, p + n);
      have_plan = true;
    } else if (std::string(tag) == "TACT") {
      ByteReader s(p, n, where);
      uint32_t count = s.get<uint32_t>("layer count");
      if (count > n) fail("INVALID_ENGINE", where + ": layer count " + std::to_string(count) + " is implausible");
      parts.choices.resize(count);
      for (auto& c : parts.choices) {
        c.backend = s.str("layer backend");
        c.tactic = s.str("tactic name");
        uint32_t nc = s.get<uint32_t>("candidate count");
        if (nc > 4096) fail("INVALID_ENGINE", where + ": candidate count is implausible");
        for (uint32_t j = 0; j < nc; ++j) {
          TacticTiming tt;
          tt.tactic = s.str("candidate name");
          tt.ms = s.get<double>("candidate time");
          c.candidates.push_back(tt);
        }
      }
      if (!s.done()) fail("INVALID_ENGINE", where + ": stray bytes after the tactic choices");
      have_tact = true;
    } else if (std::string(tag) == "META") {
      parts.meta.assign(reinterpret_cast<const char*>(p), n);
    }  // unknown sections are skipped: newer minor additions stay loadable
  }
  if (!have_plan) fail("INVALID_ENGINE", "engine section PLAN: missing");
  if (!have_tact) fail("INVALID_ENGINE", "engine section TACT: missing");
  return parts;
}

}  // namespace kiln

// Engine bytes (docs/engine-format.md): header, section table, sections (PLAN, TACT, META), trailer
// with a CRC-32. Reading validates every length and offset before use and names the section at fault.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "executor.h"

namespace kiln {

constexpr char kEngineMagic[8] = {'K', 'I', 'L', 'N', 'E', 'N', 'G', 0};
constexpr uint32_t kEngineFormatVersion = 1;
constexpr char kTrailerMagic[4] = {'K', 'E', 'N', 'D'};

struct EngineHeader {
  uint32_t format_version = kEngineFormatVersion;
  std::string kiln_version;
  std::string backend;
  std::string device;      // e.g. "cpu x86_64" or "NVIDIA H100 80GB HBM3"
  std::string capability;  // e.g. "avx2,fma" or "9.0"
  std::string libraries;   // JSON object of library versions
  std::string build_options;  // JSON object
};

struct EngineParts {
  EngineHeader header;
  std::shared_ptr<const std::vector<uint8_t>> plan;  // PLAN section bytes
  std::vector<LayerChoice> choices;                   // TACT
  std::string meta;                                   // META: opaque JSON written by TS
};

std::vector<uint8_t> write_engine(const EngineHeader& h, const std::vector<uint8_t>& plan,
                                  const std::vector<LayerChoice>& choices, const std::string& meta);
EngineParts read_engine(const uint8_t* data, size_t len);
uint32_t crc32(const uint8_t* data, size_t len);

}  // namespace kiln

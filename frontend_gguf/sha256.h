// SHA-256 (FIPS 180-4), for content identities in reports such as OUT.compat.json.
#pragma once

#include "ir/support/expected.h"

#include <array>
#include <cstdint>
#include <span>
#include <string>

namespace bitnet::gguf {

class Sha256 {
 public:
  Sha256();
  void update(std::span<const uint8_t> data);
  std::array<uint8_t, 32> finish();

 private:
  void compress(const uint8_t* block);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

std::string to_hex(std::span<const uint8_t> bytes);
std::string sha256_hex(std::span<const uint8_t> data);
Expected<std::string> sha256_file_hex(const std::string& path);

}  // namespace bitnet::gguf

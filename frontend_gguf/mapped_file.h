// A read-only memory mapping of a whole file (RAII). Weights are viewed, never copied.
#pragma once

#include "ir/support/expected.h"

#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace bitnet::gguf {

class MappedFile {
 public:
  static Expected<std::shared_ptr<const MappedFile>> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size) : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace bitnet::gguf

// A reader of one `.safetensors` file (Hugging Face's format: an 8-byte little-endian header
// length N, N bytes of JSON naming each tensor's dtype, shape and [begin, end) byte offsets
// relative to the end of the header, then the data). The file is mapped, never read whole;
// every length, offset, shape and dtype is checked before a tensor view is handed out.
#pragma once

#include "frontend_gguf/mapped_file.h"
#include "ir/support/expected.h"

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet::convert {

enum class StDtype { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

std::string_view st_dtype_name(StDtype dtype);
size_t st_dtype_size(StDtype dtype);

// One tensor of a mapped file: its bytes stay valid while the file (held by `owner`) lives.
struct StTensor {
  std::string name;
  StDtype dtype = StDtype::kF32;
  std::vector<uint64_t> shape;  // row-major, outermost first (PyTorch order)
  std::span<const uint8_t> data;
  std::string file;  // the file it came from, for messages

  uint64_t elements() const;
};

// The format's own header limit (the reference `safetensors` crate refuses headers over
// 100,000,000 bytes): a larger header is refused before anything is read from it.
inline constexpr uint64_t kMaxSafetensorsHeader = 100'000'000;

class SafetensorsFile {
 public:
  static Expected<SafetensorsFile> open(const std::string& path);

  const std::vector<StTensor>& tensors() const { return tensors_; }
  const StTensor* find(std::string_view name) const;
  // The optional "__metadata__" string map.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::shared_ptr<const gguf::MappedFile> file_;
  std::vector<StTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Parses a whole file's bytes (header length, header, data): what `open` does after mapping the
// file; the tensors' data are views into `bytes`. Exposed for the fuzzer.
Expected<std::vector<StTensor>> parse_safetensors(std::span<const uint8_t> bytes, const std::string& file_name,
                                                  std::map<std::string, std::string>* metadata);

// Parses a header (the JSON text) against a data area of `data_size` bytes; exposed for tests.
Expected<std::vector<StTensor>> parse_safetensors_header(std::string_view json_text, std::span<const uint8_t> data,
                                                         const std::string& file_name,
                                                         std::map<std::string, std::string>* metadata);

}  // namespace bitnet::convert

// A parsed GGUF file: header, metadata in file order, tensor infos, and tensor data
// as zero-copy views into the mapped file. Parsing validates every count, length,
// offset and dimension against the file size before using it (see gguf_reader.cpp).
#pragma once

#include "frontend_gguf/ggml_types.h"
#include "frontend_gguf/gguf_value.h"
#include "frontend_gguf/mapped_file.h"
#include "ir/support/expected.h"

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace bitnet::gguf {

inline constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as little-endian u32
inline constexpr uint64_t kDefaultAlignment = 32;

struct KeyValue {
  std::string key;
  Value value;
  uint64_t offset = 0;  // byte offset of the entry in the file (0 for entries not read from a file)
};

struct TensorInfo {
  std::string name;
  std::vector<uint64_t> ne;  // ggml order: ne[0] is contiguous; size = n_dims
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;       // relative to the data section
  uint64_t nbytes = 0;       // per the type's size rule
  uint64_t info_offset = 0;  // byte offset of the tensor-info record in the file
  std::span<const uint8_t> data;  // view into the file

  uint64_t element_count() const;
};

// Limits that bound what a (possibly hostile) file can make the reader allocate.
struct ParseOptions {
  // Accept tensor offsets that are not multiples of the alignment (compat-check and
  // compat-fix use this to diagnose and realign such files; loaders never do).
  bool allow_misaligned_tensors = false;
  uint64_t max_key_bytes = 65535;           // GGUF spec limit for keys
  uint64_t max_string_bytes = 64ull << 20;  // any metadata string
  uint64_t max_array_elements = 32ull << 20;  // total over all metadata arrays
  uint64_t max_nested_arrays = 1ull << 20;    // total arrays inside arrays
  uint32_t max_array_depth = 8;             // arrays of arrays of ...
  uint64_t max_tensor_name_bytes = 4096;
};

class GgufFile {
 public:
  // Maps and parses a file. Errors name the file, the field, its byte offset and why.
  static Expected<GgufFile> open(const std::string& path, const ParseOptions& limits = {});
  // Parses bytes the caller keeps alive (tests, fuzzing). Tensor views point into `bytes`.
  static Expected<GgufFile> parse(std::span<const uint8_t> bytes, const ParseOptions& limits = {});

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // start of the tensor data section
  uint64_t file_size() const { return bytes_.size(); }
  std::span<const uint8_t> bytes() const { return bytes_; }
  const std::string& path() const { return path_; }

  const std::vector<KeyValue>& metadata() const { return metadata_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const Value* find(std::string_view key) const;
  const TensorInfo* find_tensor(std::string_view name) const;

  // Typed lookups; nullopt when absent or of a type that does not convert.
  std::optional<uint64_t> get_uint(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;
  std::optional<bool> get_bool(std::string_view key) const;
  const std::string* get_string(std::string_view key) const;
  const Array* get_array(std::string_view key) const;
  // Tensors whose offset is not a multiple of the alignment (only with allow_misaligned_tensors).
  uint64_t misaligned_tensor_count() const { return misaligned_tensors_; }
  std::string architecture() const;  // general.architecture or ""

 private:
  friend class Reader;
  std::shared_ptr<const MappedFile> mapping_;  // keeps `bytes_` alive when opened from a path
  std::span<const uint8_t> bytes_;
  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  uint64_t misaligned_tensors_ = 0;
  std::vector<KeyValue> metadata_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> key_index_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace bitnet::gguf

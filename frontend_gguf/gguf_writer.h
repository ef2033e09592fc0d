// GGUF v3 writer: metadata in insertion order, then tensor infos, then tensor data,
// each tensor aligned to `general.alignment` (32 when absent). Used by tests to make
// synthetic models and by compat-fix to write repaired copies.
#pragma once

#include "frontend_gguf/gguf_file.h"

#include <functional>
#include <span>
#include <string>
#include <vector>

namespace bitnet::gguf {

struct TensorToWrite {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<uint64_t> ne;       // ggml order
  std::span<const uint8_t> data;  // exactly ggml_tensor_nbytes(type, ne) bytes; must outlive the write
};

class GgufWriter {
 public:
  // A writer holding `file`'s metadata and tensor views (the file must outlive the writer).
  static GgufWriter from_file(const GgufFile& file);

  // Sets a key, replacing an existing value in place (order is kept) or appending.
  void set(const std::string& key, Value value);
  bool erase(const std::string& key);
  const Value* find(const std::string& key) const;
  const std::vector<KeyValue>& metadata() const { return metadata_; }

  // Fails on a duplicate name, a bad shape/type, or a data size that does not match.
  Status add_tensor(TensorToWrite tensor);
  const std::vector<TensorToWrite>& tensors() const { return tensors_; }

  // Alignment the output will use (general.alignment if set and valid, else 32).
  Expected<uint64_t> alignment() const;

  Expected<std::vector<uint8_t>> to_bytes() const;
  // Writes to `path` by the rules of output_file.h: a regular file (or nothing) is replaced
  // via a temp file in the same directory, fsync and rename, so a reader never sees a
  // half-written file and a failure leaves no partial output; a device or FIFO is written
  // directly; anything else is refused.
  Status write_file_atomic(const std::string& path) const;

 private:
  using Sink = std::function<Status(const void* data, size_t size)>;
  Status write_to(const Sink& sink) const;

  std::vector<KeyValue> metadata_;
  std::vector<TensorToWrite> tensors_;
};

}  // namespace bitnet::gguf

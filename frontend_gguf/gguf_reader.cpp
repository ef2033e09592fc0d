// GGUF v2/v3 reader. Hostile input is the normal case here: every count, length,
// offset and dimension is checked against the bytes that remain and for overflow
// before anything is allocated or dereferenced, and every error names the field,
// its byte offset and the reason.
#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "frontend_gguf/gguf_file.h"

namespace bitnet::gguf {
namespace {

// Bounds-checked little-endian cursor over the file bytes.
class Cursor {
 public:
  explicit Cursor(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  uint64_t offset() const { return offset_; }
  uint64_t remaining() const { return bytes_.size() - offset_; }

  Error truncated(std::string_view what, uint64_t need) const {
    return make_error("{} at offset {}: needs {} bytes but only {} remain (file size {})", what, offset_, need,
                      remaining(), bytes_.size());
  }

  template <class T>
  Expected<T> read(std::string_view what) {
    if (remaining() < sizeof(T)) return truncated(what, sizeof(T));
    T value;
    std::memcpy(&value, bytes_.data() + offset_, sizeof(T));
    offset_ += sizeof(T);
    return value;
  }

  Expected<std::span<const uint8_t>> take(uint64_t n, std::string_view what) {
    if (remaining() < n) return truncated(what, n);
    auto out = bytes_.subspan(offset_, n);
    offset_ += n;
    return out;
  }

  // GGUF string: u64 length + bytes (not NUL-terminated).
  Expected<std::string> read_string(std::string_view what, uint64_t max_bytes) {
    const uint64_t at = offset_;
    BITNET_ASSIGN_OR_RETURN(uint64_t len, read<uint64_t>(what));
    if (len > max_bytes) {
      return make_error("{} at offset {}: length {} exceeds the limit of {} bytes", what, at, len, max_bytes);
    }
    if (len > remaining()) {
      return make_error("{} at offset {}: length {} runs past the end of the file ({} bytes remain)", what, at, len,
                        remaining());
    }
    std::string s(reinterpret_cast<const char*>(bytes_.data() + offset_), len);
    offset_ += len;
    return s;
  }

 private:
  std::span<const uint8_t> bytes_;
  uint64_t offset_ = 0;
};

// The GGUF spec: "tensor names are at most 64 bytes" (ggml's GGML_MAX_NAME). Applies whatever
// ParseOptions::max_tensor_name_bytes says, which can only lower it.
constexpr uint64_t kGgufMaxTensorNameBytes = 64;

// Smallest number of bytes one element of `type` occupies in the file.
uint64_t min_element_bytes(ValueType type) {
  if (type == ValueType::String) return 8;  // u64 length
  if (type == ValueType::Array) return 12;  // u32 type + u64 count
  return scalar_size(type);
}

}  // namespace

class Reader {
 public:
  Reader(std::span<const uint8_t> bytes, const ParseOptions& limits) : bytes_(bytes), cur_(bytes), options_(limits) {}

  Expected<GgufFile> run(GgufFile file) {
    file.bytes_ = bytes();
    BITNET_RETURN_IF_ERROR(read_header(file));
    BITNET_RETURN_IF_ERROR(read_metadata(file));
    BITNET_RETURN_IF_ERROR(read_alignment(file));
    BITNET_RETURN_IF_ERROR(read_tensor_infos(file));
    BITNET_RETURN_IF_ERROR(place_tensor_data(file));
    return file;
  }

 private:
  std::span<const uint8_t> bytes() const { return bytes_; }
  Status read_header(GgufFile& file) {
    if (bytes_.size() < 4) return make_error("file is {} bytes, too short for a GGUF header", bytes_.size());
    BITNET_ASSIGN_OR_RETURN(uint32_t magic, cur_.read<uint32_t>("magic"));
    if (magic != kGgufMagic) {
      char shown[5] = {};
      std::memcpy(shown, &magic, 4);
      for (char& c : shown) {
        if (c != 0 && (c < 0x20 || c > 0x7e)) c = '?';
      }
      return make_error("bad magic at offset 0: expected \"GGUF\", found \"{}\" (0x{:08x}); not a GGUF file",
                        std::string(shown, 4), magic);
    }
    BITNET_ASSIGN_OR_RETURN(uint32_t version, cur_.read<uint32_t>("version"));
    if (version == 1) {
      return make_error("GGUF version 1 at offset 4 is not supported (32-bit counts); re-convert the model to v3");
    }
    if (version != 2 && version != 3) {
      const uint32_t swapped = __builtin_bswap32(version);
      if (swapped == 2 || swapped == 3) {
        return make_error(
            "GGUF version field at offset 4 reads {} little-endian: this is a big-endian GGUF v{}, "
            "which is not supported",
            version, swapped);
      }
      return make_error("unsupported GGUF version {} at offset 4 (supported: 2, 3)", version);
    }
    file.version_ = version;
    BITNET_ASSIGN_OR_RETURN(n_tensors_, cur_.read<uint64_t>("tensor count"));
    BITNET_ASSIGN_OR_RETURN(n_kv_, cur_.read<uint64_t>("metadata count"));
    // Each metadata entry takes at least 8 (key length) + 1 (key) + 4 (type) + 1 (value) bytes,
    // each tensor info at least 8 + 1 + 4 + 8 + 4 + 8. Checking both against the bytes that
    // remain bounds every later loop and allocation by the file size.
    constexpr uint64_t kMinKv = 14;
    constexpr uint64_t kMinTensorInfo = 33;
    if (n_tensors_ > cur_.remaining() / kMinTensorInfo) {
      return make_error("tensor count {} at offset 8 is impossible: the {} remaining bytes hold at most {}", n_tensors_,
                        cur_.remaining(), cur_.remaining() / kMinTensorInfo);
    }
    if (n_kv_ > (cur_.remaining() - n_tensors_ * kMinTensorInfo) / kMinKv) {
      return make_error(
          "metadata count {} at offset 16 is impossible: the {} remaining bytes hold at most {} "
          "entries besides {} tensor infos",
          n_kv_, cur_.remaining(), (cur_.remaining() - n_tensors_ * kMinTensorInfo) / kMinKv, n_tensors_);
    }
    return Status::success();
  }

  Status read_metadata(GgufFile& file) {
    file.metadata_.reserve(n_kv_);
    for (uint64_t i = 0; i < n_kv_; ++i) {
      const uint64_t at = cur_.offset();
      const std::string what = fmt::format("key of metadata entry #{}", i);
      BITNET_ASSIGN_OR_RETURN(std::string key, cur_.read_string(what, options_.max_key_bytes));
      if (key.empty()) return make_error("metadata entry #{} at offset {}: empty key", i, at);
      if (file.key_index_.count(key)) {
        return make_error("metadata entry #{} at offset {}: duplicate key '{}'", i, at, key);
      }
      const uint64_t type_at = cur_.offset();
      BITNET_ASSIGN_OR_RETURN(uint32_t type_id, cur_.read<uint32_t>(fmt::format("value type of '{}'", key)));
      if (type_id >= kValueTypeCount) {
        return make_error("metadata '{}': invalid value type {} at offset {}", key, type_id, type_at);
      }
      BITNET_ASSIGN_OR_RETURN(Value value, read_value(static_cast<ValueType>(type_id), key, 0));
      file.key_index_.emplace(key, file.metadata_.size());
      file.metadata_.push_back(KeyValue{std::move(key), std::move(value), at});
    }
    return Status::success();
  }

  Expected<Value> read_value(ValueType type, const std::string& key, uint32_t depth) {
    const uint64_t at = cur_.offset();
    const std::string what = fmt::format("value of '{}'", key);
    switch (type) {
      case ValueType::U8:
        return read_scalar<uint8_t>(what);
      case ValueType::I8:
        return read_scalar<int8_t>(what);
      case ValueType::U16:
        return read_scalar<uint16_t>(what);
      case ValueType::I16:
        return read_scalar<int16_t>(what);
      case ValueType::U32:
        return read_scalar<uint32_t>(what);
      case ValueType::I32:
        return read_scalar<int32_t>(what);
      case ValueType::F32:
        return read_scalar<float>(what);
      case ValueType::U64:
        return read_scalar<uint64_t>(what);
      case ValueType::I64:
        return read_scalar<int64_t>(what);
      case ValueType::F64:
        return read_scalar<double>(what);
      case ValueType::Bool: {
        BITNET_ASSIGN_OR_RETURN(uint8_t b, cur_.read<uint8_t>(what));
        if (b > 1) return make_error("{} at offset {}: bool byte is {}, not 0 or 1", what, at, b);
        return Value(b == 1);
      }
      case ValueType::String: {
        BITNET_ASSIGN_OR_RETURN(std::string s, cur_.read_string(what, options_.max_string_bytes));
        return Value(std::move(s));
      }
      case ValueType::Array: {
        BITNET_ASSIGN_OR_RETURN(Array a, read_array(key, depth + 1));
        return Value(std::move(a));
      }
    }
    return make_error("{} at offset {}: invalid value type", what, at);
  }

  template <class T>
  Expected<Value> read_scalar(std::string_view what) {
    BITNET_ASSIGN_OR_RETURN(T v, cur_.read<T>(what));
    return Value(v);
  }

  Expected<Array> read_array(const std::string& key, uint32_t depth) {
    const uint64_t at = cur_.offset();
    if (depth > options_.max_array_depth) {
      return make_error("metadata '{}': arrays nested deeper than {} at offset {}", key, options_.max_array_depth, at);
    }
    BITNET_ASSIGN_OR_RETURN(uint32_t elem_id, cur_.read<uint32_t>(fmt::format("array type of '{}'", key)));
    if (elem_id >= kValueTypeCount) {
      return make_error("metadata '{}': invalid array element type {} at offset {}", key, elem_id, at);
    }
    const auto elem = static_cast<ValueType>(elem_id);
    const uint64_t count_at = cur_.offset();
    BITNET_ASSIGN_OR_RETURN(uint64_t count, cur_.read<uint64_t>(fmt::format("array count of '{}'", key)));
    const uint64_t min_bytes = min_element_bytes(elem);
    if (count > cur_.remaining() / min_bytes) {
      return make_error(
          "metadata '{}': array count {} at offset {} needs at least {} bytes per {} element, "
          "but only {} bytes remain",
          key, count, count_at, min_bytes, value_type_name(elem), cur_.remaining());
    }
    if (count > options_.max_array_elements - array_elements_) {
      return make_error("metadata '{}': array count {} at offset {} exceeds the limit of {} array elements in all", key,
                        count, count_at, options_.max_array_elements);
    }
    array_elements_ += count;
    if (elem == ValueType::Array) {
      if (count > options_.max_nested_arrays - nested_arrays_) {
        return make_error("metadata '{}': {} nested arrays at offset {} exceed the limit of {} in all", key, count,
                          count_at, options_.max_nested_arrays);
      }
      nested_arrays_ += count;
    }
    Array a;
    a.elem_type = elem;
    if (elem == ValueType::String) {
      a.strings.reserve(count);
      for (uint64_t i = 0; i < count; ++i) {
        BITNET_ASSIGN_OR_RETURN(std::string s,
                                cur_.read_string(fmt::format("'{}'[{}]", key, i), options_.max_string_bytes));
        a.strings.push_back(std::move(s));
      }
    } else if (elem == ValueType::Array) {
      a.arrays.reserve(count);
      for (uint64_t i = 0; i < count; ++i) {
        BITNET_ASSIGN_OR_RETURN(Array inner, read_array(key, depth + 1));
        a.arrays.push_back(std::move(inner));
      }
    } else {
      BITNET_ASSIGN_OR_RETURN(auto raw, cur_.take(count * min_bytes, fmt::format("elements of '{}'", key)));
      if (elem == ValueType::Bool) {
        for (uint64_t i = 0; i < count; ++i) {
          if (raw[i] > 1) {
            return make_error("metadata '{}'[{}] at offset {}: bool byte is {}, not 0 or 1", key, i,
                              cur_.offset() - count + i, raw[i]);
          }
        }
      }
      a.packed.assign(raw.begin(), raw.end());
    }
    return a;
  }

  Status read_alignment(GgufFile& file) {
    auto it = file.key_index_.find("general.alignment");
    if (it == file.key_index_.end()) return Status::success();
    const KeyValue& kv = file.metadata_[it->second];
    const auto* v = std::get_if<uint32_t>(&kv.value.storage());
    if (v == nullptr) {
      return make_error("general.alignment at offset {} has type {}, expected u32", kv.offset,
                        value_type_name(kv.value.type()));
    }
    if (*v == 0 || (*v & (*v - 1)) != 0) {
      return make_error("general.alignment at offset {} is {}: must be a non-zero power of two", kv.offset, *v);
    }
    file.alignment_ = *v;
    return Status::success();
  }

  Status read_tensor_infos(GgufFile& file) {
    // Re-check against what remains now that metadata has been consumed.
    if (n_tensors_ > cur_.remaining() / 33) {
      return make_error("tensor count {} is impossible: the {} bytes after the metadata hold at most {} tensor infos",
                        n_tensors_, cur_.remaining(), cur_.remaining() / 33);
    }
    file.tensors_.reserve(n_tensors_);
    for (uint64_t i = 0; i < n_tensors_; ++i) {
      TensorInfo t;
      t.info_offset = cur_.offset();
      BITNET_ASSIGN_OR_RETURN(t.name,
                              cur_.read_string(fmt::format("name of tensor #{}", i),
                                               std::min(options_.max_tensor_name_bytes, kGgufMaxTensorNameBytes)));
      if (t.name.empty()) return make_error("tensor #{} at offset {}: empty name", i, t.info_offset);
      if (file.tensor_index_.count(t.name)) {
        return make_error("tensor #{} at offset {}: duplicate tensor name '{}'", i, t.info_offset, t.name);
      }
      const std::string label = fmt::format("tensor '{}'", t.name);
      const uint64_t dims_at = cur_.offset();
      BITNET_ASSIGN_OR_RETURN(uint32_t n_dims, cur_.read<uint32_t>(label + " n_dims"));
      if (n_dims == 0 || n_dims > static_cast<uint32_t>(kMaxDims)) {
        return make_error("{}: n_dims {} at offset {} (must be 1..{})", label, n_dims, dims_at, kMaxDims);
      }
      for (uint32_t d = 0; d < n_dims; ++d) {
        const uint64_t ne_at = cur_.offset();
        BITNET_ASSIGN_OR_RETURN(uint64_t ne, cur_.read<uint64_t>(fmt::format("{} ne[{}]", label, d)));
        if (ne == 0) return make_error("{}: ne[{}] at offset {} is 0 (empty tensor)", label, d, ne_at);
        if (ne > (uint64_t{1} << 62))
          return make_error("{}: ne[{}] = {} at offset {} is too large", label, d, ne, ne_at);
        t.ne.push_back(ne);
      }
      const uint64_t type_at = cur_.offset();
      BITNET_ASSIGN_OR_RETURN(uint32_t type_id, cur_.read<uint32_t>(label + " type"));
      const GgmlTypeInfo* info = find_ggml_type(type_id);
      if (info == nullptr) {
        return make_error("{}: unknown ggml type id {} at offset {}", label, type_id, type_at);
      }
      t.type = info->type;
      auto nbytes = ggml_tensor_nbytes(t.type, t.ne);
      if (!nbytes.ok()) {
        return make_error("{} (type {} at offset {}): {}", label, info->name, type_at, nbytes.error().message);
      }
      t.nbytes = *nbytes;
      const uint64_t offset_at = cur_.offset();
      BITNET_ASSIGN_OR_RETURN(t.offset, cur_.read<uint64_t>(label + " data offset"));
      if (t.offset % file.alignment_ != 0 && options_.allow_misaligned_tensors) {
        ++file.misaligned_tensors_;
      } else if (t.offset % file.alignment_ != 0) {
        return make_error("{}: data offset {} at offset {} is not a multiple of the alignment {}", label, t.offset,
                          offset_at, file.alignment_);
      }
      file.tensor_index_.emplace(t.name, file.tensors_.size());
      file.tensors_.push_back(std::move(t));
    }
    return Status::success();
  }

  Status place_tensor_data(GgufFile& file) {
    const uint64_t end_of_infos = cur_.offset();
    const uint64_t padded = (end_of_infos + file.alignment_ - 1) / file.alignment_ * file.alignment_;
    file.data_offset_ = padded;
    if (file.tensors_.empty()) return Status::success();
    if (padded > bytes_.size()) {
      return make_error(
          "tensor data section would start at offset {} (end of tensor infos {} aligned to {}), "
          "past the end of the file ({} bytes)",
          padded, end_of_infos, file.alignment_, bytes_.size());
    }
    const uint64_t data_size = bytes_.size() - padded;
    for (TensorInfo& t : file.tensors_) {
      if (t.offset > data_size || t.nbytes > data_size - t.offset) {
        return make_error(
            "tensor '{}' (info at offset {}): data [{}, {}) of the data section at file offset {} runs "
            "past the end of the file ({} data bytes)",
            t.name, t.info_offset, t.offset, t.offset + t.nbytes, padded, data_size);
      }
      t.data = bytes_.subspan(padded + t.offset, t.nbytes);
    }
    // Overlap check on tensors sorted by offset.
    std::vector<const TensorInfo*> order;
    order.reserve(file.tensors_.size());
    for (const TensorInfo& t : file.tensors_) order.push_back(&t);
    std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < order.size(); ++i) {
      const TensorInfo& prev = *order[i - 1];
      const TensorInfo& next = *order[i];
      if (next.offset < prev.offset + prev.nbytes) {
        return make_error("tensor '{}' data [{}, {}) overlaps tensor '{}' data [{}, {})", next.name, next.offset,
                          next.offset + next.nbytes, prev.name, prev.offset, prev.offset + prev.nbytes);
      }
    }
    return Status::success();
  }

  std::span<const uint8_t> bytes_;
  Cursor cur_;
  ParseOptions options_;
  uint64_t n_tensors_ = 0;
  uint64_t n_kv_ = 0;
  uint64_t array_elements_ = 0;
  uint64_t nested_arrays_ = 0;
};

uint64_t TensorInfo::element_count() const {
  return checked_element_count(ne).value_or(0);
}

Expected<GgufFile> GgufFile::parse(std::span<const uint8_t> bytes, const ParseOptions& limits) {
  Reader reader(bytes, limits);
  return reader.run(GgufFile{});
}

Expected<GgufFile> GgufFile::open(const std::string& path, const ParseOptions& limits) {
  auto mapping = MappedFile::open(path);
  if (!mapping.ok()) return mapping.error();
  GgufFile file;
  file.mapping_ = *mapping;
  file.path_ = path;
  Reader reader((*mapping)->bytes(), limits);
  auto parsed = reader.run(std::move(file));
  if (!parsed.ok()) return make_error("{}: {}", path, parsed.error().message);
  return parsed;
}

const Value* GgufFile::find(std::string_view key) const {
  auto it = key_index_.find(std::string(key));
  return it == key_index_.end() ? nullptr : &metadata_[it->second].value;
}

const TensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::optional<uint64_t> GgufFile::get_uint(std::string_view key) const {
  const Value* v = find(key);
  return v ? v->as_uint() : std::nullopt;
}

std::optional<double> GgufFile::get_float(std::string_view key) const {
  const Value* v = find(key);
  return v ? v->as_float() : std::nullopt;
}

std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const Value* v = find(key);
  return v ? v->as_bool() : std::nullopt;
}

const std::string* GgufFile::get_string(std::string_view key) const {
  const Value* v = find(key);
  return v ? v->as_string() : nullptr;
}

const Array* GgufFile::get_array(std::string_view key) const {
  const Value* v = find(key);
  return v ? v->as_array() : nullptr;
}

std::string GgufFile::architecture() const {
  const std::string* arch = get_string("general.architecture");
  return arch ? *arch : std::string();
}

}  // namespace bitnet::gguf

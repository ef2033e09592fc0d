// GGUF v3 writer (see gguf_writer.h).
#include "frontend_gguf/gguf_writer.h"

#include "frontend_gguf/output_file.h"

#include <algorithm>
#include <cstring>

namespace bitnet::gguf {
namespace {

// Serialises values into a byte buffer (metadata and tensor infos are small).
class Encoder {
 public:
  // resize + memcpy rather than vector::insert: GCC 12 at -O3 reports a false
  // -Wstringop-overflow for the insert of a small fixed-size range.
  void put_bytes(const void* p, size_t n) {
    const size_t at = out.size();
    out.resize(at + n);
    if (n > 0) std::memcpy(out.data() + at, p, n);
  }
  template <class T>
  void put(T v) {
    put_bytes(&v, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    put_bytes(s.data(), s.size());
  }
  void put_array(const Array& a) {
    put<uint32_t>(static_cast<uint32_t>(a.elem_type));
    put<uint64_t>(a.size());
    if (a.elem_type == ValueType::String) {
      for (const auto& s : a.strings) put_string(s);
    } else if (a.elem_type == ValueType::Array) {
      for (const auto& inner : a.arrays) put_array(inner);
    } else {
      put_bytes(a.packed.data(), a.packed.size());
    }
  }
  void put_value(const Value& v) {
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::string>) {
            put_string(x);
          } else if constexpr (std::is_same_v<T, Array>) {
            put_array(x);
          } else if constexpr (std::is_same_v<T, bool>) {
            put<uint8_t>(x ? 1 : 0);
          } else {
            put<T>(x);
          }
        },
        v.storage());
  }
  std::vector<uint8_t> out;
};

uint64_t align_up(uint64_t n, uint64_t alignment) {
  return (n + alignment - 1) / alignment * alignment;
}

// Arrays written must be well-formed: packed size a multiple of the element width,
// and nested arrays likewise.
Status check_array(const Array& a, const std::string& key) {
  if (static_cast<uint32_t>(a.elem_type) >= kValueTypeCount) return make_error("'{}': invalid array type", key);
  if (a.elem_type == ValueType::Array) {
    for (const auto& inner : a.arrays) BITNET_RETURN_IF_ERROR(check_array(inner, key));
  } else if (a.elem_type != ValueType::String && a.packed.size() % scalar_size(a.elem_type) != 0) {
    return make_error("'{}': packed array bytes are not a multiple of the element size", key);
  }
  return Status::success();
}

}  // namespace

GgufWriter GgufWriter::from_file(const GgufFile& file) {
  GgufWriter w;
  for (const auto& kv : file.metadata()) w.metadata_.push_back(KeyValue{kv.key, kv.value, 0});
  for (const auto& t : file.tensors()) w.tensors_.push_back(TensorToWrite{t.name, t.type, t.ne, t.data});
  return w;
}

void GgufWriter::set(const std::string& key, Value value) {
  for (auto& kv : metadata_) {
    if (kv.key == key) {
      kv.value = std::move(value);
      return;
    }
  }
  metadata_.push_back(KeyValue{key, std::move(value), 0});
}

bool GgufWriter::erase(const std::string& key) {
  for (auto it = metadata_.begin(); it != metadata_.end(); ++it) {
    if (it->key == key) {
      metadata_.erase(it);
      return true;
    }
  }
  return false;
}

const Value* GgufWriter::find(const std::string& key) const {
  for (const auto& kv : metadata_) {
    if (kv.key == key) return &kv.value;
  }
  return nullptr;
}

Status GgufWriter::add_tensor(TensorToWrite tensor) {
  if (tensor.name.empty()) return make_error("tensor with an empty name");
  // The GGUF spec limits tensor names to 64 bytes; readers (ours included) refuse longer ones.
  constexpr size_t kMaxTensorNameBytes = 64;
  if (tensor.name.size() > kMaxTensorNameBytes) {
    return make_error("tensor name '{}' is {} bytes; GGUF allows at most {}", tensor.name, tensor.name.size(),
                      kMaxTensorNameBytes);
  }
  for (const auto& t : tensors_) {
    if (t.name == tensor.name) return make_error("duplicate tensor name '{}'", tensor.name);
  }
  auto nbytes = ggml_tensor_nbytes(tensor.type, tensor.ne);
  if (!nbytes.ok()) return make_error("tensor '{}': {}", tensor.name, nbytes.error().message);
  if (*nbytes != tensor.data.size()) {
    return make_error("tensor '{}': {} data bytes given, type {} with this shape needs {}", tensor.name,
                      tensor.data.size(), ggml_type_name(tensor.type), *nbytes);
  }
  tensors_.push_back(std::move(tensor));
  return Status::success();
}

Expected<uint64_t> GgufWriter::alignment() const {
  const Value* v = find("general.alignment");
  if (v == nullptr) return kDefaultAlignment;
  const auto* a = std::get_if<uint32_t>(&v->storage());
  if (a == nullptr) return make_error("general.alignment must be a u32, got {}", value_type_name(v->type()));
  if (*a == 0 || (*a & (*a - 1)) != 0) return make_error("general.alignment {} is not a power of two", *a);
  return uint64_t{*a};
}

Status GgufWriter::write_to(const Sink& sink) const {
  BITNET_ASSIGN_OR_RETURN(const uint64_t alignment, alignment());
  Encoder head;
  head.put<uint32_t>(kGgufMagic);
  head.put<uint32_t>(3);
  head.put<uint64_t>(tensors_.size());
  head.put<uint64_t>(metadata_.size());
  for (const auto& kv : metadata_) {
    if (kv.key.empty()) return make_error("metadata with an empty key");
    if (const Array* a = kv.value.as_array()) BITNET_RETURN_IF_ERROR(check_array(*a, kv.key));
    head.put_string(kv.key);
    head.put<uint32_t>(static_cast<uint32_t>(kv.value.type()));
    head.put_value(kv.value);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    head.put_string(t.name);
    head.put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (uint64_t d : t.ne) head.put<uint64_t>(d);
    head.put<uint32_t>(static_cast<uint32_t>(t.type));
    head.put<uint64_t>(offset);
    offset = align_up(offset + t.data.size(), alignment);
  }
  if (!tensors_.empty()) head.out.resize(align_up(head.out.size(), alignment), 0);
  BITNET_RETURN_IF_ERROR(sink(head.out.data(), head.out.size()));
  static const std::vector<uint8_t> zeros(4096, 0);
  for (const auto& t : tensors_) {
    BITNET_RETURN_IF_ERROR(sink(t.data.data(), t.data.size()));
    // Like llama.cpp and gguf-py, every tensor (the last one too) is padded to the alignment.
    uint64_t pad = align_up(t.data.size(), alignment) - t.data.size();
    while (pad > 0) {
      const uint64_t n = std::min<uint64_t>(pad, zeros.size());
      BITNET_RETURN_IF_ERROR(sink(zeros.data(), n));
      pad -= n;
    }
  }
  return Status::success();
}

Expected<std::vector<uint8_t>> GgufWriter::to_bytes() const {
  std::vector<uint8_t> out;
  BITNET_RETURN_IF_ERROR(write_to([&](const void* data, size_t size) {
    const auto* p = static_cast<const uint8_t*>(data);
    out.insert(out.end(), p, p + size);
    return Status::success();
  }));
  return out;
}

Status GgufWriter::write_file_atomic(const std::string& path) const {
  // output_file.h: temp file + rename for a regular file (in whole 4 MiB writes, which keep the
  // page cache in huge folios for a reader's mmap), direct writes for a device or FIFO.
  return write_output_file(path, [&](OutputFile& out) {
    return write_to([&](const void* data, size_t size) { return out.write(data, size); });
  });
}

}  // namespace bitnet::gguf

// Safetensors reading and validation (see safetensors.h).
#include "convert/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <set>

namespace bitnet::convert {
namespace {

using nlohmann::json;

struct DtypeRow {
  StDtype dtype;
  std::string_view name;  // as the header spells it
  size_t size;
};

constexpr DtypeRow kDtypes[] = {
    {StDtype::kF64, "F64", 8}, {StDtype::kF32, "F32", 4},   {StDtype::kF16, "F16", 2}, {StDtype::kBF16, "BF16", 2},
    {StDtype::kI64, "I64", 8}, {StDtype::kI32, "I32", 4},   {StDtype::kI16, "I16", 2}, {StDtype::kI8, "I8", 1},
    {StDtype::kU8, "U8", 1},   {StDtype::kBool, "BOOL", 1},
};

const DtypeRow* find_dtype(std::string_view name) {
  for (const auto& row : kDtypes) {
    if (row.name == name) return &row;
  }
  return nullptr;
}

std::optional<uint64_t> as_u64(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
  return std::nullopt;
}

Expected<StTensor> parse_entry(const std::string& name, const json& entry, std::span<const uint8_t> data,
                               const std::string& file) {
  auto bad = [&](std::string_view why) { return make_error("{}: tensor '{}': {}", file, name, why); };
  if (!entry.is_object()) return bad("header entry is not an object");
  if (!entry.contains("dtype") || !entry["dtype"].is_string()) return bad("no dtype");
  const DtypeRow* dtype = find_dtype(entry["dtype"].get<std::string>());
  if (dtype == nullptr) return bad(fmt::format("unknown dtype '{}'", entry["dtype"].get<std::string>()));
  if (!entry.contains("shape") || !entry["shape"].is_array()) return bad("no shape");
  if (!entry.contains("data_offsets") || !entry["data_offsets"].is_array() || entry["data_offsets"].size() != 2)
    return bad("data_offsets must be [begin, end]");
  StTensor t;
  t.name = name;
  t.dtype = dtype->dtype;
  t.file = file;
  if (entry["shape"].size() > 8) return bad("more than 8 dimensions");
  uint64_t elements = 1;
  for (const json& d : entry["shape"]) {
    const auto dim = as_u64(d);
    if (!dim) return bad("shape holds a value that is not a non-negative integer");
    if (*dim != 0 && elements > UINT64_MAX / *dim) return bad("element count overflows");
    elements *= *dim;
    t.shape.push_back(*dim);
  }
  const auto begin = as_u64(entry["data_offsets"][0]);
  const auto end = as_u64(entry["data_offsets"][1]);
  if (!begin || !end) return bad("data_offsets are not non-negative integers");
  if (*begin > *end) return bad(fmt::format("data_offsets [{}, {}] run backwards", *begin, *end));
  if (*end > data.size()) {
    return bad(fmt::format("data_offsets [{}, {}] run past the end of the data ({} bytes): truncated file?", *begin,
                           *end, data.size()));
  }
  if (elements > UINT64_MAX / dtype->size || *end - *begin != elements * dtype->size) {
    return bad(fmt::format("{} bytes for {} elements of {} (expected {})", *end - *begin, elements, dtype->name,
                           elements * dtype->size));
  }
  t.data = data.subspan(*begin, *end - *begin);
  return t;
}

}  // namespace

std::string_view st_dtype_name(StDtype dtype) {
  for (const auto& row : kDtypes) {
    if (row.dtype == dtype) return row.name;
  }
  return "?";
}

size_t st_dtype_size(StDtype dtype) {
  for (const auto& row : kDtypes) {
    if (row.dtype == dtype) return row.size;
  }
  return 0;
}

uint64_t StTensor::elements() const {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;  // checked against overflow when parsed
  return n;
}

Expected<std::vector<StTensor>> parse_safetensors_header(std::string_view json_text, std::span<const uint8_t> data,
                                                         const std::string& file_name,
                                                         std::map<std::string, std::string>* metadata) {
  // nlohmann::json keeps the last of duplicate keys silently; a callback sees every key.
  std::set<std::string> seen;
  std::string duplicate;
  const json::parser_callback_t on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && duplicate.empty()) {
      const std::string key = parsed.get<std::string>();
      if (!seen.insert(key).second) duplicate = key;
    }
    return true;
  };
  json header = json::parse(json_text.begin(), json_text.end(), on_event, /*allow_exceptions=*/false);
  if (header.is_discarded()) return make_error("{}: the header is not valid JSON", file_name);
  if (!duplicate.empty()) return make_error("{}: tensor name '{}' appears twice in the header", file_name, duplicate);
  if (!header.is_object()) return make_error("{}: the header is not a JSON object", file_name);

  std::vector<StTensor> tensors;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return make_error("{}: __metadata__ is not an object", file_name);
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) return make_error("{}: __metadata__ value '{}' is not a string", file_name, key);
        if (metadata != nullptr) (*metadata)[key] = value.get<std::string>();
      }
      continue;
    }
    if (name.empty()) return make_error("{}: a tensor has an empty name", file_name);
    BITNET_ASSIGN_OR_RETURN(StTensor t, parse_entry(name, entry, data, file_name));
    tensors.push_back(std::move(t));
  }
  // Two tensors must never share bytes (the format lays them out back to back).
  std::vector<const StTensor*> by_offset;
  for (const auto& t : tensors) {
    if (!t.data.empty()) by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const StTensor* a, const StTensor* b) { return a->data.data() < b->data.data(); });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const StTensor& prev = *by_offset[i - 1];
    if (prev.data.data() + prev.data.size() > by_offset[i]->data.data()) {
      return make_error("{}: tensors '{}' and '{}' overlap", file_name, prev.name, by_offset[i]->name);
    }
  }
  return tensors;
}

Expected<std::vector<StTensor>> parse_safetensors(std::span<const uint8_t> bytes, const std::string& file_name,
                                                  std::map<std::string, std::string>* metadata) {
  if (bytes.size() < 8) return make_error("{}: {} bytes is too short for a safetensors file", file_name, bytes.size());
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];  // little-endian
  if (header_size > kMaxSafetensorsHeader) {
    return make_error("{}: header of {} bytes is larger than the format's limit of {} bytes", file_name, header_size,
                      kMaxSafetensorsHeader);
  }
  if (header_size > bytes.size() - 8) {
    return make_error("{}: header of {} bytes runs past the end of the file ({} bytes)", file_name, header_size,
                      bytes.size());
  }
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8), header_size);
  return parse_safetensors_header(text, bytes.subspan(8 + header_size), file_name, metadata);
}

Expected<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  BITNET_ASSIGN_OR_RETURN(auto mapped, gguf::MappedFile::open(path));
  SafetensorsFile f;
  f.path_ = path;
  BITNET_ASSIGN_OR_RETURN(f.tensors_, parse_safetensors(mapped->bytes(), path, &f.metadata_));
  f.file_ = std::move(mapped);
  return f;
}

const StTensor* SafetensorsFile::find(std::string_view name) const {
  for (const auto& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

}  // namespace bitnet::convert

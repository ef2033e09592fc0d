// .npy reader (see npy.h): magic, version, header length, a Python-dict header, raw data.
#include "npy.h"

#include <cstring>
#include <fstream>
#include <iterator>

namespace bitnet::testing {
namespace {

// The value text after 'key': in the header dict, e.g. "'<f4'" or "(16, 256)".
std::string dict_value(const std::string& header, const std::string& key) {
  const size_t at = header.find("'" + key + "'");
  if (at == std::string::npos) return {};
  size_t start = header.find(':', at);
  if (start == std::string::npos) return {};
  ++start;
  while (start < header.size() && header[start] == ' ') ++start;
  size_t end = start;
  if (end < header.size() && header[end] == '(') {
    end = header.find(')', start);
    return end == std::string::npos ? std::string{} : header.substr(start, end - start + 1);
  }
  while (end < header.size() && header[end] != ',' && header[end] != '}') ++end;
  return header.substr(start, end - start);
}

}  // namespace

int64_t NpyArray::size() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Expected<NpyArray> read_npy(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("{}: cannot open", path.string());
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0)
    return make_error("{}: not a .npy file", path.string());
  const auto major = static_cast<uint8_t>(bytes[6]);
  size_t header_len = 0;
  size_t header_start = 0;
  if (major == 1) {
    header_len = static_cast<uint8_t>(bytes[8]) | (static_cast<size_t>(static_cast<uint8_t>(bytes[9])) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return make_error("{}: truncated header", path.string());
    for (int i = 0; i < 4; ++i) header_len |= static_cast<size_t>(static_cast<uint8_t>(bytes[8 + i])) << (8 * i);
    header_start = 12;
  } else {
    return make_error("{}: unsupported .npy version {}", path.string(), major);
  }
  if (bytes.size() < header_start + header_len) return make_error("{}: truncated header", path.string());
  const std::string header(bytes.data() + header_start, header_len);

  NpyArray array;
  const std::string descr = dict_value(header, "descr");
  if (descr == "'<f4'") {
    array.dtype = "<f4";
  } else if (descr == "'<i4'") {
    array.dtype = "<i4";
  } else {
    return make_error("{}: unsupported dtype {}", path.string(), descr);
  }
  if (dict_value(header, "fortran_order") != "False")
    return make_error("{}: Fortran order is not supported", path.string());
  const std::string shape = dict_value(header, "shape");
  if (shape.size() < 2) return make_error("{}: no shape", path.string());
  int64_t value = -1;
  for (char c : shape.substr(1)) {
    if (c >= '0' && c <= '9') {
      value = (value < 0 ? 0 : value * 10) + (c - '0');
    } else if (value >= 0) {
      array.shape.push_back(value);
      value = -1;
    }
  }

  const size_t data_start = header_start + header_len;
  const auto n = static_cast<size_t>(array.size());
  if (bytes.size() - data_start < n * 4) return make_error("{}: data is shorter than shape says", path.string());
  if (array.dtype == "<f4") {
    array.f32.resize(n);
    std::memcpy(array.f32.data(), bytes.data() + data_start, n * 4);
  } else {
    array.i32.resize(n);
    std::memcpy(array.i32.data(), bytes.data() + data_start, n * 4);
  }
  return array;
}

}  // namespace bitnet::testing

// .npy writer (see npy.h): magic, version 1.0, a little-endian header dict padded so the
// data starts on a 64-byte boundary, then the raw little-endian floats.
#include "runtime/npy.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace bitnet::runtime {

Status write_npy_f32(const std::string& path, std::span<const float> data, const std::vector<int64_t>& shape) {
  int64_t count = 1;
  std::string dims;
  for (int64_t d : shape) {
    count *= d;
    dims += fmt::format("{}, ", d);
  }
  if (shape.size() > 1) dims.resize(dims.size() - 2);  // "(2, 3)" but "(5,)"
  if (count != static_cast<int64_t>(data.size())) return make_error("npy: shape does not match {} values", data.size());
  std::string header = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}), }}", dims);
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return make_error("cannot create '{}': {}", path, std::strerror(errno));
  const uint16_t header_len = static_cast<uint16_t>(header.size());
  const char magic[8] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
  bool ok = std::fwrite(magic, 1, 8, f) == 8 && std::fwrite(&header_len, 2, 1, f) == 1 &&
            std::fwrite(header.data(), 1, header.size(), f) == header.size() &&
            std::fwrite(data.data(), sizeof(float), data.size(), f) == data.size();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) return make_error("write to '{}' failed", path);
  return Status::success();
}

}  // namespace bitnet::runtime

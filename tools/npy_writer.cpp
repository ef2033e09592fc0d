// .npy writer (see npy.h): magic, version 1.0, a little-endian header dict padded so the
// data starts on a 64-byte boundary, then the raw little-endian floats. Written by the rules of
// frontend_gguf/output_file.h (temp file + rename over a regular file, /dev/null written directly).
#include "tools/npy_writer.h"

#include "frontend_gguf/output_file.h"

namespace bitnet::tools {

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
  const uint16_t header_len = static_cast<uint16_t>(header.size());
  const char magic[8] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
  return gguf::write_output_file(path, [&](gguf::OutputFile& out) -> Status {
    BITNET_RETURN_IF_ERROR(out.write(magic, sizeof magic));
    BITNET_RETURN_IF_ERROR(out.write(&header_len, sizeof header_len));
    BITNET_RETURN_IF_ERROR(out.write(header));
    return out.write(data.data(), data.size_bytes());
  });
}

}  // namespace bitnet::tools

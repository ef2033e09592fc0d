// Placing cached files into a user's directory (see local_dir.h).
#include "hub/local_dir.h"

#include "frontend_gguf/output_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include <unistd.h>

namespace bitnet::hub {
namespace fs = std::filesystem;

Expected<std::string> place_in_dir(const std::string& cached_path, const std::string& dir, const std::string& file,
                                   PlaceMode mode) {
  const fs::path target = fs::path(dir) / file;
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  if (ec) return make_error("cannot create directory '{}': {}", target.parent_path().string(), ec.message());
  if (fs::is_directory(fs::symlink_status(target, ec))) {
    return make_error("cannot place '{}': it is a directory", target.string());
  }
  const fs::path blob = fs::canonical(cached_path, ec);
  if (ec) return make_error("cannot resolve the cached file '{}': {}", cached_path, ec.message());

  if (mode == PlaceMode::kLink) {
    const std::string temp = target.string() + ".tmp." + std::to_string(::getpid());
    ::unlink(temp.c_str());
    if (::symlink(blob.c_str(), temp.c_str()) != 0 || ::rename(temp.c_str(), target.c_str()) != 0) {
      const int error = errno;
      ::unlink(temp.c_str());
      return make_error("cannot link '{}' to the cache: {}", target.string(), std::strerror(error));
    }
    return target.string();
  }
  // A copy: a symlink there is replaced by the file, not written through.
  if (fs::is_symlink(fs::symlink_status(target, ec))) fs::remove(target, ec);
  std::FILE* in = std::fopen(blob.c_str(), "rb");
  if (in == nullptr) return make_error("cannot read '{}': {}", blob.string(), std::strerror(errno));
  Status written = gguf::write_output_file(target.string(), [&](gguf::OutputFile& out) -> Status {
    std::vector<char> buffer(1 << 20);
    size_t n = 0;
    while ((n = std::fread(buffer.data(), 1, buffer.size(), in)) > 0)
      BITNET_RETURN_IF_ERROR(out.write(buffer.data(), n));
    if (std::ferror(in)) return make_error("cannot read '{}'", blob.string());
    return Status::success();
  });
  std::fclose(in);
  if (!written.ok()) return written.error();
  return target.string();
}

}  // namespace bitnet::hub

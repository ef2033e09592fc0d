// Atomic writes and memoised content hashes (see plan_files.h).
#include "runtime/plan_files.h"

#include "frontend_gguf/mapped_file.h"
#include "frontend_gguf/output_file.h"
#include "runtime/progress.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>

namespace bitnet::runtime {

Status write_file_atomically(const std::string& path, std::span<const std::span<const uint8_t>> parts) {
  return gguf::write_output_file(path, [&](gguf::OutputFile& out) -> Status {
    for (auto part : parts) BITNET_RETURN_IF_ERROR(out.write(part));
    return Status::success();
  });
}

std::string FileFingerprint::text() const {
  return fmt::format("{} {} {} {} {}", device, inode, size, mtime_ns, ctime_ns);
}

Expected<FileFingerprint> fingerprint_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return make_error("cannot stat '{}': {}", path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return make_error("'{}' is not a regular file", path);
  FileFingerprint f;
  f.device = static_cast<uint64_t>(st.st_dev);
  f.inode = static_cast<uint64_t>(st.st_ino);
  f.size = static_cast<uint64_t>(st.st_size);
  f.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  f.ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec;
  return f;
}

// Whether the file last changed more than a second ago (by the system clock).
static bool settled(const FileFingerprint& fp) {
  timespec now{};
  if (::clock_gettime(CLOCK_REALTIME, &now) != 0) return false;
  const int64_t now_ns = static_cast<int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
  return now_ns - fp.ctime_ns > 1'000'000'000;
}

Expected<Hash128> file_content_hash(const std::string& path, const std::string& memo_dir, const std::string& label,
                                    uint64_t* size) {
  BITNET_ASSIGN_OR_RETURN(FileFingerprint fp, fingerprint_file(path));
  if (size) *size = fp.size;
  // The memo is named by the fingerprint and repeats it inside, so a name collision is harmless.
  const std::string fp_text = fp.text();
  const std::string memo =
      memo_dir.empty()
          ? ""
          : fmt::format("{}/{}.hash", memo_dir,
                        to_hex(xxh3_64({reinterpret_cast<const uint8_t*>(fp_text.data()), fp_text.size()})));
  if (!memo.empty()) {
    std::ifstream in(memo);
    std::string line, hex;
    if (in && std::getline(in, line) && line == fp_text && std::getline(in, hex)) {
      if (auto h = hash128_from_hex(hex); h.ok()) return *h;
    }
  }
  BITNET_ASSIGN_OR_RETURN(auto mapping, gguf::MappedFile::open(path));
  Progress progress("hashing " + label);
  const Hash128 h = xxh3_128_chunked(mapping->bytes(), [&](double f) { progress.fraction(f); });
  // Remember the hash only if the file did not change while it was read, and only once its
  // last change is a second old: an edit within the timestamp tick of the ctime the memo
  // records would leave ctime as it is (git's "racy" index entries).
  auto after = fingerprint_file(path);
  if (!memo.empty() && after.ok() && after->text() == fp_text && settled(*after)) {
    const std::string text = fp_text + "\n" + to_hex(h) + "\n" + path + "\n";  // the path: for pruning
    const std::span<const uint8_t> part(reinterpret_cast<const uint8_t*>(text.data()), text.size());
    (void)write_file_atomically(memo, std::span(&part, 1));  // best effort: see the header
  }
  return h;
}

bool hash_memo_is_stale(const std::string& memo_file) {
  std::ifstream in(memo_file);
  std::string fp_text, hex, path;
  if (!in || !std::getline(in, fp_text) || !std::getline(in, hex) || !std::getline(in, path)) return true;
  auto fp = fingerprint_file(path);
  return !fp.ok() || fp->text() != fp_text;
}

}  // namespace bitnet::runtime

// Files the plan machinery writes and trusts: atomic writes (temp file, fsync, rename), and
// content hashes of large files memoised under their stat fingerprint, so that a warm start
// does not re-read a 1.2 GB model to learn its hash.
#pragma once

#include "frontend_gguf/output_file.h"
#include "runtime/plan_format.h"

#include <span>
#include <string>
#include <vector>

namespace bitnet::runtime {

// Writes `parts` one after another to `path` by the rules of frontend_gguf/output_file.h: a
// regular file (or nothing) is replaced via a temp file in the same directory, fsync,
// rename over `path`, fsync the directory. Readers see the old file or the whole new one,
// never a part; of two concurrent writers the last rename wins and both files are whole. A
// device or FIFO is written directly; a directory, dangling symlink, socket ... is refused.
Status write_file_atomically(const std::string& path, std::span<const std::span<const uint8_t>> parts);

// What identifies a file's contents without reading them: device, inode, size, and the
// modification and status-change times in nanoseconds. A rewrite changes the inode; an
// in-place edit changes mtime and ctime, and ctime cannot be set back (`touch -d` restores
// mtime but sets ctime to now). What it cannot see: an edit within one timestamp tick of the
// ctime it recorded, a clock set back, a file system that does not keep ctime.
struct FileFingerprint {
  uint64_t device = 0;
  uint64_t inode = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  std::string text() const;  // "dev ino size mtime_ns ctime_ns"
};
Expected<FileFingerprint> fingerprint_file(const std::string& path);

// xxh3-128 of the whole file. With a non-empty `memo_dir` the result is remembered there under
// the file's fingerprint and reused while the fingerprint is unchanged (a memo that cannot be
// written is skipped silently: the hash is still right, only slower next time). `label` names
// the file in the terminal progress line; `size` receives the file size.
Expected<Hash128> file_content_hash(const std::string& path, const std::string& memo_dir, const std::string& label,
                                    uint64_t* size = nullptr);

// Whether a memo file of file_content_hash no longer describes its file (changed, gone, or
// unreadable), so pruning may drop it.
bool hash_memo_is_stale(const std::string& memo_file);

using gguf::dir_of;        // "dir/x.bnplan" -> "dir" ("." for a bare name)
using gguf::file_name_of;  // "dir/x.bnplan" -> "x.bnplan"

}  // namespace bitnet::runtime

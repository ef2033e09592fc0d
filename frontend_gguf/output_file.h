// Writing a file at a user-named output path (gen-model -o, compile -o, compat-fix OUT,
// eval --logits-out, --json-out, plans and their sidecars). Every such writer goes through
// OutputFile, so that what is at the path decides how it is written, by these rules:
//
//  - nothing there, or a regular file: the bytes go to a new temp file in the same directory
//    (".NAME.tmp.PID.RANDOM", created with O_EXCL), which is fsynced and renamed over the path,
//    and then the directory is fsynced. Readers see the old file or the whole new one; a failed
//    write leaves the old file (or nothing) and no temp file behind. An existing file's
//    permission bits are kept. A missing directory is an error, never created.
//  - a symlink: the rules apply to what it finally points to. A symlink to a regular file
//    stays a symlink and its target is replaced (the temp file goes in the target's directory);
//    a symlink to a device or FIFO writes to that device or FIFO. A dangling symlink is refused
//    (the file it names is not created).
//  - a character device (/dev/null, /dev/full, a tty) or a FIFO: opened for writing without
//    O_CREAT or O_TRUNC and written directly; every write error is reported (/dev/full gives
//    "No space left on device", a reader that went away "Broken pipe"; SIGPIPE is not raised).
//    A FIFO that no process has open for reading is refused at once instead of waiting.
//  - a directory, a socket, a block device or anything else: refused.
//
// Files derived from an output's name (compat-fix's OUT.compat.json, a plan's PLAN.weights) are
// written only beside a regular-file output: callers ask output_kind() first and skip them for
// a device or FIFO.
//
// Errors are values naming the path and the reason; nothing throws or exits.
#pragma once

#include "ir/support/expected.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet::gguf {

enum class OutputKind {
  kRegularFile,  // absent or a regular file (maybe behind symlinks): temp file + rename
  kStream,       // a character device or a FIFO (maybe behind symlinks): written directly
};

// How `path` would be written, or why it is refused (a directory, a dangling symlink, ...).
// Opens nothing and creates nothing.
Expected<OutputKind> output_kind(const std::string& path);

// An output being written. Writes are buffered and reach the file in whole 4 MiB chunks at
// multiples of 4 MiB (the page cache then holds a regular file in 2 MiB folios, which a
// reader's mmap maps as huge pages; smaller writes leave 4 KiB-page mappings, ~14 % slower to
// stream for a decoder that reads every weight per token). Nothing is visible at the path of a
// regular-file output before commit(); destroying an uncommitted OutputFile removes its temp
// file. The first error sticks: later writes and commit() return it.
class OutputFile {
 public:
  static Expected<OutputFile> open(const std::string& path);

  OutputFile(OutputFile&& other) noexcept;
  OutputFile& operator=(OutputFile&& other) noexcept;
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  ~OutputFile();

  OutputKind kind() const { return kind_; }
  bool is_regular_file() const { return kind_ == OutputKind::kRegularFile; }
  const std::string& path() const { return path_; }  // as given

  Status write(const void* data, size_t size);
  Status write(std::span<const uint8_t> bytes) { return write(bytes.data(), bytes.size()); }
  Status write(std::string_view text) { return write(text.data(), text.size()); }

  // Flushes the buffer; for a regular file fsyncs, renames the temp file over the target and
  // fsyncs the directory. Must be called once, after the last write.
  Status commit();

 private:
  OutputFile() = default;
  Status flush_buffer();
  Status write_fd(const uint8_t* data, size_t size);
  Status fail(Error error);
  void discard();

  std::string path_;    // as given, for messages
  std::string target_;  // the file replaced (symlinks resolved) or the device/FIFO opened
  std::string temp_;    // regular files: the temp file being written
  OutputKind kind_ = OutputKind::kRegularFile;
  int fd_ = -1;
  std::vector<uint8_t> buffer_;
  Status status_;
  bool committed_ = false;
};

// Opens `path`, runs `write` on it and commits; on any error the output is discarded (a regular
// file keeps its old content).
Status write_output_file(const std::string& path, const std::function<Status(OutputFile&)>& write);

// Path parts as the writers use them: "dir/x.bnplan" -> "x.bnplan" and "dir" ("." for a bare
// name, "/" at the root).
std::string file_name_of(const std::string& path);
std::string dir_of(const std::string& path);

// Whether two paths name the same file (the same inode, or for paths that do not exist yet the
// same canonical path): an output that would overwrite its own input is refused with this.
bool same_file(const std::string& a, const std::string& b);

}  // namespace bitnet::gguf

// Writing user-named output paths (see output_file.h for the rules).
#include "frontend_gguf/output_file.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <utility>

namespace bitnet::gguf {
namespace {

constexpr size_t kChunk = size_t{4} << 20;

std::string errno_text(int e) {
  return std::strerror(e);
}

// What a non-regular, non-writable kind of file is called in a refusal.
std::string refusal(const std::string& path, mode_t mode) {
  if (S_ISDIR(mode)) return fmt::format("cannot write '{}': it is a directory; give a file path", path);
  if (S_ISBLK(mode)) return fmt::format("cannot write '{}': it is a block device; refusing to overwrite it", path);
  if (S_ISSOCK(mode)) return fmt::format("cannot write '{}': it is a socket; refusing to write to it", path);
  return fmt::format("cannot write '{}': it is not a regular file, character device or FIFO; refusing", path);
}

struct Resolved {
  OutputKind kind = OutputKind::kRegularFile;
  std::string target;  // regular: the file to replace (symlinks resolved); stream: the path to open
  bool exists = false;
  mode_t mode = 0;
};

Expected<Resolved> resolve(const std::string& path) {
  if (path.empty()) return make_error("cannot write an output file: the path is empty");
  if (path.back() == '/') return make_error("cannot write '{}': the path names a directory; give a file path", path);
  struct stat lst {};
  if (::lstat(path.c_str(), &lst) != 0) {
    if (errno == ENOENT) return Resolved{OutputKind::kRegularFile, path, false, 0};
    return make_error("cannot write '{}': {}", path, errno_text(errno));
  }
  struct stat st = lst;
  std::string target = path;
  if (S_ISLNK(lst.st_mode)) {
    if (::stat(path.c_str(), &st) != 0) {
      const int e = errno;
      if (e == ENOENT) {
        std::string to(4096, '\0');
        const ssize_t n = ::readlink(path.c_str(), to.data(), to.size());
        to.resize(n > 0 ? static_cast<size_t>(n) : 0);
        return make_error(
            "cannot write '{}': it is a symlink to '{}', which does not exist (a dangling symlink is not followed "
            "to create a file)",
            path, to);
      }
      return make_error("cannot write '{}': {}", path, errno_text(e));
    }
    if (S_ISREG(st.st_mode)) {
      char* real = ::realpath(path.c_str(), nullptr);
      if (real == nullptr)
        return make_error("cannot write '{}': cannot resolve the symlink: {}", path, errno_text(errno));
      target = real;
      std::free(real);
    }
  }
  if (S_ISREG(st.st_mode)) return Resolved{OutputKind::kRegularFile, target, true, st.st_mode};
  // Devices and FIFOs are opened through the path as given: open() follows the symlinks,
  // including /proc's (/dev/stdout -> /proc/self/fd/1 -> a pipe).
  if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) return Resolved{OutputKind::kStream, path, true, st.st_mode};
  return Error{refusal(path, st.st_mode)};
}

// Blocks SIGPIPE on this thread while a write to a pipe runs, so that a reader that went away
// is the error EPIPE rather than the death of the process, and swallows the SIGPIPE raised.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
  }
  ~SigpipeBlock() {
    if (!was_pending_) {
      sigset_t pending;
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        const timespec zero{};
        (void)sigtimedwait(&set_, nullptr, &zero);
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

 private:
  sigset_t set_{};
  sigset_t old_{};
  bool was_pending_ = false;
};

}  // namespace

Expected<OutputKind> output_kind(const std::string& path) {
  BITNET_ASSIGN_OR_RETURN(const Resolved r, resolve(path));
  return r.kind;
}

Expected<OutputFile> OutputFile::open(const std::string& path) {
  BITNET_ASSIGN_OR_RETURN(const Resolved r, resolve(path));
  OutputFile f;
  f.path_ = path;
  f.target_ = r.target;
  f.kind_ = r.kind;
  if (r.kind == OutputKind::kRegularFile) {
    const std::string dir = dir_of(r.target);
    std::random_device rd;
    for (int attempt = 0; f.fd_ < 0; ++attempt) {
      f.temp_ = fmt::format("{}/.{}.tmp.{}.{:08x}", dir, file_name_of(r.target), ::getpid(), rd());
      f.fd_ = ::open(f.temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (f.fd_ < 0 && (errno != EEXIST || attempt == 15)) {
        const int e = errno;
        f.temp_.clear();
        return make_error("cannot write '{}': cannot create a temp file in '{}': {}", path, dir, errno_text(e));
      }
    }
    // The replaced file's permission bits are kept (best effort: a failure only leaves 0644).
    if (r.exists) (void)::fchmod(f.fd_, r.mode & 0777);
    return f;
  }
  // A FIFO with no reader: O_NONBLOCK makes open() fail with ENXIO instead of waiting for one.
  const bool fifo = S_ISFIFO(r.mode);
  f.fd_ = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY | (fifo ? O_NONBLOCK : 0));
  if (f.fd_ < 0) {
    if (fifo && errno == ENXIO) {
      return make_error("cannot write '{}': it is a FIFO and no process is reading it (start the reader first)", path);
    }
    return make_error("cannot open '{}' for writing: {}", path, errno_text(errno));
  }
  struct stat st {};
  if (::fstat(f.fd_, &st) != 0) return make_error("cannot write '{}': {}", path, errno_text(errno));
  if (!S_ISCHR(st.st_mode) && !S_ISFIFO(st.st_mode)) {
    // It changed between the check and the open; never write a regular file in place.
    return make_error("cannot write '{}': it changed while being opened; refusing", path);
  }
  if (fifo) {
    const int flags = ::fcntl(f.fd_, F_GETFL);
    if (flags < 0 || ::fcntl(f.fd_, F_SETFL, flags & ~O_NONBLOCK) != 0) {
      return make_error("cannot write '{}': {}", path, errno_text(errno));
    }
  }
  return f;
}

OutputFile::OutputFile(OutputFile&& other) noexcept {
  *this = std::move(other);
}

OutputFile& OutputFile::operator=(OutputFile&& other) noexcept {
  if (this != &other) {
    if (!committed_) discard();
    path_ = std::move(other.path_);
    target_ = std::move(other.target_);
    temp_ = std::exchange(other.temp_, std::string());
    kind_ = other.kind_;
    fd_ = std::exchange(other.fd_, -1);
    buffer_ = std::move(other.buffer_);
    status_ = std::move(other.status_);
    committed_ = std::exchange(other.committed_, true);
  }
  return *this;
}

OutputFile::~OutputFile() {
  if (!committed_) discard();
}

void OutputFile::discard() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!temp_.empty()) ::unlink(temp_.c_str());
  temp_.clear();
  buffer_.clear();
}

Status OutputFile::fail(Error error) {
  status_ = error;
  return error;
}

Status OutputFile::write_fd(const uint8_t* data, size_t size) {
  std::optional<SigpipeBlock> block;
  if (kind_ == OutputKind::kStream) block.emplace();
  while (size > 0) {
    const ssize_t n = ::write(fd_, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(make_error("cannot write '{}': {}", path_, errno_text(errno)));
    if (n == 0) return fail(make_error("cannot write '{}': the write made no progress", path_));
    data += n;
    size -= static_cast<size_t>(n);
  }
  return Status::success();
}

Status OutputFile::flush_buffer() {
  if (buffer_.empty()) return Status::success();
  BITNET_RETURN_IF_ERROR(write_fd(buffer_.data(), buffer_.size()));
  buffer_.clear();
  return Status::success();
}

Status OutputFile::write(const void* data, size_t size) {
  if (!status_.ok()) return status_;
  if (committed_ || fd_ < 0) return fail(make_error("cannot write '{}': the output is closed", path_));
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    if (buffer_.empty() && size >= kChunk) {  // whole chunks straight from the caller's memory
      BITNET_RETURN_IF_ERROR(write_fd(p, kChunk));
      p += kChunk;
      size -= kChunk;
      continue;
    }
    if (buffer_.capacity() < kChunk) buffer_.reserve(kChunk);
    const size_t n = std::min(size, kChunk - buffer_.size());
    buffer_.insert(buffer_.end(), p, p + n);
    p += n;
    size -= n;
    if (buffer_.size() == kChunk) BITNET_RETURN_IF_ERROR(flush_buffer());
  }
  return Status::success();
}

Status OutputFile::commit() {
  if (committed_) return make_error("cannot write '{}': the output was already committed", path_);
  Status status = status_;
  if (status.ok() && fd_ < 0) status = make_error("cannot write '{}': the output is closed", path_);
  if (status.ok()) status = flush_buffer();
  if (status.ok() && kind_ == OutputKind::kRegularFile && ::fsync(fd_) != 0) {
    status = make_error("cannot write '{}': fsync failed: {}", path_, errno_text(errno));
  }
  if (fd_ >= 0) {
    const int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0 && status.ok()) status = make_error("cannot write '{}': close failed: {}", path_, errno_text(errno));
  }
  if (status.ok() && kind_ == OutputKind::kRegularFile) {
    // rename() replaces whatever is there: make sure it is still a regular file (or nothing).
    struct stat st {};
    if (::lstat(target_.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      status = make_error("cannot write '{}': '{}' stopped being a regular file while it was written; not replaced",
                          path_, target_);
    } else if (::rename(temp_.c_str(), target_.c_str()) != 0) {
      status = make_error("cannot write '{}': cannot rename the temp file '{}' over it: {}", path_, temp_,
                          errno_text(errno));
    } else {
      temp_.clear();
      // The rename is durable only once the directory entry is on disk.
      if (const int dfd = ::open(dir_of(target_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
      }
    }
  }
  if (!status.ok()) {
    status_ = status;
    discard();
  }
  committed_ = true;
  return status;
}

Status write_output_file(const std::string& path, const std::function<Status(OutputFile&)>& write) {
  BITNET_ASSIGN_OR_RETURN(OutputFile file, OutputFile::open(path));
  BITNET_RETURN_IF_ERROR(write(file));  // the destructor removes the temp file
  return file.commit();
}

std::string file_name_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string dir_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  if (std::filesystem::equivalent(a, b, ec)) return true;
  const auto ca = std::filesystem::weakly_canonical(a, ec);
  const auto cb = std::filesystem::weakly_canonical(b, ec);
  return !ec && ca == cb;
}

}  // namespace bitnet::gguf

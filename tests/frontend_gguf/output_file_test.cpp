// The output-file rules (frontend_gguf/output_file.h): a regular file is replaced atomically, a
// symlink keeps pointing at its replaced target, devices and FIFOs are written in place (and
// stay what they are), anything else is refused, and a failed write changes nothing.
//
// The tests write to the real /dev/null and /dev/full, which a broken implementation running as
// root would replace with regular files. So they first write to a FIFO (and, where mknod is
// allowed, a private copy of /dev/null) in a temp dir and touch /dev only when that stayed what it was.
#include "frontend_gguf/output_file.h"

#include "test_support.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
#include <vector>

namespace bitnet::gguf {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<uint8_t>(x >> 24);
  }
  return v;
}

std::string read_text(const fs::path& p) {
  const auto bytes = testing::read_file(p);
  return std::string(bytes.begin(), bytes.end());
}

void write_text(const fs::path& p, const std::string& s) {
  testing::write_file(p, {s.begin(), s.end()});
}

Status write_bytes(const std::string& path, std::span<const uint8_t> bytes) {
  return write_output_file(path, [&](OutputFile& out) { return out.write(bytes); });
}

struct stat lstat_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st;
}

// Names in `dir` (temp files start with '.').
std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Writes `bytes` to the FIFO `path` on another thread while this one reads it; returns what was
// read and the writer's status.
std::pair<std::vector<uint8_t>, Status> through_fifo(const fs::path& path, const std::vector<uint8_t>& bytes) {
  const int rfd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);  // a reader exists from here on
  EXPECT_GE(rfd, 0);
  std::promise<void> opened;
  auto opened_future = opened.get_future();
  std::promise<Status> done;
  auto done_future = done.get_future();
  std::thread writer([&] {
    auto out = OutputFile::open(path.string());
    opened.set_value();
    if (!out.ok()) return done.set_value(out.error());
    Status s = out->write(std::span<const uint8_t>(bytes));
    done.set_value(s.ok() ? out->commit() : s);
  });
  opened_future.wait();  // the writer holds the FIFO open: EOF now means it closed it
  ::fcntl(rfd, F_SETFL, ::fcntl(rfd, F_GETFL) & ~O_NONBLOCK);
  std::vector<uint8_t> got;
  uint8_t buf[65536];
  for (;;) {
    const ssize_t n = ::read(rfd, buf, sizeof buf);
    if (n <= 0) break;
    got.insert(got.end(), buf, buf + n);
  }
  ::close(rfd);
  writer.join();
  return {std::move(got), done_future.get()};
}

// The stream path on something harmless first: a FIFO in a temp dir must still be a FIFO after
// a write, and a private /dev/null node (when mknod works here) still a char device.
bool stream_writes_are_safe() {
  TempDir dir;
  const fs::path fifo = dir / "canary.fifo";
  if (::mkfifo(fifo.c_str(), 0600) != 0) return false;
  auto [got, status] = through_fifo(fifo, pattern(1000, 7));
  if (!status.ok() || got.size() != 1000 || !S_ISFIFO(lstat_of(fifo).st_mode)) return false;
  const fs::path node = dir / "null";
  if (::mknod(node.c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0) {
    if (!write_bytes(node.string(), pattern(1000, 8)).ok()) return false;
    if (!S_ISCHR(lstat_of(node).st_mode)) return false;
  }
  return true;
}

#define REQUIRE_DEV(path)                                                                                 \
  do {                                                                                                    \
    struct stat st_ {};                                                                                   \
    if (::lstat(path, &st_) != 0 || !S_ISCHR(st_.st_mode)) GTEST_SKIP() << path << " absent";             \
    ASSERT_TRUE(stream_writes_are_safe()) << "stream writes replace their target: not touching " << path; \
  } while (0)

TEST(OutputFile, RegularFileIsReplacedAtomically) {
  TempDir dir;
  const fs::path path = dir / "out.bin";
  write_text(path, "old content");
  ::chmod(path.c_str(), 0640);
  const ino_t before = lstat_of(path).st_ino;
  const auto bytes = pattern((size_t{9} << 20) + 123, 1);  // more than two 4 MiB chunks
  auto status = write_output_file(path.string(), [&](OutputFile& out) -> Status {
    EXPECT_TRUE(out.is_regular_file());
    // Odd piece sizes: the buffer must reassemble them.
    size_t at = 0, piece = 1;
    while (at < bytes.size()) {
      const size_t n = std::min(piece, bytes.size() - at);
      BITNET_RETURN_IF_ERROR(out.write(bytes.data() + at, n));
      at += n;
      piece = piece * 3 + 1;
    }
    return Status::success();
  });
  ASSERT_TRUE(status.ok()) << status.error().message;
  const struct stat after = lstat_of(path);
  EXPECT_TRUE(S_ISREG(after.st_mode));
  EXPECT_NE(after.st_ino, before) << "the file must be replaced by a rename, not rewritten in place";
  EXPECT_EQ(after.st_mode & 0777, 0640u) << "the replaced file's permission bits are kept";
  EXPECT_EQ(testing::read_file(path), bytes);
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"out.bin"}) << "no temp file is left";
}

TEST(OutputFile, AbsentFileIsCreatedAndMissingDirectoryIsAnError) {
  TempDir dir;
  ASSERT_TRUE(write_bytes((dir / "new.bin").string(), pattern(10, 2)).ok());
  EXPECT_EQ(testing::read_file(dir / "new.bin"), pattern(10, 2));
  auto missing = write_bytes((dir / "no/such/dir/x.bin").string(), pattern(10, 2));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("x.bin"), std::string::npos) << missing.error().message;
  EXPECT_NE(missing.error().message.find("No such file or directory"), std::string::npos) << missing.error().message;
  EXPECT_FALSE(write_bytes("", pattern(1, 1)).ok());
}

TEST(OutputFile, SymlinkIsKeptAndItsTargetReplaced) {
  TempDir dir;
  fs::create_directories(dir / "a");
  fs::create_directories(dir / "b");
  write_text(dir / "a/target.bin", "old");
  const ino_t before = lstat_of(dir / "a/target.bin").st_ino;
  fs::create_symlink("../a/target.bin", dir / "b/link.bin");
  EXPECT_EQ(output_kind((dir / "b/link.bin").string()).value(), OutputKind::kRegularFile);
  ASSERT_TRUE(write_bytes((dir / "b/link.bin").string(), pattern(5000, 3)).ok());
  EXPECT_TRUE(S_ISLNK(lstat_of(dir / "b/link.bin").st_mode));
  EXPECT_EQ(fs::read_symlink(dir / "b/link.bin"), fs::path("../a/target.bin"));
  EXPECT_NE(lstat_of(dir / "a/target.bin").st_ino, before);
  EXPECT_EQ(testing::read_file(dir / "a/target.bin"), pattern(5000, 3));
  EXPECT_EQ(entries(dir / "a"), std::vector<std::string>{"target.bin"});
  EXPECT_EQ(entries(dir / "b"), std::vector<std::string>{"link.bin"});
}

TEST(OutputFile, DanglingSymlinkIsRefused) {
  TempDir dir;
  fs::create_symlink("nowhere.bin", dir / "link.bin");
  auto s = write_bytes((dir / "link.bin").string(), pattern(10, 4));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("does not exist"), std::string::npos) << s.error().message;
  EXPECT_FALSE(output_kind((dir / "link.bin").string()).ok());
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"link.bin"});
}

TEST(OutputFile, DirectoryIsRefused) {
  TempDir dir;
  fs::create_directories(dir / "d");
  auto s = write_bytes((dir / "d").string(), pattern(10, 5));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("is a directory"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find((dir / "d").string()), std::string::npos) << s.error().message;
  EXPECT_TRUE(fs::is_directory(dir / "d"));
  EXPECT_TRUE(fs::is_empty(dir / "d"));
  EXPECT_FALSE(write_bytes((dir / "d").string() + "/", pattern(10, 5)).ok());
  EXPECT_FALSE(output_kind((dir / "d").string()).ok());
}

TEST(OutputFile, FailedWriteLeavesTheOldFileAndNoTempFile) {
  TempDir dir;
  const fs::path path = dir / "out.bin";
  write_text(path, "old content");
  const ino_t before = lstat_of(path).st_ino;
  auto s = write_output_file(path.string(), [&](OutputFile& out) -> Status {
    BITNET_RETURN_IF_ERROR(out.write(std::span<const uint8_t>(pattern(size_t{5} << 20, 6))));
    return make_error("the producer failed");
  });
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message, "the producer failed");
  EXPECT_EQ(read_text(path), "old content");
  EXPECT_EQ(lstat_of(path).st_ino, before);
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"out.bin"});
  {  // an OutputFile dropped without commit() leaves nothing either
    auto out = OutputFile::open((dir / "never.bin").string());
    ASSERT_TRUE(out.ok());
    ASSERT_TRUE(out->write(std::string_view("partial")).ok());
    EXPECT_EQ(entries(dir.path()).size(), 2u);  // out.bin and the temp file
  }
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"out.bin"});
}

TEST(OutputFile, FifoWithAReaderGetsTheBytes) {
  TempDir dir;
  const fs::path fifo = dir / "pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(output_kind(fifo.string()).value(), OutputKind::kStream);
  const auto bytes = pattern((size_t{9} << 20) + 5, 9);
  auto [got, status] = through_fifo(fifo, bytes);
  ASSERT_TRUE(status.ok()) << status.error().message;
  EXPECT_EQ(got, bytes);
  EXPECT_TRUE(S_ISFIFO(lstat_of(fifo).st_mode));
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"pipe"});
}

TEST(OutputFile, FifoWithoutAReaderIsRefusedAtOnce) {
  TempDir dir;
  const fs::path fifo = dir / "pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // On another thread, so that a regression hangs only until the timeout below.
  auto result = std::async(std::launch::async, [&] { return write_bytes(fifo.string(), pattern(10, 10)); });
  ASSERT_EQ(result.wait_for(std::chrono::seconds(5)), std::future_status::ready) << "the write waits for a reader";
  const Status s = result.get();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("no process is reading"), std::string::npos) << s.error().message;
  EXPECT_TRUE(S_ISFIFO(lstat_of(fifo).st_mode));
}

TEST(OutputFile, ReaderGoingAwayIsAnErrorNotSigpipe) {
  TempDir dir;
  const fs::path fifo = dir / "pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const int rfd = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(rfd, 0);
  auto out = OutputFile::open(fifo.string());
  ASSERT_TRUE(out.ok()) << out.error().message;
  ::close(rfd);  // the only reader leaves
  Status s = out->write(std::span<const uint8_t>(pattern(size_t{5} << 20, 11)));
  if (s.ok()) s = out->commit();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("Broken pipe"), std::string::npos) << s.error().message;
}

TEST(OutputFile, DevNullIsWrittenAndStaysACharDevice) {
  REQUIRE_DEV("/dev/null");
  const struct stat before = lstat_of("/dev/null");
  EXPECT_EQ(output_kind("/dev/null").value(), OutputKind::kStream);
  auto s = write_output_file("/dev/null", [&](OutputFile& out) {
    EXPECT_FALSE(out.is_regular_file());
    return out.write(std::span<const uint8_t>(pattern((size_t{9} << 20) + 1, 12)));
  });
  ASSERT_TRUE(s.ok()) << s.error().message;
  const struct stat after = lstat_of("/dev/null");
  ASSERT_TRUE(S_ISCHR(after.st_mode)) << "/dev/null was replaced: restore it with "
                                         "`rm -f /dev/null; mknod -m 666 /dev/null c 1 3`";
  EXPECT_EQ(after.st_rdev, before.st_rdev);
  EXPECT_EQ(after.st_ino, before.st_ino);
}

TEST(OutputFile, SymlinkToDevNullWritesTheDevice) {
  REQUIRE_DEV("/dev/null");
  TempDir dir;
  fs::create_symlink("/dev/null", dir / "sink");
  EXPECT_EQ(output_kind((dir / "sink").string()).value(), OutputKind::kStream);
  ASSERT_TRUE(write_bytes((dir / "sink").string(), pattern(100, 13)).ok());
  EXPECT_TRUE(S_ISLNK(lstat_of(dir / "sink").st_mode));
  EXPECT_TRUE(S_ISCHR(lstat_of("/dev/null").st_mode));
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"sink"});
}

TEST(OutputFile, DevFullReportsNoSpace) {
  REQUIRE_DEV("/dev/full");
  const struct stat before = lstat_of("/dev/full");
  auto s = write_bytes("/dev/full", pattern(100, 14));  // smaller than a chunk: fails at commit
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("/dev/full"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("No space left on device"), std::string::npos) << s.error().message;
  auto big = write_bytes("/dev/full", pattern(size_t{5} << 20, 15));  // fails in write()
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.error().message.find("No space left on device"), std::string::npos) << big.error().message;
  const struct stat after = lstat_of("/dev/full");
  ASSERT_TRUE(S_ISCHR(after.st_mode)) << "/dev/full was replaced: restore it with "
                                         "`rm -f /dev/full; mknod -m 666 /dev/full c 1 7`";
  EXPECT_EQ(after.st_rdev, before.st_rdev);
}

}  // namespace
}  // namespace bitnet::gguf

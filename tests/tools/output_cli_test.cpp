// Output paths through the real binary (frontend_gguf/output_file.h): gen-model -o, compat-fix
// OUT, compile -o, run --json-out and eval --logits-out write a device or FIFO in place, keep a
// symlink, refuse a directory, and fail with exit 1 and a message naming the path and the reason.
//
// Run as root, a broken binary would replace /dev/null and /dev/full with regular files. So each
// command runs first on a private copy of the device (mknod in a temp dir) and touches the real
// one only when the copy stayed a character device; a damaged /dev/null is restored.
#include "test_support.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <chrono>
#include <functional>

namespace bitnet {
namespace {

namespace fs = std::filesystem;
using testing::cli;
using testing::run_command;
using testing::shell_quote;

bool is_char_device(const fs::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
}

// A small model and a private plan cache in a temp dir.
class OutputCli : public ::testing::Test {
 protected:
  void SetUp() override {
    env_ = "BITNET_CACHE_DIR=" + shell_quote((dir_ / "cache").string()) + " ";
    auto r = run_command(env_ + cli() + " gen-model --preset test --seed 1 -o " + shell_quote(model().string()));
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  fs::path model() const { return dir_ / "model.gguf"; }
  std::string model_arg() const { return shell_quote(model().string()); }

  // Runs make_command(device) on a private copy of `device` first (when mknod works here), then on
  // `device` itself if the copy survived as a character device.
  testing::CommandResult on_device(const std::string& device, unsigned minor,
                                   const std::function<std::string(const std::string&)>& make_command) {
    if (!is_char_device(device)) {
      ADD_FAILURE() << device << " is not a character device before the test";
      return {};
    }
    const fs::path copy = dir_ / ("dev-" + fs::path(device).filename().string());
    if (::mknod(copy.c_str(), S_IFCHR | 0666, makedev(1, minor)) == 0) {
      const auto canary = run_command(env_ + make_command(copy.string()));
      if (!is_char_device(copy)) {
        ADD_FAILURE() << "the command replaced a device node; not running it on " << device << ": " << canary.err;
        return {};
      }
      fs::remove(copy);
    }
    auto r = run_command(env_ + make_command(device));
    if (!is_char_device(device)) {
      ADD_FAILURE() << device << " was replaced by the command; restoring it";
      if (::geteuid() == 0) {
        ::unlink(device.c_str());
        ::mknod(device.c_str(), S_IFCHR | 0666, makedev(1, minor));
        ::chmod(device.c_str(), 0666);
      }
    }
    return r;
  }

  testing::TempDir dir_;
  std::string env_;
};

void expect_no_space(const testing::CommandResult& r, const std::string& path) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("'" + path + "'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
}

TEST_F(OutputCli, GenModelToDevNullAndDevFull) {
  auto gen = [](const std::string& out) { return cli() + " gen-model --preset test --seed 1 -o " + shell_quote(out); };
  auto null = on_device("/dev/null", 3, gen);
  EXPECT_EQ(null.exit_code, 0) << null.err;
  EXPECT_TRUE(is_char_device("/dev/null"));
  auto full = on_device("/dev/full", 7, gen);
  expect_no_space(full, "/dev/full");
  EXPECT_TRUE(is_char_device("/dev/full"));
}

TEST_F(OutputCli, GenModelThroughASymlinkReplacesItsTarget) {
  fs::create_directories(dir_ / "models");
  const fs::path target = dir_ / "models/real.gguf";
  testing::write_file(target, {'o', 'l', 'd'});
  const fs::path link = dir_ / "link.gguf";
  fs::create_symlink(target, link);
  auto r = run_command(cli() + " gen-model --preset test --seed 2 -o " + shell_quote(link.string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(fs::read_symlink(link), target);
  EXPECT_GT(fs::file_size(target), 1000u);
  EXPECT_EQ(run_command(cli() + " inspect " + shell_quote(link.string())).exit_code, 0);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_ / "models"), fs::directory_iterator()), 1) << "a temp file left";
}

TEST_F(OutputCli, GenModelRefusesADirectoryADanglingSymlinkAndAFifoWithoutReader) {
  fs::create_directories(dir_ / "d");
  auto d = run_command(cli() + " gen-model --preset test --seed 1 -o " + shell_quote((dir_ / "d").string()));
  EXPECT_EQ(d.exit_code, 1);
  EXPECT_NE(d.err.find("is a directory"), std::string::npos) << d.err;
  EXPECT_TRUE(fs::is_empty(dir_ / "d"));

  fs::create_symlink(dir_ / "nowhere.gguf", dir_ / "dangling.gguf");
  auto l =
      run_command(cli() + " gen-model --preset test --seed 1 -o " + shell_quote((dir_ / "dangling.gguf").string()));
  EXPECT_EQ(l.exit_code, 1);
  EXPECT_NE(l.err.find("does not exist"), std::string::npos) << l.err;
  EXPECT_FALSE(fs::exists(dir_ / "nowhere.gguf"));

  const fs::path fifo = dir_ / "pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto start = std::chrono::steady_clock::now();
  // `timeout` turns a hang into exit 124 instead of a stuck test.
  auto f = run_command("timeout 20 " + cli() + " gen-model --preset test --seed 1 -o " + shell_quote(fifo.string()));
  EXPECT_EQ(f.exit_code, 1) << f.err;
  EXPECT_NE(f.err.find("no process is reading"), std::string::npos) << f.err;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  struct stat st {};
  ASSERT_EQ(::lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

TEST_F(OutputCli, GenModelIntoAPipe) {
  // /dev/stdout -> /proc/self/fd/1 -> a pipe: written in place. The model comes first, then
  // the "wrote ..." line, which goes to stdout too.
  const fs::path piped = dir_ / "piped";
  auto r = run_command("(" + cli() + " gen-model --preset test --seed 1 -o /dev/stdout | cat > " +
                       shell_quote(piped.string()) + ")");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto expected = testing::read_file(model());
  auto got = testing::read_file(piped);
  ASSERT_GE(got.size(), expected.size());
  got.resize(expected.size());
  EXPECT_TRUE(got == expected);
}

TEST_F(OutputCli, CompatFixToDevNullWritesNoReport) {
  auto r = on_device("/dev/null", 3, [&](const std::string& out) {
    return cli() + " compat-fix " + model_arg() + " " + shell_quote(out);
  });
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("wrote /dev/null (sha256 "), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("the report /dev/null.compat.json was not written"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists("/dev/null.compat.json"));
  EXPECT_TRUE(is_char_device("/dev/null"));
  // The same bytes as a regular-file copy.
  auto file = run_command(cli() + " compat-fix " + model_arg() + " " + shell_quote((dir_ / "fixed.gguf").string()));
  ASSERT_EQ(file.exit_code, 0) << file.err;
  const auto sha = [](const std::string& out) { return out.substr(out.find("(sha256 "), 72); };
  EXPECT_EQ(sha(r.out), sha(file.out));
  EXPECT_TRUE(fs::exists(dir_ / "fixed.gguf.compat.json"));

  auto full = on_device("/dev/full", 7, [&](const std::string& out) {
    return cli() + " compat-fix " + model_arg() + " " + shell_quote(out);
  });
  expect_no_space(full, "/dev/full");
  EXPECT_FALSE(fs::exists("/dev/full.compat.json"));
}

TEST_F(OutputCli, CompileToDevFullAndDevNull) {
  auto full = on_device("/dev/full", 7, [&](const std::string& out) {
    return cli() + " compile -m " + model_arg() + " -o " + shell_quote(out);
  });
  expect_no_space(full, "/dev/full");
  EXPECT_TRUE(is_char_device("/dev/full"));
  auto null = on_device("/dev/null", 3, [&](const std::string& out) {
    return cli() + " compile -m " + model_arg() + " --lm-head q8_0 -o " + shell_quote(out);
  });
  EXPECT_EQ(null.exit_code, 0) << null.err;
  EXPECT_NE(null.err.find("the sidecar /dev/null.weights"), std::string::npos) << null.err;
  EXPECT_FALSE(fs::exists("/dev/null.weights"));
  EXPECT_TRUE(is_char_device("/dev/null"));
}

TEST_F(OutputCli, RunJsonOutAndEvalLogitsOutToDevFull) {
  auto run = on_device("/dev/full", 7, [&](const std::string& out) {
    return cli() + " run -m " + model_arg() + " --backend interp -p hello -n 2 --json-out " + shell_quote(out);
  });
  expect_no_space(run, "/dev/full");
  auto eval = on_device("/dev/full", 7, [&](const std::string& out) {
    return cli() + " eval -m " + model_arg() + " --backend interp --teacher-force-ids 1,2,3 --logits-out " +
           shell_quote(out);
  });
  expect_no_space(eval, "/dev/full");
  auto null = on_device("/dev/null", 3, [&](const std::string& out) {
    return cli() + " run -m " + model_arg() + " --backend interp -p hello -n 2 --json-out " + shell_quote(out);
  });
  EXPECT_EQ(null.exit_code, 0) << null.err;
  EXPECT_TRUE(is_char_device("/dev/full"));
  EXPECT_TRUE(is_char_device("/dev/null"));
}

}  // namespace
}  // namespace bitnet

// What every command of both CLIs (`bitnet` and the compiler-free `bitnet-rt`) shares: the
// version string, the command-line driver and the error line format.
#include "tools/commands.h"

#include "runtime/cuda/cuda_driver_device.h"

#include "bitnet/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <string>
#include <system_error>
#include <vector>

namespace bitnet::tools {
namespace {

// A closed standard descriptor would be reused by the next file we open: a model opened as
// fd 1 would receive what we print. Occupy it with /dev/null: read-only for stdin and stdout
// (every write to a closed stdout then fails with EBADF, which the output check below
// reports), write-only for stderr (diagnostics nobody asked to see are dropped).
void occupy_closed_standard_fds() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    const int opened = ::open("/dev/null", fd == 2 ? O_WRONLY : O_RDONLY);
    if (opened >= 0 && opened != fd) {
      ::dup2(opened, fd);
      ::close(opened);
    }
  }
}

// Why standard output failed, or "" when everything written reached it. fflush retries
// what is still buffered, so its errno is the reason; a stream whose data was already lost
// reports its error flag only.
std::string output_failure() {
  std::cout.flush();
  errno = 0;
  const bool flush_failed = std::fflush(stdout) != 0;
  const int flush_errno = errno;
  if (!flush_failed && !std::ferror(stdout) && !std::cout.fail()) return {};
  if (flush_failed && flush_errno != 0) return std::strerror(flush_errno);
  // Nothing was left to flush: ask the descriptor itself (a zero-byte write reports EBADF).
  if (::write(STDOUT_FILENO, "", 0) != 0) return std::strerror(errno);
  return "a write to standard output failed";
}

// Last-resort messages must not throw when stderr itself cannot be written (2>/dev/full).
void print_to_stderr(const std::string& line) {
  std::fputs(line.c_str(), stderr);
}

int report_output_failure(std::string_view program, const std::string& reason) {
  print_to_stderr(fmt::format("{}: error: cannot write output: {}\n", program, reason));
  return kExitFailure;
}

}  // namespace

std::string version_string() {
  return BITNET_VERSION;
}

std::string version_report() {
  // Asked only for --version: loading the CUDA driver is not free.
  return version_string() + "\ncuda: " + runtime::cuda::cuda_driver_status();
}

int parse_and_run(CLI::App& app, int argc, char** argv, const int& exit_code, std::string_view program) {
  occupy_closed_standard_fds();
  // A reader that went away (`bitnet run ... | head`) is a failed write like any other
  // (EPIPE, reported below), not a silent death by signal.
  std::signal(SIGPIPE, SIG_IGN);
  // The library's warnings and -v reports (and the compiler's diagnostics) go to stderr.
  set_log_callback([](LogLevel, std::string_view message) {
    print_to_stderr(message.ends_with('\n') ? std::string(message) : fmt::format("{}\n", message));
  });
  // Progress of long loads as one line, redrawn, on a terminal only (piped output stays clean).
  if (::isatty(STDERR_FILENO) == 1) {
    set_progress_callback([](std::string_view what, double fraction) {
      print_to_stderr(fraction >= 1.0 ? std::string("\r\033[K")
                                      : fmt::format("\r\033[K{}: {:3.0f} %", what, 100.0 * fraction));
      std::fflush(stderr);
    });
  }
  // llama.cpp's two-letter short options (serve -np N, -hf REPO), which CLI11 cannot name: their long forms.
  const bool serve = argc > 1 && std::string_view(argv[1]) == "serve";
  std::vector<std::string> args;  // reversed, as CLI11 takes them
  for (int i = argc - 1; i >= 1; --i) {
    const std::string_view arg = argv[i];
    args.emplace_back(serve && arg == "-np" ? "--parallel" : arg == "-hf" ? "--hf-repo" : arg);
  }
  int rc = kExitOk;
  try {
    app.parse(std::move(args));
    rc = exit_code;
  } catch (const CLI::ParseError& e) {
    // Usage errors, --help and --version (which print to stdout: checked below).
    rc = app.exit(e) == 0 ? kExitOk : kExitUsage;
  } catch (const std::system_error& e) {
    // fmt::print throws when a write to stdout (or stderr) fails; anything else is a bug.
    if (std::ferror(stdout)) return report_output_failure(program, e.code().message());
    if (std::ferror(stderr)) return kExitFailure;
    print_to_stderr(fmt::format("{}: internal error: {}\n", program, e.what()));
    return kExitFailure;
  } catch (const std::exception& e) {
    print_to_stderr(fmt::format("{}: internal error: {}\n", program, e.what()));
    return kExitFailure;
  }
  // Every command's output is checked once it is done: a full disk, a closed or broken pipe
  // must not end in exit 0.
  if (const std::string reason = output_failure(); !reason.empty()) return report_output_failure(program, reason);
  return rc;
}

void flush_stdout() {
  errno = 0;
  if (std::fflush(stdout) != 0) throw std::system_error(errno, std::generic_category(), "cannot write output");
}

void print_error(std::string_view command, std::string_view message) {
  print_to_stderr(fmt::format("bitnet {}: error: {}\n", command, message));
}

}  // namespace bitnet::tools

// In-process lld (see plan_linker.h). lld reads and writes files, so the objects go to a
// private temporary directory that is removed afterwards.
#include "codegen_cpu/plan_linker.h"

#include <lld/Common/Driver.h>
#include <llvm/Support/raw_ostream.h>

#include <unistd.h>

#include <csignal>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

LLD_HAS_DRIVER(elf)

namespace bitnet::codegen {
namespace {

// A directory under $TMPDIR (or /tmp) that removes itself.
struct ScratchDir {
  std::string path;
  ScratchDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/bitnet-link-XXXXXX";
    if (::mkdtemp(pattern.data()) != nullptr) path = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
};

// lld checks that it can write its output with a temporary file, which LLVM puts on its
// remove-on-signal list: the first time in a process, that installs LLVM's handlers for
// SIGINT, SIGTERM, SIGSEGV, ... and an alternate signal stack on the calling thread. A library
// must leave the process's signal handling alone, so both are put back as they were after the
// link (LLVM then counts its handlers as installed and does not install them again; a signal
// during a link no longer removes lld's temporary file, which ScratchDir removes anyway).
class SignalStateGuard {
 public:
  SignalStateGuard() {
    for (int sig = 1; sig < NSIG; ++sig) saved_[sig].ok = ::sigaction(sig, nullptr, &saved_[sig].action) == 0;
    alt_ok_ = ::sigaltstack(nullptr, &alt_) == 0;
  }
  ~SignalStateGuard() {
    for (int sig = 1; sig < NSIG; ++sig) {
      struct sigaction now {};
      if (!saved_[sig].ok || ::sigaction(sig, nullptr, &now) != 0) continue;
      const struct sigaction& was = saved_[sig].action;
      if (now.sa_sigaction != was.sa_sigaction || now.sa_flags != was.sa_flags) ::sigaction(sig, &was, nullptr);
    }
    stack_t now{};
    if (!alt_ok_ || ::sigaltstack(nullptr, &now) != 0) return;
    if (now.ss_sp == alt_.ss_sp && now.ss_flags == alt_.ss_flags) return;
    if (alt_.ss_flags & SS_DISABLE) {
      stack_t off{};
      off.ss_flags = SS_DISABLE;
      ::sigaltstack(&off, nullptr);
    } else {
      ::sigaltstack(&alt_, nullptr);
    }
  }
  SignalStateGuard(const SignalStateGuard&) = delete;
  SignalStateGuard& operator=(const SignalStateGuard&) = delete;

 private:
  struct Saved {
    struct sigaction action {};
    bool ok = false;
  };
  Saved saved_[NSIG];
  stack_t alt_{};
  bool alt_ok_ = false;
};

bool write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

}  // namespace

Expected<std::string> link_shared_object(const std::vector<std::pair<std::string, std::string>>& objects) {
  static std::mutex lld_mutex;    // lld keeps global state per link
  static bool lld_usable = true;  // false once lld says another run is unsafe (after a crash in it)
  ScratchDir dir;
  if (dir.path.empty()) return make_error("cannot create a temporary directory for linking");
  std::vector<std::string> inputs;
  for (size_t i = 0; i < objects.size(); ++i) {
    inputs.push_back(fmt::format("{}/k{}.o", dir.path, i));
    if (!write_bytes(inputs.back(), objects[i].second)) return make_error("cannot write '{}'", inputs.back());
  }
  const std::string output = dir.path + "/kernels.so";
  // -s: no symbol table beyond .dynsym; no build id or hash-style variation, so the same
  // objects always link to the same bytes.
  std::vector<const char*> args = {"ld.lld",      "-shared", "-s",    "--build-id=none", "--hash-style=gnu",       "-z",
                                   "noexecstack", "-z",      "relro", "-soname",         "bitnet-plan-kernels.so", "-o",
                                   output.c_str()};
  for (const auto& in : inputs) args.push_back(in.c_str());
  std::string out_text, err_text;
  llvm::raw_string_ostream out_stream(out_text), err_stream(err_text);
  lld::Result result;
  {
    std::lock_guard<std::mutex> lock(lld_mutex);
    if (!lld_usable) return make_error("the in-process linker failed earlier and cannot run again in this process");
    const SignalStateGuard signals;
    result = lld::lldMain(args, out_stream, err_stream, {{lld::Gnu, &lld::elf::link}});
    lld_usable = result.canRunAgain;
  }
  err_stream.flush();
  if (result.retCode != 0) return make_error("linking the kernels failed: {}", err_text);
  std::ifstream in(output, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  if (!in) return make_error("cannot read the linked kernels");
  return bytes.str();
}

}  // namespace bitnet::codegen

// In-process lld (see plan_linker.h). lld reads and writes files, so the objects go to a
// private temporary directory that is removed afterwards.
#include "codegen_cpu/plan_linker.h"

#include <lld/Common/Driver.h>
#include <llvm/Support/raw_ostream.h>

#include <unistd.h>

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

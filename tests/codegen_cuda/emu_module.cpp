#include "emu_module.h"

#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <utility>

#include "test_support.h"

namespace bitnet::testing {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

uint64_t fnv1a(const std::string& text, uint64_t hash = 1469598103934665603ull) {
  for (unsigned char c : text) hash = (hash ^ c) * 1099511628211ull;
  return hash;
}

std::string compile_command(const fs::path& source, const fs::path& output) {
  const fs::path shim = BITNET_HOST_EMU_DIR;
  return std::string("'") + BITNET_HOST_CXX +
         "' -std=c++17 -O1 -fPIC -shared -pthread -ffp-contract=off -fno-strict-aliasing -Wall -Wextra -Werror "
         "-Wno-unknown-pragmas -include '" +
         (shim / "cuda_host_emu.h").string() + "' -I'" + shim.string() + "' -I'" + (shim / "include").string() +
         "' -x c++ '" + source.string() + "' -x none '" + BITNET_HOST_EMU_RUNTIME + "' -Wl,-Bsymbolic -o '" +
         output.string() + "' 2>&1";
}

}  // namespace

std::shared_ptr<EmuModule> EmuModule::build(const std::string& source, std::string* error) {
  static std::mutex mutex;
  // Weak: a module is unloaded once no test holds it, which also unmaps its runtime's fiber
  // stacks (thousands of mappings per module; a process keeping every module would run out of
  // vm.max_map_count). Loading it again from the disk cache is a plain dlopen.
  static std::map<uint64_t, std::weak_ptr<EmuModule>> loaded;
  std::lock_guard<std::mutex> lock(mutex);

  // The key covers everything the object depends on: the source, the shim and its runtime.
  const fs::path shim = BITNET_HOST_EMU_DIR;
  std::string key_text = source + slurp(shim / "cuda_host_emu.h") + compile_command("S", "O");
  std::error_code ec;
  key_text += std::to_string(fs::file_size(BITNET_HOST_EMU_RUNTIME, ec));
  key_text += std::to_string(fs::last_write_time(BITNET_HOST_EMU_RUNTIME, ec).time_since_epoch().count());
  const uint64_t key = fnv1a(key_text);
  if (auto it = loaded.find(key); it != loaded.end()) {
    if (auto alive = it->second.lock()) return alive;
  }

  const fs::path cache = binary_dir() / "codegen_cuda_emu_cache";
  fs::create_directories(cache, ec);
  char name[32];
  std::snprintf(name, sizeof name, "%016llx", static_cast<unsigned long long>(key));
  const fs::path object = cache / (std::string(name) + ".so");
  if (!fs::exists(object)) {
    // Unique temporaries, then an atomic rename: concurrent test processes may build the same key.
    const std::string unique = std::string(name) + "." + std::to_string(getpid());
    const fs::path src = cache / (unique + ".cu.cpp");
    const fs::path tmp = cache / (unique + ".so.tmp");
    std::ofstream(src, std::ios::binary) << source;
    const CommandResult r = run_command(compile_command(src, tmp));
    fs::remove(src, ec);
    if (r.exit_code != 0) {
      fs::remove(tmp, ec);
      if (error) *error = "host compile failed:\n" + r.out + r.err;
      return nullptr;
    }
    fs::rename(tmp, object, ec);
  }
  void* handle = dlopen(object.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    if (error) *error = std::string("dlopen: ") + dlerror();
    return nullptr;
  }
  std::shared_ptr<EmuModule> module(new EmuModule(handle));
  loaded[key] = module;
  return module;
}

EmuModule::~EmuModule() {
  dlclose(handle_);
}

void* EmuModule::symbol(const std::string& name) const {
  return dlsym(handle_, name.c_str());
}

std::string EmuModule::launch_raw(codegen_cuda::Dim3 grid, int threads, void (*body)(void*), void* arg) const {
  using Launch = int (*)(bn_emu_dim3, bn_emu_dim3, void (*)(void*), void*, int, char*, unsigned long);
  auto launch = reinterpret_cast<Launch>(symbol("bn_emu_launch"));
  if (!launch) return "no bn_emu_launch in the module";
  char message[512] = {};
  const int rc = launch(bn_emu_dim3{grid.x, grid.y, grid.z}, bn_emu_dim3{static_cast<unsigned>(threads), 1, 1}, body,
                        arg, 0, message, sizeof message);
  return rc == 0 ? std::string() : std::string(message);
}

namespace {

// p[0] .. p[N - 1] (then the int) as the arguments of one launch.
template <size_t... I>
std::string launch_n(const EmuModule& m, const std::string& name, codegen_cuda::Dim3 g, int t,
                     const std::vector<void*>& p, bool has_int, int v, std::index_sequence<I...>) {
  return has_int ? m.launch(name, g, t, p[I]..., v) : m.launch(name, g, t, p[I]...);
}

template <size_t... N>
std::string launch_any(const EmuModule& m, const std::string& name, codegen_cuda::Dim3 g, int t,
                       const std::vector<void*>& p, bool has_int, int v, std::index_sequence<N...>) {
  std::string result =
      "no emulator call for " + std::to_string(p.size()) + " pointers" + (has_int ? " and an int" : "");
  ((p.size() == N ? (void)(result = launch_n(m, name, g, t, p, has_int, v, std::make_index_sequence<N>())) : (void)0),
   ...);
  return result;
}

}  // namespace

std::string EmuModule::launch_pointers(const std::string& name, codegen_cuda::Dim3 g, int t,
                                       const std::vector<void*>& p, bool has_int, int v) const {
  // The generated kernels take 2 to 15 pointers.
  return launch_any(*this, name, g, t, p, has_int, v,
                    std::index_sequence<2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15>());
}

}  // namespace bitnet::testing

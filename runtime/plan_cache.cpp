// The plan cache directory (see plan_cache.h).
#include "runtime/plan_cache.h"

#include "runtime/cuda_module_file.h"
#include "runtime/plan_cpu.h"
#include "runtime/plan_files.h"
#include "runtime/plan_format.h"
#include "runtime/plan_reader.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

namespace bitnet::runtime {
namespace fs = std::filesystem;

namespace {

bool is_temp(const fs::path& p) {
  return p.filename().string().starts_with(".");
}
bool is_plan(const fs::path& p) {
  return !is_temp(p) && p.extension() == kPlanExtension;
}
bool is_cuda_module(const fs::path& p) {
  return !is_temp(p) && p.extension() == kCudaModuleExtension;
}

uint64_t size_or_zero(const fs::path& p) {
  std::error_code ec;
  const auto n = fs::file_size(p, ec);
  return ec ? 0 : n;
}

int64_t mtime_s(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_mtim.tv_sec) : 0;
}

// Removes `p` (and its sidecar), counting what went.
void remove_entry(const fs::path& p, PlanCache::Removed& removed) {
  for (const fs::path& f : {p, fs::path(p.string() + kSidecarSuffix)}) {
    const uint64_t bytes = size_or_zero(f);
    std::error_code ec;
    if (fs::remove(f, ec)) {
      ++removed.files;
      removed.bytes += bytes;
    }
  }
}

// Why this machine cannot run a valid plan ("" when it can).
std::string unusable_reason(const planfb::PlanT& plan) {
  const planfb::TargetT* target = plan.target.get();
  if (!target) return "names no target";
  if (!target->triple.starts_with(std::string(host_arch()) + "-")) return "is for " + target->triple;
  const std::vector<std::string> missing = missing_cpu_features(target->required);
  if (missing.empty()) return "";
  std::string out = "needs";
  for (const std::string& m : missing) out += (out == "needs" ? " " : ", ") + m;
  return out;
}

// Removes the lock files in `dir` that no process holds (locked for a moment to tell).
void remove_free_locks(const std::string& dir, PlanCache::Removed& removed) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() != ".lock") continue;
    const int fd = ::open(e.path().c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) continue;
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
      const uint64_t bytes = size_or_zero(e.path());
      if (::unlink(e.path().c_str()) == 0) {
        ++removed.files;
        removed.bytes += bytes;
      }
    }
    ::close(fd);  // drops the lock
  }
}

}  // namespace

Expected<std::string> default_cache_dir() {
  if (const char* d = std::getenv("BITNET_CACHE_DIR"); d && *d) return std::string(d);
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return std::string(d) + "/bitnet";
  if (const char* d = std::getenv("HOME"); d && *d) return std::string(d) + "/.cache/bitnet";
  return make_error("no plan cache directory: set BITNET_CACHE_DIR (or XDG_CACHE_HOME or HOME)");
}

std::string PlanCache::plan_path(const std::string& key_hex) const {
  return plans_dir() + "/" + key_hex + kPlanExtension;
}

std::string PlanCache::cuda_module_path(const std::string& key_hex) const {
  return cuda_dir() + "/" + key_hex + kCudaModuleExtension;
}

std::string PlanCache::lock_path(const std::string& key_hex) const {
  return locks_dir() + "/" + key_hex + ".lock";
}

Status PlanCache::prepare() const {
  for (const std::string& dir : {plans_dir(), hashes_dir(), locks_dir(), cuda_dir()}) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return make_error("cannot create '{}': {}", dir, ec.message());
    const std::string probe = fmt::format("{}/.probe.{}", dir, ::getpid());
    const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return make_error("'{}' is not writable: {}", dir, std::strerror(errno));
    ::close(fd);
    ::unlink(probe.c_str());
  }
  return Status::success();
}

void PlanCache::touch(const std::string& plan_path) const {
  std::error_code ec;  // best effort: an unwritable cache still serves hits
  fs::last_write_time(plan_path, fs::file_time_type::clock::now(), ec);
}

PlanCache::KeyLock::~KeyLock() {
  ::unlink(path_.c_str());  // while holding the lock: see the class comment
  ::close(fd_);
}

Expected<std::unique_ptr<PlanCache::KeyLock>> PlanCache::lock_key(const std::string& key_hex, double timeout_s,
                                                                  const std::function<void()>& on_wait) const {
  const std::string path = lock_path(key_hex);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(std::max(timeout_s, 0.0));
  bool waiting = false;
  for (;;) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return make_error("cannot create the lock file '{}': {}", path, std::strerror(errno));
    while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EINTR) continue;
      if (errno != EWOULDBLOCK) {
        const int e = errno;
        ::close(fd);
        return make_error("cannot lock '{}': {}", path, std::strerror(e));
      }
      if (!waiting && on_wait) on_wait();
      waiting = true;
      if (std::chrono::steady_clock::now() >= deadline) {
        ::close(fd);
        return std::unique_ptr<KeyLock>();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    // Ours only if the name still refers to the file we locked (its last holder removes it).
    struct stat locked {};
    struct stat named {};
    if (::fstat(fd, &locked) == 0 && ::stat(path.c_str(), &named) == 0 && locked.st_dev == named.st_dev &&
        locked.st_ino == named.st_ino) {
      return std::make_unique<KeyLock>(fd, path);
    }
    ::close(fd);
  }
}

Expected<std::vector<PlanCache::Entry>> PlanCache::list() const {
  std::vector<Entry> out;
  // An invalid BITNET_CPU_DISABLE would make every plan look usable or not at random.
  BITNET_RETURN_IF_ERROR(cpu_disabled_features());
  // Plans in plans/, CUDA modules in cuda/; either directory may be missing (a cache only ever
  // listed, or made by an older version).
  for (const std::string& dir : {plans_dir(), cuda_dir()}) {
    const bool modules = dir == cuda_dir();
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      if (modules ? !is_cuda_module(e.path()) : !is_plan(e.path())) continue;
      Entry entry;
      entry.path = e.path().string();
      entry.cuda_module = modules;
      entry.key = e.path().stem().string();
      entry.bytes = size_or_zero(e.path()) + (modules ? 0 : size_or_zero(entry.path + kSidecarSuffix));
      entry.last_used_s = mtime_s(e.path());
      if (modules) {
        auto module = read_cuda_module(entry.path);
        entry.valid = module.ok();
        if (module.ok()) {
          entry.model = module->note;
          entry.target = "cuda-sm_" + std::to_string(module->sm);
        } else {
          entry.problem = module.error().message;
        }
      } else {
        auto plan = read_plan(entry.path);
        entry.valid = plan.ok();
        if (plan.ok()) {
          entry.model = (*plan)->model ? (*plan)->model->path : "";
          entry.target = (*plan)->target ? (*plan)->target->name : "";
          entry.unusable = unusable_reason(**plan);
        } else {
          entry.problem = plan.error().message;
        }
      }
      out.push_back(std::move(entry));
    }
    if (ec) return make_error("cannot list '{}': {}", dir, ec.message());
  }
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.last_used_s > b.last_used_s; });
  return out;
}

Expected<PlanCache::Removed> PlanCache::clear() const {
  Removed removed;
  remove_free_locks(locks_dir(), removed);  // those held are compiles in progress
  for (const std::string& dir : {plans_dir(), hashes_dir(), cuda_dir()}) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const uint64_t bytes = size_or_zero(e.path());
      std::error_code rm;
      if (fs::remove(e.path(), rm)) {
        ++removed.files;
        removed.bytes += bytes;
      } else if (rm) {
        return make_error("cannot remove '{}': {}", e.path().string(), rm.message());
      }
    }
  }
  return removed;
}

Expected<PlanCache::Removed> PlanCache::prune(std::optional<uint64_t> max_bytes) const {
  Removed removed;
  std::error_code ec;
  remove_free_locks(locks_dir(), removed);  // left by processes that died while compiling
  // Temp files of writers that died; a live writer's temp file is younger than an hour.
  const auto hour_ago = fs::file_time_type::clock::now() - std::chrono::hours(1);
  for (const std::string& dir : {plans_dir(), cuda_dir()}) {
    std::error_code listing;
    for (const auto& e : fs::directory_iterator(dir, listing)) {
      std::error_code t;
      if (is_temp(e.path()) && fs::last_write_time(e.path(), t) < hour_ago) remove_entry(e.path(), removed);
    }
  }
  BITNET_ASSIGN_OR_RETURN(std::vector<Entry> entries, list());
  uint64_t total = 0;
  for (const Entry& e : entries) {
    if (!e.valid || !e.unusable.empty()) {
      remove_entry(e.path, removed);
    } else {
      total += e.bytes;
    }
  }
  // Sidecars whose plan is gone.
  for (const auto& e : fs::directory_iterator(plans_dir(), ec)) {
    const std::string p = e.path().string();
    if (!is_temp(e.path()) && p.ends_with(kSidecarSuffix) &&
        !fs::exists(p.substr(0, p.size() - std::string_view(kSidecarSuffix).size()))) {
      remove_entry(e.path(), removed);
    }
  }
  // Memoised hashes of model files that changed or went away.
  for (const auto& e : fs::directory_iterator(hashes_dir(), ec)) {
    if (e.path().extension() == ".hash" && hash_memo_is_stale(e.path().string())) remove_entry(e.path(), removed);
  }
  if (max_bytes) {
    // `entries` is most recently used first: drop from the back.
    for (auto it = entries.rbegin(); it != entries.rend() && total > *max_bytes; ++it) {
      if (!it->valid || !it->unusable.empty()) continue;
      remove_entry(it->path, removed);
      total -= std::min(total, it->bytes);
    }
  }
  return removed;
}

Expected<uint64_t> parse_size(const std::string& text) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data()) return make_error("'{}' is not a size (e.g. 500M, 2G)", text);
  std::string unit(end, text.data() + text.size());
  for (const char* suffix : {"iB", "B"}) {
    if (unit.size() > 1 && unit.ends_with(suffix)) {
      unit.resize(unit.size() - std::string_view(suffix).size());
      break;
    }
  }
  if (unit == "B") unit.clear();
  const std::string units = "KMGT";
  double scale = 1;
  if (unit.size() == 1 && units.find(static_cast<char>(std::toupper(unit[0]))) != std::string::npos) {
    scale = std::pow(1024.0, static_cast<double>(units.find(static_cast<char>(std::toupper(unit[0]))) + 1));
  } else if (!unit.empty()) {
    return make_error("'{}' is not a size (e.g. 500M, 2G)", text);
  }
  if (!(value >= 0) || value * scale > 1.8e19) return make_error("'{}' is not a size (e.g. 500M, 2G)", text);
  return static_cast<uint64_t>(value * scale);
}

}  // namespace bitnet::runtime

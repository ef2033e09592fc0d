// The plan cache directory: where `bitnet run -m` keeps the plans it compiled, one file per
// cache key (plans/KEY.bnplan, plus KEY.bnplan.weights when weights were repacked), the CUDA
// modules `--backend cuda` compiled (cuda/KEY.cumod: runtime/cuda_module_file.h), the memoised
// model hashes (hashes/), and the lock files of compiles in progress (locks/). Listing,
// clearing and pruning it.
//
// Location: $BITNET_CACHE_DIR, else $XDG_CACHE_HOME/bitnet, else ~/.cache/bitnet.
#pragma once

#include "ir/support/expected.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace bitnet::runtime {

Expected<std::string> default_cache_dir();

class PlanCache {
 public:
  explicit PlanCache(std::string root) : root_(std::move(root)) {}
  const std::string& root() const { return root_; }
  std::string plans_dir() const { return root_ + "/plans"; }
  std::string hashes_dir() const { return root_ + "/hashes"; }
  std::string locks_dir() const { return root_ + "/locks"; }
  std::string cuda_dir() const { return root_ + "/cuda"; }
  std::string plan_path(const std::string& key_hex) const;
  std::string cuda_module_path(const std::string& key_hex) const;
  std::string lock_path(const std::string& key_hex) const;

  // Creates the directories and proves they are writable (a probe file); fails with why not.
  Status prepare() const;
  // Marks an entry as just used (its mtime), for pruning least recently used entries first.
  void touch(const std::string& plan_path) const;

  // An exclusive lock on one cache key: flock(2) on locks/KEY.lock, so that of the processes
  // that miss the same key one compiles and the others wait for its plan. The kernel drops the
  // lock when its holder exits, however it exits, so a lock file left behind is harmless (the
  // next locker takes it over; prune and clear remove it). Destroying it removes the file
  // while still holding the lock; a waiter that then gets the lock of the removed file sees
  // that the name is gone or names another file, and locks that instead.
  class KeyLock {
   public:
    KeyLock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
    ~KeyLock();
    KeyLock(const KeyLock&) = delete;
    KeyLock& operator=(const KeyLock&) = delete;
    const std::string& path() const { return path_; }

   private:
    int fd_;
    std::string path_;
  };
  // Takes the lock of `key_hex`, waiting at most `timeout_s` seconds for its holder; calls
  // `on_wait` once when it has to wait. Null when the wait timed out; an error when the lock
  // file cannot be created or locked.
  Expected<std::unique_ptr<KeyLock>> lock_key(const std::string& key_hex, double timeout_s,
                                              const std::function<void()>& on_wait = {}) const;

  // A plan, or a CUDA module (cuda_module: `model` is then its note, `target` its SM; whether
  // a GPU can load it is not checked here).
  struct Entry {
    std::string path;
    bool cuda_module = false;
    std::string key;
    uint64_t bytes = 0;         // plan + sidecar
    int64_t last_used_s = 0;    // mtime of the plan (touched on every hit)
    bool valid = false;         // reads and verifies (plan_reader.h)
    std::string problem;        // why not, when invalid
    std::string model, target;  // model path and target name, when valid
    // A valid plan this machine cannot run: the CPU features its code needs that this CPU
    // lacks (runtime/plan_cpu.h, BITNET_CPU_DISABLE included), or another architecture.
    std::string unusable;  // "needs avx512bw, avx512f", "is for aarch64-...": empty when usable
  };
  // Fails only when the directory cannot be read or BITNET_CPU_DISABLE is invalid.
  Expected<std::vector<Entry>> list() const;

  struct Removed {
    int64_t files = 0;
    uint64_t bytes = 0;
  };
  // Removes every plan, sidecar, CUDA module, memoised hash, temp file and lock file no process holds.
  Expected<Removed> clear() const;
  // Removes invalid entries, plans this machine cannot run (Entry::unusable), leftover temp
  // files, lock files no process holds and the memoised hashes of files that changed or went
  // away, then the least recently used entries until the plans and modules take at most
  // `max_bytes` (when given).
  Expected<Removed> prune(std::optional<uint64_t> max_bytes) const;

 private:
  std::string root_;
};

// "500M", "2G", "1.5GiB", "4096" -> bytes (K, M, G, T: powers of 1024; an optional "B"/"iB").
Expected<uint64_t> parse_size(const std::string& text);

}  // namespace bitnet::runtime

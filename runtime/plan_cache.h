// The plan cache directory: where `bitnet run -m` keeps the plans it compiled, one file per
// cache key (plans/KEY.bnplan, plus KEY.bnplan.weights when weights were repacked), and the
// memoised model hashes (hashes/). Listing, clearing and pruning it.
//
// Location: $BITNET_CACHE_DIR, else $XDG_CACHE_HOME/bitnet, else ~/.cache/bitnet.
#pragma once

#include "ir/support/expected.h"

#include <cstdint>
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
  std::string plan_path(const std::string& key_hex) const;

  // Creates the directories and proves they are writable (a probe file); fails with why not.
  Status prepare() const;
  // Marks an entry as just used (its mtime), for pruning least recently used entries first.
  void touch(const std::string& plan_path) const;

  struct Entry {
    std::string path;
    std::string key;
    uint64_t bytes = 0;         // plan + sidecar
    int64_t last_used_s = 0;    // mtime of the plan (touched on every hit)
    bool valid = false;         // reads and verifies (plan_reader.h)
    std::string problem;        // why not, when invalid
    std::string model, target;  // model path and target name, when valid
  };
  Expected<std::vector<Entry>> list() const;

  struct Removed {
    int64_t files = 0;
    uint64_t bytes = 0;
  };
  // Removes every plan, sidecar, memoised hash and temp file.
  Expected<Removed> clear() const;
  // Removes invalid entries, leftover temp files and the memoised hashes of files that changed
  // or went away, then the least recently used entries until the plans take at most
  // `max_bytes` (when given).
  Expected<Removed> prune(std::optional<uint64_t> max_bytes) const;

 private:
  std::string root_;
};

// "500M", "2G", "1.5GiB", "4096" -> bytes (K, M, G, T: powers of 1024; an optional "B"/"iB").
Expected<uint64_t> parse_size(const std::string& text);
std::string format_size(uint64_t bytes);  // "1.18 GiB"

}  // namespace bitnet::runtime

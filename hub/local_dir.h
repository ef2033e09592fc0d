// `-o DIR`: making a downloaded file appear at DIR/<file> as well as in the hub cache.
#pragma once

#include "ir/support/expected.h"

#include <string>

namespace bitnet::hub {

enum class PlaceMode {
  kLink,  // a symlink to the cached blob (no extra space; the cache must stay)
  kCopy,  // an independent copy, written to a temp file and renamed into place
};

// Places the cached file `cached_path` (a snapshot path) at `dir`/`file`, creating the
// directories it needs and replacing a file or symlink already there (never a directory).
// Returns the placed path.
Expected<std::string> place_in_dir(const std::string& cached_path, const std::string& dir, const std::string& file,
                                   PlaceMode mode);

}  // namespace bitnet::hub

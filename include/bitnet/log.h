// Where the library's messages go. By default nowhere: the library prints nothing unless a
// callback is set (warnings such as "the plan cache cannot be written; compiling in memory").
#pragma once

#include "bitnet/export.h"

#include <functional>
#include <string_view>

namespace bitnet {

enum class LogLevel { kInfo, kWarning };
using LogCallback = std::function<void(LogLevel level, std::string_view message)>;

// Process-wide, as llama_log_set; nullptr silences. Calls may come from any thread that uses
// the library; the callback must be thread-safe.
BITNET_API void set_log_callback(LogCallback callback);

// Progress of steps that take seconds while a model loads (hashing a large file, compiling
// kernels): `what` and a fraction in [0, 1], 1 exactly once when the step is over.
// Process-wide; nullptr (the default) reports nothing. The callback must be thread-safe.
using ProgressCallback = std::function<void(std::string_view what, double fraction)>;
BITNET_API void set_progress_callback(ProgressCallback callback);

}  // namespace bitnet

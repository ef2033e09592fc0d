// Progress of steps that take seconds (hashing a large model, compiling kernels), reported to
// a process-wide sink. There is none by default: the library prints nothing of its own
// (bitnet::set_progress_callback installs one; the CLI's draws a line on a terminal).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace bitnet::runtime {

// `what` ("hashing model", "compiling kernels"), `fraction` in [0, 1]; 1 exactly once, when
// the step is over (also when it ends early). Calls may come from any thread that loads a
// model; the sink must be thread-safe.
using ProgressSink = std::function<void(std::string_view what, double fraction)>;
void set_progress_sink(ProgressSink sink);

class Progress {
 public:
  explicit Progress(std::string what);  // takes the sink installed now
  ~Progress();                          // reports 1 if anything was reported
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Reported at most ten times a second (and always at 1). Thread-compatible: callers serialise.
  void fraction(double f);
  void count(int64_t done, int64_t total) { fraction(total > 0 ? static_cast<double>(done) / total : 1.0); }

 private:
  std::string what_;
  ProgressSink sink_;
  bool reported_ = false;
  bool finished_ = false;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace bitnet::runtime

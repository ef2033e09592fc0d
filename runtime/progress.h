// A one-line progress display on stderr for steps that take seconds (hashing a large model,
// compiling kernels). It draws only when stderr is a terminal, so piped output stays clean.
#pragma once

#include <chrono>
#include <string>

namespace bitnet::runtime {

class Progress {
 public:
  // `enabled` defaults to whether stderr is a terminal.
  explicit Progress(std::string label);
  Progress(std::string label, bool enabled);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // "label: 42 %" (fraction in [0, 1]) or "label: 12/40" (done of total); redrawn at most
  // ten times a second. Thread-compatible, not thread-safe: callers serialise.
  void fraction(double f);
  void count(int64_t done, int64_t total);
  bool enabled() const { return enabled_; }

 private:
  void draw(const std::string& text, bool force);
  std::string label_;
  bool enabled_ = false;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_{};
};

bool stderr_is_terminal();

}  // namespace bitnet::runtime

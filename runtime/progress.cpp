// Terminal progress line (see progress.h).
#include "runtime/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace bitnet::runtime {

bool stderr_is_terminal() {
  return ::isatty(STDERR_FILENO) == 1;
}

Progress::Progress(std::string label) : Progress(std::move(label), stderr_is_terminal()) {}
Progress::Progress(std::string label, bool enabled) : label_(std::move(label)), enabled_(enabled) {}

Progress::~Progress() {
  if (drawn_) fmt::print(stderr, "\r\033[K");  // erase the line: the caller prints the outcome
  std::fflush(stderr);
}

void Progress::fraction(double f) {
  if (enabled_) draw(fmt::format("{}: {:3.0f} %", label_, 100.0 * f), f >= 1.0);
}

void Progress::count(int64_t done, int64_t total) {
  if (enabled_) draw(fmt::format("{}: {}/{}", label_, done, total), done >= total);
}

void Progress::draw(const std::string& text, bool force) {
  const auto now = std::chrono::steady_clock::now();
  if (!force && drawn_ && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  drawn_ = true;
  fmt::print(stderr, "\r\033[K{}", text);
  std::fflush(stderr);
}

}  // namespace bitnet::runtime

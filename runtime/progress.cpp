// Progress reports (see progress.h).
#include "runtime/progress.h"

#include <mutex>

namespace bitnet::runtime {
namespace {

std::mutex& sink_mutex() {
  static std::mutex m;
  return m;
}
ProgressSink& installed() {
  static ProgressSink sink;
  return sink;
}

}  // namespace

void set_progress_sink(ProgressSink sink) {
  std::lock_guard<std::mutex> lock(sink_mutex());
  installed() = std::move(sink);
}

Progress::Progress(std::string what) : what_(std::move(what)) {
  std::lock_guard<std::mutex> lock(sink_mutex());
  sink_ = installed();
}

Progress::~Progress() {
  if (sink_ && reported_ && !finished_) sink_(what_, 1.0);
}

void Progress::fraction(double f) {
  if (!sink_ || finished_) return;
  const auto now = std::chrono::steady_clock::now();
  const bool done = f >= 1.0;
  if (!done && reported_ && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  reported_ = true;
  finished_ = done;
  sink_(what_, done ? 1.0 : f);
}

}  // namespace bitnet::runtime

// The library's log and progress sinks (see bitnet/log.h).
#include "api/log_sink.h"
#include "runtime/progress.h"

#include <mutex>

namespace bitnet {
namespace {

std::mutex& sink_mutex() {
  static std::mutex m;
  return m;
}
LogCallback& sink() {
  static LogCallback callback;
  return callback;
}

}  // namespace

void set_log_callback(LogCallback callback) {
  std::lock_guard<std::mutex> lock(sink_mutex());
  sink() = std::move(callback);
}

void set_progress_callback(ProgressCallback callback) {
  runtime::set_progress_sink(std::move(callback));
}

namespace api {

void log(LogLevel level, std::string_view message) {
  LogCallback callback;
  {
    std::lock_guard<std::mutex> lock(sink_mutex());
    callback = sink();
  }
  if (callback) callback(level, message);
}

}  // namespace api
}  // namespace bitnet

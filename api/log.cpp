// The library's log sink (see bitnet/log.h).
#include "api/log_sink.h"

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

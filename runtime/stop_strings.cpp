// Stop strings over streamed text (see stop_strings.h).
#include "runtime/stop_strings.h"

#include <algorithm>
#include <utility>

namespace bitnet::runtime {

StopStrings::StopStrings(std::vector<std::string> stops) {
  for (std::string& s : stops) {
    if (!s.empty()) stops_.push_back(std::move(s));
  }
}

StopStrings::Pushed StopStrings::push(std::string_view text) {
  held_.append(text);
  // The earliest stop string wins (as if the text had been checked token by token).
  size_t first = std::string::npos;
  for (const std::string& s : stops_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    Pushed out{held_.substr(0, first), true};
    held_.clear();
    return out;
  }
  // Hold back the longest tail that is a proper prefix of some stop string.
  size_t keep = 0;
  for (const std::string& s : stops_) {
    for (size_t n = std::min(s.size() - 1, held_.size()); n > keep; --n) {
      if (held_.compare(held_.size() - n, n, s, 0, n) == 0) {
        keep = n;
        break;
      }
    }
  }
  Pushed out{held_.substr(0, held_.size() - keep), false};
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopStrings::flush() {
  return std::exchange(held_, std::string());
}

}  // namespace bitnet::runtime

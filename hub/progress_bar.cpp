// The terminal progress bar (see progress_bar.h).
#include "hub/progress_bar.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <string_view>

#include <unistd.h>

namespace bitnet::hub {

std::string human_bytes(double bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 4) {
    bytes /= 1024;
    ++unit;
  }
  return unit == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.1f} {}", bytes, kUnits[unit]);
}

bool progress_bar_wanted() {
  const char* disable = std::getenv("HF_HUB_DISABLE_PROGRESS_BARS");
  const std::string_view d = disable ? disable : "";
  if (d == "1" || d == "ON" || d == "on" || d == "YES" || d == "yes" || d == "TRUE" || d == "true") return false;
  return ::isatty(STDERR_FILENO) == 1;
}

std::string ProgressBar::render(const DownloadProgress& p, double elapsed_s, int width) {
  const double fraction = p.total > 0 ? std::min(1.0, static_cast<double>(p.done) / static_cast<double>(p.total)) : 1.0;
  const double rate = elapsed_s > 0 ? static_cast<double>(p.done - std::min(p.done, p.resumed_from)) / elapsed_s : 0;
  std::string eta = "--:--";
  if (rate > 0) {
    const auto left = static_cast<long>(static_cast<double>(p.total - std::min(p.total, p.done)) / rate);
    eta = fmt::format("{}:{:02}", left / 60, left % 60);
  }
  const std::string tail =
      fmt::format(" {:3.0f}% {} / {}  {}/s  {}", fraction * 100, human_bytes(static_cast<double>(p.done)),
                  human_bytes(static_cast<double>(p.total)), human_bytes(rate), eta);
  std::string name = p.file;
  if (name.size() > 28) name = "..." + name.substr(name.size() - 25);
  const int bar_width = std::max(10, width - static_cast<int>(tail.size()) - 32);
  const int filled = static_cast<int>(fraction * bar_width);
  return fmt::format("{:<28} [{}{}]{}", name, std::string(filled, '='), std::string(bar_width - filled, ' '), tail);
}

void ProgressBar::update(const DownloadProgress& p) {
  const auto now = std::chrono::steady_clock::now();
  if (p.file != file_) {
    finish();
    file_ = p.file;
    start_ = now;
  } else if (p.done < p.total && now - last_draw_ < std::chrono::milliseconds(100)) {
    return;
  }
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  std::fprintf(out_, "\r%s\x1b[K", render(p, elapsed).c_str());
  std::fflush(out_);
  drawn_ = true;
}

void ProgressBar::finish() {
  if (drawn_) std::fputc('\n', out_);
  drawn_ = false;
  file_.clear();
}

}  // namespace bitnet::hub

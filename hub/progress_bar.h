// A one-line download progress bar for a terminal: name, percent, bar, bytes, rate and time
// left, redrawn at most ten times a second. The front ends show it only when stderr is a
// terminal (and HF_HUB_DISABLE_PROGRESS_BARS is not set); the library never prints.
#pragma once

#include "hub/hub_client.h"

#include <chrono>
#include <cstdio>
#include <string>

namespace bitnet::hub {

class ProgressBar {
 public:
  explicit ProgressBar(std::FILE* out) : out_(out) {}
  void update(const DownloadProgress& p);
  void finish();  // ends the line of the file being drawn, if any

  // The line drawn for `p` after `elapsed_s` seconds of this transfer (tests check its parts).
  static std::string render(const DownloadProgress& p, double elapsed_s, int width = 100);

 private:
  std::FILE* out_;
  std::string file_;
  std::chrono::steady_clock::time_point start_{};
  std::chrono::steady_clock::time_point last_draw_{};
  bool drawn_ = false;
};

// "1.5 GiB", "12.0 MiB", "512 B".
std::string human_bytes(double bytes);
// True when stderr is a terminal and HF_HUB_DISABLE_PROGRESS_BARS is not set to a true value.
bool progress_bar_wanted();

}  // namespace bitnet::hub

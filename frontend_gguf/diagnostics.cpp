// Finding helpers (see diagnostics.h).
#include "frontend_gguf/diagnostics.h"

#include <fmt/format.h>

namespace bitnet::gguf {

std::string_view severity_name(Severity s) {
  switch (s) {
    case Severity::kInfo:
      return "info";
    case Severity::kWarning:
      return "warning";
    case Severity::kError:
      return "error";
  }
  return "?";
}

bool Findings::has_errors() const {
  return first_error() != nullptr;
}

bool Findings::has_warnings() const {
  for (const auto& f : items) {
    if (f.severity == Severity::kWarning) return true;
  }
  return false;
}

const Finding* Findings::first_error() const {
  for (const auto& f : items) {
    if (f.severity == Severity::kError) return &f;
  }
  return nullptr;
}

std::string format_finding(const Finding& f) {
  std::string s = fmt::format("{} [{}] {}", severity_name(f.severity), f.code, f.message);
  if (!f.hint.empty()) s += fmt::format(" (fix: {})", f.hint);
  return s;
}

}  // namespace bitnet::gguf

// compat-check and compat-fix: diagnose what makes a GGUF fail or misbehave in this
// engine or in other engines, and write a repaired copy applying only safe fixes.
#pragma once

#include "frontend_gguf/diagnostics.h"
#include "frontend_gguf/gguf_file.h"

#include <nlohmann/json.hpp>

#include <string>

namespace bitnet::gguf {

// Parses `path` (strictly, then leniently to diagnose misalignment) and checks it.
// A file that cannot be parsed yields one "parse-error" finding.
Findings check_compat_file(const std::string& path);
// Checks an already parsed file.
Findings check_compat(const GgufFile& file);

struct AppliedFix {
  std::string code;         // the finding code it resolves
  std::string key;          // metadata key or "tensor data"
  nlohmann::json before;    // null when absent
  nlohmann::json after;
  std::string description;
};

struct CompatFixResult {
  std::vector<AppliedFix> fixes;
  Findings remaining;  // findings of the written copy
  std::string input_sha256;
  std::string output_sha256;
  std::string report_path;  // OUT.compat.json
};

// Writes a fixed copy of `in` to `out` (temp file + rename; `in` is never modified;
// refuses when `out` is `in`) and the report `out`.compat.json.
Expected<CompatFixResult> compat_fix(const std::string& in, const std::string& out, const std::string& tool_version);

}  // namespace bitnet::gguf

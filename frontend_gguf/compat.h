// compat-check and compat-fix: diagnose what makes a GGUF fail or misbehave in this
// engine or in other engines, and write a repaired copy applying only safe fixes.
#pragma once

#include "frontend_gguf/diagnostics.h"
#include "frontend_gguf/gguf_file.h"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace bitnet::gguf {

struct CheckOptions {
  // Check the file's own tokenizer metadata (loaders given another tokenizer skip it).
  bool tokenizer = true;
  // Scan all tensor data: every I2_S code, every F32/F16/BF16 value (reads the whole file).
  // When false, the data checks are bounded: I2_S scales, the first 4 KiB of each I2_S
  // tensor's codes, and the values of 1-D float tensors (the norms).
  bool full_data_scan = true;
  // Draw a progress line on stderr while scanning large files (only when stderr is a terminal
  // and the scan reads more than 256 MiB).
  bool progress = true;
};

// Parses `path` (strictly, then leniently to diagnose misalignment) and checks it.
// A file that cannot be parsed yields one "parse-error" finding.
Findings check_compat_file(const std::string& path, const CheckOptions& options = {});
// Checks an already parsed file.
Findings check_compat(const GgufFile& file, const CheckOptions& options = {});

// Index of the first NaN or infinity among an F32, F16 or BF16 tensor's values (nullopt when
// all are finite or the tensor has another type).
std::optional<uint64_t> first_non_finite_element(const TensorInfo& tensor);

// What loaders run before using a model: the error checks of check_compat with bounded data
// checks (metadata, shapes, types, tokenizer, I2_S layout and scales, ...). Fails with the
// first error finding, formatted as compat-check names it ("error [code] message (fix: hint)").
// Not checked here (too slow for every load): I2_S codes beyond each tensor's first 4 KiB,
// and non-finite values in float matrices (generation stops on non-finite logits instead).
Status check_loadable(const GgufFile& file, bool own_tokenizer = true);

struct AppliedFix {
  std::string code;       // the finding code it resolves
  std::string key;        // metadata key or "tensor data"
  nlohmann::json before;  // null when absent
  nlohmann::json after;
  std::string description;
};

struct CompatFixResult {
  std::vector<AppliedFix> fixes;
  Findings remaining;  // findings of the written copy
  std::string input_sha256;
  std::string output_sha256;
  std::string report_path;  // OUT.compat.json; empty when not written (OUT is not a regular file)
};

// Writes a fixed copy of `in` to `out` (by output_file.h's rules: temp file + rename over a
// regular file; `in` is never modified; refuses when `out` is `in`) and the report
// `out`.compat.json. When `out` is a device or FIFO (/dev/null, a pipe) the copy is checked
// in memory, written there, and no report is written (report_path is empty).
Expected<CompatFixResult> compat_fix(const std::string& in, const std::string& out, const std::string& tool_version);

}  // namespace bitnet::gguf

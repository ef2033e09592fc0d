// `ptxas -v` as a check of generated kernels without a GPU: registers, spills and stack per
// entry point, parsed from its report.
#pragma once

#include <string>
#include <vector>

#include "bitnet/result.h"

namespace bitnet::codegen_cuda {

struct PtxasEntry {
  std::string name;
  std::string arch;  // "sm_90"
  int registers = -1;
  int stack_frame_bytes = -1;
  int spill_store_bytes = -1;
  int spill_load_bytes = -1;
  int shared_bytes = 0;  // static shared memory ("... bytes smem"); 0 when not reported
};

// Parses the "ptxas info" lines of `ptxas -v` output; entries appear in the report's order.
std::vector<PtxasEntry> parse_ptxas_report(const std::string& text);

// Writes `ptx` to a temporary file, runs `<ptxas> -arch=sm_<sm> -v` on it and parses the report.
// The error carries ptxas's output when it fails.
Expected<std::vector<PtxasEntry>> run_ptxas(const std::string& ptxas, const std::string& ptx, int sm);

}  // namespace bitnet::codegen_cuda

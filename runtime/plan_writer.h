// Writing a plan: the FlatBuffer with its checksum footer, and the sidecar of repacked weights
// beside it, each written atomically (plan_files.h).
#pragma once

#include "frontend_gguf/gguf_file.h"
#include "ir/support/expected.h"
#include "plan_generated.h"
#include "runtime/plan_format.h"

#include <string>
#include <vector>

namespace bitnet::runtime {

// A weight in a layout the GGUF does not have, for the sidecar.
struct RepackedBlob {
  std::string tensor;  // the name the graph's weight nodes use
  std::string source;  // the GGUF tensor it was made from
  std::string dtype;
  std::vector<uint8_t> bytes;
};

// The identity a plan records of its model: the absolute path (a default; -m overrides), size,
// content hash `hash`, architecture and name.
std::unique_ptr<planfb::ModelIdentityT> plan_model_identity(const gguf::GgufFile& file, const Hash128& hash);

// The FlatBuffer of `plan` followed by its footer: the bytes of a plan file.
std::vector<uint8_t> serialize_plan(const planfb::PlanT& plan);

// Sets plan.sidecar from `repacked` (cleared when it is empty; the blobs are placed at 64-byte
// aligned offsets and hashed), then writes PATH.weights (if any) and PATH, by the rules of
// frontend_gguf/output_file.h. When PATH is a device or FIFO (/dev/null, a pipe) the plan still
// names its sidecar but PATH.weights is not written.
Status write_plan(const std::string& path, planfb::PlanT& plan, const std::vector<RepackedBlob>& repacked);

}  // namespace bitnet::runtime

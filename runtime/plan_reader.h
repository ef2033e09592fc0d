// Reading a plan file with every check that needs nothing but the file: the footer (size and
// xxh3 checksum of every byte), the file identifier, the format and weight-layout versions,
// and the FlatBuffers Verifier (memory safety of every offset), in that order. What the plan
// says about the CPU, the model and the sidecar is checked when it is loaded to run
// (plan_model.h).
#pragma once

#include "ir/support/expected.h"
#include "plan_generated.h"

#include <memory>
#include <span>
#include <string>

namespace bitnet::runtime {

Expected<std::unique_ptr<planfb::PlanT>> parse_plan(std::span<const uint8_t> file);
// The same for a file; errors start with the path.
Expected<std::unique_ptr<planfb::PlanT>> read_plan(const std::string& path);

}  // namespace bitnet::runtime

// The bytes of weights a decode step reads: what bounds decode speed on a memory-bound CPU
// (`bitnet bench`'s roofline, Model::decode_bytes_per_token).
#pragma once

#include "runtime/model.h"

#include <cstdint>

namespace bitnet::runtime {

// Every matrix the graph multiplies by, the norm gains, and one embedding row (KV-cache reads
// are excluded: they depend on the position).
int64_t decode_bytes_per_token(const Model& model);

}  // namespace bitnet::runtime

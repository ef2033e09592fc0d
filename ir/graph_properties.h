// Well-known graph properties (ir::Graph::properties()): choices a pass makes that later readers
// (the bench, plans, which store the properties) take as data instead of rediscovering them.
#pragma once

#include <string_view>

namespace bitnet::ir {

// The dtype a retargeted LM head (passes/lm_head.h) reads ("q8_0"); absent when the graph reads
// the model file's head.
inline constexpr std::string_view kLmHeadProperty = "lm_head";

}  // namespace bitnet::ir

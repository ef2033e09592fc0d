// Where non-finite logits come from: the diagnosis behind runtime::nonfinite_logits_error.
#pragma once

#include "runtime/model.h"

#include <span>
#include <string>
#include <string_view>

namespace bitnet::reference {

// Runs `tokens` as one batch through the reference interpreter on the model's lowered
// (unoptimised) graph, node by node, and describes the first node whose output holds a
// non-finite value: its value name, op, layer and the weight it read (and whether that weight
// itself holds non-finite values). `backend` names the session that saw them.
std::string locate_first_non_finite(const runtime::Model& model, std::span<const int32_t> tokens,
                                    std::string_view backend = {});

// Installs the diagnosis above as `model`'s non-finite locator.
void install_nonfinite_locator(runtime::Model& model);

}  // namespace bitnet::reference

// Non-finite logits: detecting them, and explaining where they come from. A model whose
// weights hold NaN or infinity passes the load-time checks (they do not scan every weight:
// see gguf::check_loadable), so generation and evaluation check the logits and stop with an
// error that names the first node of the forward graph whose output went non-finite.
#pragma once

#include "runtime/session.h"

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace bitnet::runtime {

class Model;

// Index of the first NaN or infinity in `values`.
std::optional<size_t> first_non_finite(std::span<const float> values);

// Wraps a session of `model` so that non-finite results can be explained later: it remembers
// the tokens fed since its last reset. Model::new_session returns its sessions wrapped.
std::unique_ptr<Session> diagnosable_session(std::unique_ptr<Session> inner, const Model& model);

// The error for non-finite logits out of `session`: "logits are not finite: the first non-finite
// value appears in ..." when it is a diagnosable session (the diagnosis re-runs its tokens
// through the reference interpreter), else a plain "logits are not finite".
Error nonfinite_logits_error(const Session& session);

// The diagnosis: runs `tokens` as one batch through the reference interpreter on the model's
// lowered (unoptimised) graph, node by node, and describes the first node whose output holds
// a non-finite value: its value name, op, layer and the weight it read (and whether that
// weight itself holds non-finite values). `backend` names the session that saw them.
std::string locate_first_non_finite(const Model& model, std::span<const int32_t> tokens, std::string_view backend = {});

}  // namespace bitnet::runtime

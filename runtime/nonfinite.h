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

namespace bitnet::runtime {

class Model;

// Index of the first NaN or infinity in `values`.
std::optional<size_t> first_non_finite(std::span<const float> values);

// Wraps a session of `model` so that non-finite results can be explained later: it remembers
// the tokens fed since its last reset. Model::new_session returns its sessions wrapped.
std::unique_ptr<Session> diagnosable_session(std::unique_ptr<Session> inner, const Model& model);

// The error for non-finite logits out of `session`: the model's locator's diagnosis when it is
// a diagnosable session of a model that has one (the compiler's loaders install
// reference::locate_first_non_finite, which re-runs its tokens through the reference
// interpreter), else a plain "logits are not finite".
Error nonfinite_logits_error(const Session& session);

}  // namespace bitnet::runtime

// The bytes behind `--lm-head q8_0|q6_k` (passes/lm_head.h renames what the logits matmul
// reads; this makes what it then reads): the model file's F16 head requantized once per model,
// handed to the executor as an extra weight and stored in a plan's sidecar.
#pragma once

#include "frontend_gguf/gguf_file.h"
#include "passes/lm_head.h"
#include "runtime/model.h"
#include "runtime/plan_writer.h"

#include <optional>
#include <string>

namespace bitnet::compiler {

// "f16" | "q8_0" | "q6_k" -> the dtype; fails on anything else.
Expected<ir::DType> parse_lm_head(const std::string& name);

// The head both of `model`'s graphs read when it is a requantized one; nullopt when they read
// the file's tensor. Fails when the two graphs disagree (they are lowered with one option).
Expected<std::optional<passes::LmHead>> requantized_lm_head(const runtime::Model& model);

// What to tell the user when `requested` left `model`'s head alone because it is not F16 (the
// option is then a no-op, not an error: one command line can serve several models); "" when
// there is nothing to say.
std::string lm_head_note(const runtime::Model& model, ir::DType requested);

// `head.source` (F16 [rows, cols] in `file`) requantized to `head.type`, named `head.tensor`.
// Rows are split over `threads` (0: the hardware's); each block depends only on its own
// weights, so the bytes do not depend on the split.
Expected<runtime::RepackedBlob> requantize_lm_head(const gguf::GgufFile& file, const passes::LmHead& head,
                                                   int threads = 0);

}  // namespace bitnet::compiler

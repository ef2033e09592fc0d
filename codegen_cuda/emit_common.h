// Text pieces shared by the CUDA emitters: the device prelude and literal formatting.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>

#include "codegen_cuda/kernel_source.h"

namespace bitnet::codegen_cuda {

// Helpers every kernel may call (warp reductions in a fixed order). Guarded so that several
// kernels can be concatenated into one translation unit.
const std::string& device_prelude();

// The text of a kernel's programmatic-dependent-launch points (see PdlMode), each "" for kOff:
// pdl_wait_text before the first read of a predecessor's output and the first global write
// (with kAfterWait also the trigger), pdl_early_text where kEarly lets the next kernel launch
// (before the independent loads), pdl_suffix for the kernel's name.
std::string pdl_wait_text(PdlMode mode, const std::string& indent);
std::string pdl_early_text(PdlMode mode, const std::string& indent);
std::string pdl_suffix(PdlMode mode);

// The prologue of a kernel that runs one token of several (the `batched` shapes of rope_kv and
// attention): the token t = `index` (a grid coordinate), then `pos_ptr += t`, each per-token
// pointer advanced by t rows of its row length (elements), each per-sequence pointer (a K/V cache)
// by seq[t] regions of its region length. So the rest of the kernel is the one-token text.
using PointerStrides = std::initializer_list<std::pair<const char*, const char*>>;
std::string batched_token_text(const std::string& index, PointerStrides per_token, PointerStrides per_sequence,
                               const std::string& indent);

// A float as a hexadecimal literal ("0x1.4f8b58p-17f"): exact, whatever the locale.
std::string float_literal(float value);

// "  constexpr int kK = 2560;" lines (joined by newlines, none after the last): the shape
// constants a kernel is specialised to.
std::string int_constants(std::initializer_list<std::pair<const char*, std::string>> constants);

// "name_k2560_m6912": identifiers from a prefix and shape numbers.
std::string kernel_name(const std::string& prefix, std::initializer_list<std::pair<const char*, int64_t>> dims);

}  // namespace bitnet::codegen_cuda

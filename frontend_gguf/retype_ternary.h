// Retyping the ternary weights of a GGUF model between the three ternary formats: I2_S (the
// bitnet.cpp format, one f32 scale per tensor), TQ2_0 and TQ1_0 (upstream llama.cpp's formats,
// one f16 scale per 256-weight block). The ternary values never change; only the scale may be
// rounded (f32 -> f16 going to TQ*), see docs/ternary-formats.md. Every other tensor and every
// metadata entry is copied byte for byte, except the keys that name the weight format
// (general.file_type) and, for TQ* outputs, the architecture name upstream engines know.
#pragma once

#include "ir/support/expected.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet::gguf {

enum class TernaryType { I2_S, TQ1_0, TQ2_0 };

// "i2_s", "tq1_0", "tq2_0" in any case; nullopt for anything else.
std::optional<TernaryType> parse_ternary_type(std::string_view name);
std::string_view ternary_type_name(TernaryType type);  // "i2_s", "tq1_0", "tq2_0"

struct RetypeReport {
  int tensors_retyped = 0;  // ternary tensors whose type changed
  int tensors_copied = 0;   // tensors copied byte for byte (non-ternary ones and ternary ones already in `target`)
  double max_scale_rel_error = 0;  // largest |new - old| / |old| over every scale written (0: exact)
};

// Reads `input` (a GGUF), writes `output` atomically with every ternary weight tensor in `target`,
// everything else byte for byte, and the metadata upstream engines need for that type. Refuses
// non-ternary inputs, shapes the target cannot hold (row length not a multiple of 256 for TQ*),
// and input == output. Also refuses what cannot be converted without changing a weight: an I2_S
// or TQ2_0 code 3 (not a ternary value), a scale that is not finite or does not fit f16 (TQ*
// targets), and TQ* -> I2_S when the blocks of a tensor carry different scales.
Expected<RetypeReport> retype_ternary(const std::string& input, const std::string& output, TernaryType target);

struct TensorInfo;
// One ternary tensor as I2_S bytes (spec 6: codes, then the f32 scale) that give exactly the
// products the engine computes from it: an I2_S tensor as stored; a TQ2_0 / TQ1_0 tensor whose
// blocks all carry the same f16 scale bits (then every row takes the reference's one-scale TQ
// formula, which is I2_S's with that scale; docs/ternary-formats.md). Refused, naming the tensor:
// other types, TQ blocks with different scale bits (an all-zero block included: the reference
// then sums block by block, which no single scale reproduces), a 2-bit code 3. For engines that
// read only I2_S (the CUDA kernels).
Expected<std::vector<uint8_t>> ternary_as_i2s(const TensorInfo& t);
// The same checks without building the bytes: what ternary_as_i2s would refuse for the scales,
// read from the blocks' scale fields only (a code 3 is found when the bytes are built).
Status check_ternary_as_i2s(const TensorInfo& t);

}  // namespace bitnet::gguf

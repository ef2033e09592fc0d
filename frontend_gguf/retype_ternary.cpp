// Retyping ternary weights between I2_S, TQ2_0 and TQ1_0 (see retype_ternary.h and
// docs/ternary-formats.md for the scale rules).
#include "frontend_gguf/retype_ternary.h"

#include "frontend_gguf/gguf_file.h"
#include "frontend_gguf/gguf_writer.h"
#include "frontend_gguf/output_file.h"
#include "frontend_gguf/ternary_codec.h"
#include "ir/support/half.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <deque>

namespace bitnet::gguf {
namespace {

// llama.cpp's llama_ftype values written as general.file_type (spec 3).
constexpr uint32_t kFileTypeTQ1_0 = 36;
constexpr uint32_t kFileTypeTQ2_0 = 37;
constexpr uint32_t kFileTypeI2_S = 40;

GgmlType ggml_type_of(TernaryType t) {
  switch (t) {
    case TernaryType::I2_S:
      return GgmlType::I2_S;
    case TernaryType::TQ1_0:
      return GgmlType::TQ1_0;
    case TernaryType::TQ2_0:
      return GgmlType::TQ2_0;
  }
  return GgmlType::I2_S;
}

uint32_t file_type_of(TernaryType t) {
  switch (t) {
    case TernaryType::I2_S:
      return kFileTypeI2_S;
    case TernaryType::TQ1_0:
      return kFileTypeTQ1_0;
    case TernaryType::TQ2_0:
      return kFileTypeTQ2_0;
  }
  return kFileTypeI2_S;
}

bool is_ternary(GgmlType t) {
  return t == GgmlType::I2_S || t == GgmlType::TQ1_0 || t == GgmlType::TQ2_0;
}

// The ternary values of one tensor and its scale(s): one f32 (I2_S) or one f16 per 256 values (TQ*).
struct TernaryTensor {
  std::vector<int8_t> values;
  std::vector<uint16_t> block_scales;
  float tensor_scale = 0;
  bool per_block = false;
};

Expected<TernaryTensor> decode(const TensorInfo& t, uint64_t n) {
  TernaryTensor out;
  Status st;
  switch (t.type) {
    case GgmlType::I2_S:
      st = ternary::decode_i2s(t.data, n, out.values, out.tensor_scale);
      break;
    case GgmlType::TQ2_0:
      out.per_block = true;
      st = ternary::decode_tq2_0(t.data, n, out.values, out.block_scales);
      break;
    case GgmlType::TQ1_0:
      out.per_block = true;
      st = ternary::decode_tq1_0(t.data, n, out.values, out.block_scales);
      break;
    default:
      return make_error("tensor '{}' is not ternary", t.name);
  }
  if (!st.ok()) return make_error("tensor '{}': {}", t.name, st.error().message);
  return out;
}

// One f16 scale per 256-value block, from either kind of source. I2_S's f32 scale is rounded
// to nearest-even f16 (the only lossy step of any conversion); a scale that is not finite, too
// large for f16 or so small it would round to 0 is refused, since it would change the weights.
Expected<std::vector<uint16_t>> block_scales_for(const TensorInfo& t, const TernaryTensor& src, double& rel_error) {
  if (src.per_block) return src.block_scales;
  const float s = src.tensor_scale;
  if (!std::isfinite(s)) return make_error("tensor '{}': its I2_S scale is not finite ({})", t.name, s);
  const uint16_t h = half::from_float(s);
  const float back = half::to_float(h);
  if (!std::isfinite(back)) {
    return make_error("tensor '{}': its I2_S scale {} does not fit an f16 (largest 65504)", t.name, s);
  }
  if (s != 0 && back == 0) return make_error("tensor '{}': its I2_S scale {} rounds to 0 as an f16", t.name, s);
  if (s != 0) rel_error = std::max(rel_error, std::fabs(static_cast<double>(back) - s) / std::fabs(s));
  return std::vector<uint16_t>(src.values.size() / ternary::kTQBlock, h);
}

// I2_S holds one scale per tensor. Blocks whose values are all 0 carry no scale information;
// every other block must have the same f16 scale (as numbers: +0 equals -0), which then becomes
// the tensor's f32 scale exactly. Different scales cannot be merged without changing weights.
Expected<float> tensor_scale_for(const TensorInfo& t, const TernaryTensor& src) {
  if (!src.per_block) return src.tensor_scale;
  std::optional<uint64_t> first;
  for (uint64_t b = 0; b < src.block_scales.size(); ++b) {
    const int8_t* v = src.values.data() + b * ternary::kTQBlock;
    if (std::all_of(v, v + ternary::kTQBlock, [](int8_t x) { return x == 0; })) continue;
    const float d = half::to_float(src.block_scales[b]);
    if (!std::isfinite(d)) return make_error("tensor '{}': block {} has a non-finite scale", t.name, b);
    if (!first) {
      first = b;
    } else if (d != half::to_float(src.block_scales[*first])) {
      return make_error(
          "tensor '{}': blocks {} and {} have different scales ({} and {}); I2_S holds one scale per tensor, so "
          "it cannot hold this tensor without changing weights",
          t.name, *first, b, half::to_float(src.block_scales[*first]), d);
    }
  }
  if (first) return half::to_float(src.block_scales[*first]);
  return src.block_scales.empty() ? 0.0f : half::to_float(src.block_scales.front());
}

Status check_target_shape(const TensorInfo& t, TernaryType target) {
  const uint64_t row = t.ne.empty() ? 1 : t.ne[0];
  const uint64_t block = target == TernaryType::I2_S ? ternary::kI2SBlock : ternary::kTQBlock;
  if (row % block != 0) {
    return make_error("tensor '{}' has rows of {} weights; {} needs a multiple of {}", t.name, row,
                      ternary_type_name(target), block);
  }
  return Status::success();
}

// The f16 scale of every block of a TQ tensor, in order, from the block's last two bytes.
std::vector<uint16_t> tq_block_scales(const TensorInfo& t) {
  const uint64_t block_bytes = t.type == GgmlType::TQ2_0 ? ternary::kTQ2BlockBytes : ternary::kTQ1BlockBytes;
  std::vector<uint16_t> scales(t.data.size() / block_bytes);
  for (size_t b = 0; b < scales.size(); ++b) std::memcpy(&scales[b], t.data.data() + (b + 1) * block_bytes - 2, 2);
  return scales;
}

}  // namespace

Status check_ternary_as_i2s(const TensorInfo& t) {
  if (t.type == GgmlType::I2_S) {
    if (t.data.size() < ternary::i2s_bytes(t.element_count())) return make_error("tensor '{}' is truncated", t.name);
    return Status::success();
  }
  if (t.type != GgmlType::TQ2_0 && t.type != GgmlType::TQ1_0) {
    return make_error("tensor '{}' is {}, not a ternary type", t.name, ggml_type_name(t.type));
  }
  const uint64_t block_bytes = t.type == GgmlType::TQ2_0 ? ternary::kTQ2BlockBytes : ternary::kTQ1BlockBytes;
  if (t.element_count() % ternary::kTQBlock != 0 ||
      t.data.size() < t.element_count() / ternary::kTQBlock * block_bytes) {
    return make_error("tensor '{}' is not a whole number of {} blocks", t.name, ggml_type_name(t.type));
  }
  const std::vector<uint16_t> scales = tq_block_scales(t);
  for (size_t b = 1; b < t.element_count() / ternary::kTQBlock; ++b) {
    if (scales[b] != scales[0]) {
      return make_error(
          "tensor '{}': blocks 0 and {} have different scales ({} and {}); this engine's I2_S kernels take one "
          "scale per tensor",
          t.name, b, half::to_float(scales[0]), half::to_float(scales[b]));
    }
  }
  return Status::success();
}

Expected<std::vector<uint8_t>> ternary_as_i2s(const TensorInfo& t) {
  BITNET_RETURN_IF_ERROR(check_ternary_as_i2s(t));
  const uint64_t n = t.element_count();
  if (t.type == GgmlType::I2_S) return std::vector<uint8_t>(t.data.begin(), t.data.begin() + ternary::i2s_bytes(n));
  BITNET_ASSIGN_OR_RETURN(const TernaryTensor src, decode(t, n));
  return ternary::encode_i2s(src.values, src.block_scales.empty() ? 0.0f : half::to_float(src.block_scales[0]));
}

std::optional<TernaryType> parse_ternary_type(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "i2_s") return TernaryType::I2_S;
  if (lower == "tq1_0") return TernaryType::TQ1_0;
  if (lower == "tq2_0") return TernaryType::TQ2_0;
  return std::nullopt;
}

std::string_view ternary_type_name(TernaryType type) {
  switch (type) {
    case TernaryType::I2_S:
      return "i2_s";
    case TernaryType::TQ1_0:
      return "tq1_0";
    case TernaryType::TQ2_0:
      return "tq2_0";
  }
  return "?";
}

Expected<RetypeReport> retype_ternary(const std::string& input, const std::string& output, TernaryType target) {
  if (same_file(input, output)) {
    return make_error("refusing to write '{}': it is the input file; convert never modifies its input", output);
  }
  Expected<GgufFile> opened = GgufFile::open(input);
  if (!opened.ok()) return make_error("cannot read '{}': {}", input, opened.error().message);
  const GgufFile& file = *opened;

  // Check everything that can refuse the input before converting anything.
  int ternary_count = 0;
  for (const TensorInfo& t : file.tensors()) {
    if (t.type == GgmlType::TL1 || t.type == GgmlType::TL2) {
      return make_error("tensor '{}' is {}, a model-specific lookup-table format; convert reads I2_S, TQ1_0 and TQ2_0",
                        t.name, ggml_type_name(t.type));
    }
    if (!is_ternary(t.type)) continue;
    ++ternary_count;
    if (t.type != ggml_type_of(target)) BITNET_RETURN_IF_ERROR(check_target_shape(t, target));
  }
  if (ternary_count == 0) {
    return make_error("'{}' has no ternary weight tensors (I2_S, TQ1_0 or TQ2_0): it is not a ternary model", input);
  }

  RetypeReport report;
  std::deque<std::vector<uint8_t>> converted;  // owns the new tensor data until the file is written
  GgufWriter writer;
  for (const KeyValue& kv : file.metadata()) writer.set(kv.key, kv.value);
  writer.set("general.file_type", Value(file_type_of(target)));

  for (const TensorInfo& t : file.tensors()) {
    if (!is_ternary(t.type) || t.type == ggml_type_of(target)) {
      BITNET_RETURN_IF_ERROR(writer.add_tensor(TensorToWrite{t.name, t.type, t.ne, t.data}));
      ++report.tensors_copied;
      continue;
    }
    BITNET_ASSIGN_OR_RETURN(TernaryTensor src, decode(t, t.element_count()));
    if (target == TernaryType::I2_S) {
      BITNET_ASSIGN_OR_RETURN(const float scale, tensor_scale_for(t, src));
      converted.push_back(ternary::encode_i2s(src.values, scale));
    } else {
      BITNET_ASSIGN_OR_RETURN(const std::vector<uint16_t> scales, block_scales_for(t, src, report.max_scale_rel_error));
      converted.push_back(target == TernaryType::TQ2_0 ? ternary::encode_tq2_0(src.values, scales)
                                                       : ternary::encode_tq1_0(src.values, scales));
    }
    BITNET_RETURN_IF_ERROR(writer.add_tensor(TensorToWrite{t.name, ggml_type_of(target), t.ne, converted.back()}));
    ++report.tensors_retyped;
  }

  BITNET_RETURN_IF_ERROR(writer.write_file_atomic(output));
  return report;
}

}  // namespace bitnet::gguf

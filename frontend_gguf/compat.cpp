// compat-check / compat-fix (see compat.h).
#include "frontend_gguf/compat.h"

#include "frontend_gguf/gguf_json.h"
#include "frontend_gguf/gguf_writer.h"
#include "frontend_gguf/model_config.h"
#include "frontend_gguf/output_file.h"
#include "frontend_gguf/sha256.h"
#include "frontend_gguf/tokenizer_data.h"

#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>

namespace bitnet::gguf {
namespace {

constexpr uint64_t kSimdAlignment = 32;
// Bounded (load-time) data checks read at most this many bytes of each I2_S tensor's codes.
constexpr uint64_t kBoundedCodeBytes = 4096;
// ... and scan 1-D float tensors (the norms: n_embd or n_ff values) of at most this many elements.
constexpr uint64_t kBoundedFloatElements = uint64_t{1} << 20;
constexpr uint64_t kProgressMinBytes = uint64_t{256} << 20;

// A one-line progress display for the full data scan, drawn only on a terminal.
class ScanProgress {
 public:
  ScanProgress(uint64_t total, bool wanted)
      : total_(total), enabled_(wanted && total >= kProgressMinBytes && ::isatty(STDERR_FILENO) == 1) {}
  ~ScanProgress() {
    if (drawn_) std::fprintf(stderr, "\r%*s\r", 48, "");
  }
  ScanProgress(const ScanProgress&) = delete;
  ScanProgress& operator=(const ScanProgress&) = delete;
  void add(uint64_t bytes) {
    done_ += bytes;
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (drawn_ && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    drawn_ = true;
    std::fprintf(stderr, "\rcompat-check: scanning tensor data %3d %%",
                 static_cast<int>(100.0 * static_cast<double>(done_) / static_cast<double>(total_)));
    std::fflush(stderr);
  }

 private:
  uint64_t total_ = 0;
  uint64_t done_ = 0;
  bool enabled_ = false;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_{};
};

// Index of the first 2-bit field equal to 3 (which x86 I2_S never writes), if any.
std::optional<uint64_t> first_code_three(std::span<const uint8_t> packed, ScanProgress* progress) {
  constexpr size_t kChunk = size_t{1} << 20;
  for (size_t at = 0; at < packed.size(); at += kChunk) {
    const auto chunk = packed.subspan(at, std::min(kChunk, packed.size() - at));
    uint8_t seen = 0;
    for (uint8_t b : chunk) seen |= static_cast<uint8_t>(b & (b >> 1) & 0x55);
    if (progress) progress->add(chunk.size());
    if (seen == 0) continue;
    for (size_t i = 0; i < chunk.size(); ++i) {
      if ((chunk[i] & (chunk[i] >> 1) & 0x55) != 0) return (at + i) * 4;  // byte index * 4 codes
    }
  }
  return std::nullopt;
}

// Index of the first non-finite value of an F32, F16 or BF16 tensor (all-ones exponent).
template <class Bits, Bits kExponent>
std::optional<uint64_t> first_non_finite(std::span<const uint8_t> data, ScanProgress* progress) {
  const uint64_t n = data.size() / sizeof(Bits);
  constexpr uint64_t kChunk = uint64_t{1} << 18;
  for (uint64_t at = 0; at < n; at += kChunk) {
    const uint64_t len = std::min(kChunk, n - at);
    const uint8_t* p = data.data() + at * sizeof(Bits);
    bool bad = false;
    for (uint64_t i = 0; i < len; ++i) {
      Bits b;
      std::memcpy(&b, p + i * sizeof(Bits), sizeof(Bits));
      bad |= (b & kExponent) == kExponent;
    }
    if (progress) progress->add(len * sizeof(Bits));
    if (!bad) continue;
    for (uint64_t i = 0; i < len; ++i) {
      Bits b;
      std::memcpy(&b, p + i * sizeof(Bits), sizeof(Bits));
      if ((b & kExponent) == kExponent) return at + i;
    }
  }
  return std::nullopt;
}

bool is_float_type(GgmlType t) {
  return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16;
}

void check_float_values(const GgufFile& file, const CheckOptions& options, ScanProgress* progress, Findings& f) {
  for (const auto& t : file.tensors()) {
    if (!is_float_type(t.type)) continue;
    if (!options.full_data_scan && (t.ne.size() != 1 || t.element_count() > kBoundedFloatElements)) continue;
    std::optional<uint64_t> bad;
    switch (t.type) {
      case GgmlType::F32:
        bad = first_non_finite<uint32_t, 0x7f800000u>(t.data, progress);
        break;
      case GgmlType::F16:
        bad = first_non_finite<uint16_t, 0x7c00>(t.data, progress);
        break;
      default:
        bad = first_non_finite<uint16_t, 0x7f80>(t.data, progress);
        break;
    }
    if (!bad) continue;
    float value = 0;
    if (t.type == GgmlType::F32) {
      std::memcpy(&value, t.data.data() + *bad * 4, 4);
    } else {
      uint16_t h = 0;
      std::memcpy(&h, t.data.data() + *bad * 2, 2);
      const bool f16 = t.type == GgmlType::F16;
      const bool nan = f16 ? (h & 0x03ff) != 0 : (h & 0x007f) != 0;
      value = nan ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
      if (h & 0x8000) value = -value;
    }
    f.add(Severity::kError, "non-finite-weight",
          fmt::format("{} tensor '{}' holds a non-finite value ({}) at element {} (of {}): the model's outputs "
                      "will be NaN",
                      ggml_type_name(t.type), t.name, value, *bad, t.element_count()),
          "the weights are corrupt; convert the model again from a good checkpoint");
  }
}

void check_i2s(const GgufFile& file, const CheckOptions& options, ScanProgress* progress, Findings& f) {
  uint64_t count = 0;
  for (const auto& t : file.tensors()) {
    if (t.type != GgmlType::I2_S) continue;
    ++count;
    if (t.ne[0] % 128 != 0) {
      if (t.ne[0] % 64 == 0) {
        f.add(Severity::kError, "i2s-arm-layout",
              fmt::format("I2_S tensor '{}' has rows of {} weights: a multiple of 64 but not 128, so it can only be "
                          "the ARM (NEON, 64-weight block) packing, which this engine does not read",
                          t.name, t.ne[0]),
              "re-quantize the model with an x86 build of bitnet.cpp (llama-quantize ... I2_S 1)");
      } else {
        f.add(Severity::kError, "i2s-dims",
              fmt::format("I2_S tensor '{}' has rows of {} weights, not a multiple of 128", t.name, t.ne[0]),
              "I2_S needs row lengths that are multiples of 128; keep this tensor in another type");
      }
      continue;
    }
    const uint64_t n = t.element_count();
    auto packed = t.data.subspan(0, n / 4);
    if (!options.full_data_scan) packed = packed.subspan(0, std::min<uint64_t>(packed.size(), kBoundedCodeBytes));
    if (auto at = first_code_three(packed, options.full_data_scan ? progress : nullptr)) {
      f.add(Severity::kError, "i2s-bad-code",
            fmt::format("I2_S tensor '{}' contains the 2-bit code 3 (first at weight {}), which the x86 I2_S "
                        "quantizer never writes: the data is corrupt or in another packing",
                        t.name, *at),
            "re-quantize the model with an x86 build of bitnet.cpp");
    }
    float scale = 0;
    std::memcpy(&scale, t.data.data() + n / 4, sizeof scale);
    if (!std::isfinite(scale) || scale < 0) {
      f.add(Severity::kError, "i2s-bad-scale", fmt::format("I2_S tensor '{}' has scale {}", t.name, scale),
            "the tensor data is corrupt; re-quantize the model");
    } else if (scale == 0) {
      f.add(Severity::kWarning, "i2s-zero-scale",
            fmt::format("I2_S tensor '{}' has scale 0: every weight is zero", t.name),
            "check that the model was quantized from the right checkpoint");
    }
  }
  if (count > 0) {
    f.add(Severity::kWarning, "i2s-not-upstream",
          fmt::format("{} tensors use I2_S (ggml type 36), which upstream llama.cpp and ollama do not know; they "
                      "refuse this file",
                      count),
          "run it with this engine or bitnet.cpp; for upstream engines, `bitnet convert MODEL -o OUT --type tq2_0` "
          "writes the same ternary weights as TQ2_0");
    f.add(Severity::kInfo, "i2s-layout",
          "I2_S data is read in the x86 packing (128-weight blocks, ACT_PARALLEL); files quantized on ARM builds use "
          "64-weight blocks and give wrong results",
          "quantize I2_S models on x86, as the published files are");
  }
}

// Bytes the full data scan reads (for the progress display).
uint64_t scanned_bytes(const GgufFile& file) {
  uint64_t total = 0;
  for (const auto& t : file.tensors()) {
    if (t.type == GgmlType::I2_S && t.ne[0] % 128 == 0) total += t.element_count() / 4;
    if (is_float_type(t.type)) total += t.nbytes;
  }
  return total;
}

void check_alignment(const GgufFile& file, Findings& f) {
  if (file.misaligned_tensor_count() > 0) {
    f.add(Severity::kError, "misaligned-tensor",
          fmt::format("{} tensors start at offsets that are not multiples of general.alignment = {}",
                      file.misaligned_tensor_count(), file.alignment()),
          "run `bitnet compat-fix` to rewrite the file with aligned tensor data", true);
  }
  if (!file.tensors().empty() && file.alignment() < kSimdAlignment) {
    f.add(Severity::kWarning, "small-alignment",
          fmt::format("general.alignment = {} is below {}: mapped tensor data may be misaligned for SIMD loads",
                      file.alignment(), kSimdAlignment),
          "run `bitnet compat-fix` to realign to 32 bytes", true);
  }
}

void check_embedding(const GgufFile& file, Findings& f) {
  const TensorInfo* embd = file.find_tensor("token_embd.weight");
  if (embd != nullptr && embd->type == GgmlType::Q8_0 && file.architecture().rfind("bitnet", 0) == 0) {
    f.add(Severity::kInfo, "embedding-q8_0",
          "token_embd.weight is Q8_0: bitnet.cpp's quantizer silently falls back to Q8_0 when n_embd is not a "
          "multiple of 256, so logits differ from an F16-embedding reference",
          "re-quantize with --token-embedding-type f16 for reference-exact logits");
  }
}

}  // namespace

Findings check_compat(const GgufFile& file, const CheckOptions& options) {
  Findings f;
  if (file.tensors().empty()) {
    f.add(Severity::kError, "no-tensors", "the file has no tensors (a vocabulary-only GGUF): it cannot run as a model",
          "use it with `--tokenizer`, or pass the full model file");
    if (options.tokenizer) check_tokenizer(file, std::nullopt, f);
    return f;
  }
  check_alignment(file, f);
  analyze_model(file, f);
  if (options.tokenizer) {
    std::optional<uint64_t> rows;
    if (const TensorInfo* embd = file.find_tensor("token_embd.weight"); embd && embd->ne.size() == 2) {
      rows = embd->ne[1];
    }
    check_tokenizer(file, rows, f);
  }
  ScanProgress progress(options.full_data_scan ? scanned_bytes(file) : 0, options.progress);
  check_i2s(file, options, &progress, f);
  check_float_values(file, options, &progress, f);
  check_embedding(file, f);
  return f;
}

Findings check_compat_file(const std::string& path, const CheckOptions& options) {
  auto strict = GgufFile::open(path);
  if (strict.ok()) return check_compat(*strict, options);
  ParseOptions lenient;
  lenient.allow_misaligned_tensors = true;
  auto relaxed = GgufFile::open(path, lenient);
  if (relaxed.ok()) return check_compat(*relaxed, options);
  Findings f;
  f.add(Severity::kError, "parse-error", strict.error().message,
        "the file is not a valid GGUF (truncated or corrupt); download or convert it again");
  return f;
}

std::optional<uint64_t> first_non_finite_element(const TensorInfo& tensor) {
  switch (tensor.type) {
    case GgmlType::F32:
      return first_non_finite<uint32_t, 0x7f800000u>(tensor.data, nullptr);
    case GgmlType::F16:
      return first_non_finite<uint16_t, 0x7c00>(tensor.data, nullptr);
    case GgmlType::BF16:
      return first_non_finite<uint16_t, 0x7f80>(tensor.data, nullptr);
    default:
      return std::nullopt;
  }
}

Status check_loadable(const GgufFile& file, bool own_tokenizer) {
  const Findings f = check_compat(file, {.tokenizer = own_tokenizer, .full_data_scan = false, .progress = false});
  if (const Finding* e = f.first_error()) return make_error("{}", format_finding(*e));
  return Status::success();
}

namespace {

std::string utc_now_iso8601() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

nlohmann::json json_or_null(const Value* v) {
  return v ? value_to_json(*v) : nlohmann::json(nullptr);
}

// Index of the first token equal to one of `candidates` (in candidate order).
std::optional<uint32_t> find_token(const Array& tokens, std::initializer_list<std::string_view> candidates) {
  for (std::string_view want : candidates) {
    for (size_t i = 0; i < tokens.strings.size(); ++i) {
      if (tokens.strings[i] == want) return static_cast<uint32_t>(i);
    }
  }
  return std::nullopt;
}

// Number of layers from "blk.N." tensor names, when the indices are exactly 0..N-1.
std::optional<uint32_t> count_blocks(const GgufFile& file) {
  uint64_t max_index = 0;
  bool any = false;
  for (const auto& t : file.tensors()) {
    if (t.name.rfind("blk.", 0) != 0) continue;
    uint64_t idx = 0;
    const char* begin = t.name.data() + 4;
    const char* end = t.name.data() + t.name.size();
    auto [ptr, ec] = std::from_chars(begin, end, idx);
    if (ec != std::errc() || ptr == end || *ptr != '.') continue;
    max_index = std::max(max_index, idx);
    any = true;
  }
  if (!any || max_index >= 65536) return std::nullopt;
  for (uint64_t i = 0; i <= max_index; ++i) {
    if (file.find_tensor(fmt::format("blk.{}.attn_norm.weight", i)) == nullptr) return std::nullopt;
  }
  return static_cast<uint32_t>(max_index + 1);
}

class FixPlanner {
 public:
  FixPlanner(const GgufFile& file, GgufWriter& writer) : file_(file), writer_(writer) {}

  void set(const std::string& code, const std::string& key, Value value, std::string why) {
    const Value* before = writer_.find(key);
    if (before != nullptr && *before == value) return;
    AppliedFix fix{code, key, json_or_null(before), value_to_json(value), std::move(why)};
    writer_.set(key, std::move(value));
    fixes.push_back(std::move(fix));
  }

  void run() {
    const std::string arch = file_.architecture();
    const std::string p = arch + ".";
    const std::string* model = file_.get_string("tokenizer.ggml.model");
    const Array* tokens = file_.get_array("tokenizer.ggml.tokens");

    // 1. The pre-tokenizer llama.cpp/bitnet.cpp use when the key is missing (spec 9), written explicitly.
    if (model && *model == "gpt2" && file_.find("tokenizer.ggml.pre") == nullptr) {
      set("missing-pre", "tokenizer.ggml.pre", std::string("default"),
          "added the value llama.cpp/bitnet.cpp fall back to when the key is missing");
    }
    // 2. Hyper-parameters derivable from the tensor shapes.
    if (!arch.empty() && find_arch(arch) != nullptr) {
      const TensorInfo* embd = file_.find_tensor("token_embd.weight");
      if (!file_.find(p + "embedding_length") && embd && embd->ne.size() == 2) {
        set("missing-hparam", p + "embedding_length", static_cast<uint32_t>(embd->ne[0]),
            "derived from token_embd.weight ne[0]");
      }
      const TensorInfo* up = file_.find_tensor("blk.0.ffn_up.weight");
      if (!file_.find(p + "feed_forward_length") && up && up->ne.size() == 2) {
        set("missing-hparam", p + "feed_forward_length", static_cast<uint32_t>(up->ne[1]),
            "derived from blk.0.ffn_up.weight ne[1]");
      }
      if (!file_.find(p + "block_count")) {
        if (auto blocks = count_blocks(file_)) {
          set("missing-hparam", p + "block_count", *blocks, "counted from the blk.N tensors");
        }
      }
      const auto n_head = file_.get_uint(p + "attention.head_count");
      const TensorInfo* k = file_.find_tensor("blk.0.attn_k.weight");
      if (!file_.find(p + "attention.head_count_kv") && n_head && *n_head > 0 && embd && k && k->ne.size() == 2 &&
          embd->ne[0] % *n_head == 0) {
        const uint64_t head_dim = embd->ne[0] / *n_head;
        if (k->ne[1] % head_dim == 0 && k->ne[1] != embd->ne[0]) {
          set("missing-hparam", p + "attention.head_count_kv", static_cast<uint32_t>(k->ne[1] / head_dim),
              "derived from blk.0.attn_k.weight ne[1] / head size (without it loaders assume no GQA and fail)");
        }
      }
      if (const Value* vs = file_.find(p + "vocab_size"); vs && tokens && vs->as_uint() != tokens->size()) {
        set("vocab-size-key", p + "vocab_size", static_cast<uint32_t>(tokens->size()), "set to the token count");
      }
    }
    // 3. Special ids that the vocabulary makes unambiguous.
    if (model && tokens && tokens->elem_type == ValueType::String) {
      const bool spm = *model == "llama";
      if (!file_.find("tokenizer.ggml.bos_token_id")) {
        auto id =
            spm ? find_token(*tokens, {"<s>"}) : find_token(*tokens, {"<|begin_of_text|>", "<s>", "<|endoftext|>"});
        if (id) set("missing-bos", "tokenizer.ggml.bos_token_id", *id, "found the BOS token in the vocabulary");
      }
      if (!file_.find("tokenizer.ggml.eos_token_id")) {
        auto id =
            spm ? find_token(*tokens, {"</s>"}) : find_token(*tokens, {"<|end_of_text|>", "</s>", "<|endoftext|>"});
        if (id) set("missing-eos", "tokenizer.ggml.eos_token_id", *id, "found the EOS token in the vocabulary");
      }
    }
    // 4. Realignment: the writer always places tensor data on `general.alignment`.
    if (!file_.tensors().empty() && file_.alignment() < kSimdAlignment) {
      set("small-alignment", "general.alignment", static_cast<uint32_t>(kSimdAlignment),
          "tensor data rewritten on 32-byte boundaries");
    } else if (file_.misaligned_tensor_count() > 0) {
      fixes.push_back(AppliedFix{"misaligned-tensor", "tensor data",
                                 nlohmann::json{{"misaligned_tensors", file_.misaligned_tensor_count()}},
                                 nlohmann::json{{"misaligned_tensors", 0}},
                                 fmt::format("tensor data rewritten on {}-byte boundaries", file_.alignment())});
    }
  }

  std::vector<AppliedFix> fixes;

 private:
  const GgufFile& file_;
  GgufWriter& writer_;
};

Status write_text_atomic(const std::string& path, const std::string& text) {
  return write_output_file(path, [&](OutputFile& out) { return out.write(text); });
}

}  // namespace

Expected<CompatFixResult> compat_fix(const std::string& in, const std::string& out, const std::string& tool_version) {
  if (same_file(in, out)) {
    return make_error("refusing to write '{}': it is the input file; compat-fix never modifies its input", out);
  }
  // The report is derived from OUT's name: it is written only beside a regular file (for a
  // device or FIFO such as /dev/null there is no report; result.report_path is empty).
  BITNET_ASSIGN_OR_RETURN(const OutputKind out_kind, output_kind(out));
  const bool out_is_file = out_kind == OutputKind::kRegularFile;
  const std::string report_path = out + ".compat.json";
  if (out_is_file && same_file(in, report_path)) {
    return make_error("refusing: the report path '{}' is the input file", report_path);
  }
  ParseOptions lenient;
  lenient.allow_misaligned_tensors = true;
  BITNET_ASSIGN_OR_RETURN(GgufFile file, GgufFile::open(in, lenient));

  CompatFixResult result;
  result.input_sha256 = sha256_hex(file.bytes());
  result.report_path = out_is_file ? report_path : std::string();
  GgufWriter writer = GgufWriter::from_file(file);
  FixPlanner planner(file, writer);
  planner.run();
  result.fixes = std::move(planner.fixes);

  std::vector<uint8_t> bytes;  // a device or FIFO cannot be read back: its bytes are checked before writing
  Expected<GgufFile> written = make_error("not written");
  if (out_is_file) {
    BITNET_RETURN_IF_ERROR(writer.write_file_atomic(out));
    written = GgufFile::open(out);
  } else {
    BITNET_ASSIGN_OR_RETURN(bytes, writer.to_bytes());
    written = GgufFile::parse(bytes);
  }
  if (!written.ok()) return make_error("the written file does not read back: {}", written.error().message);
  result.output_sha256 = sha256_hex(written->bytes());
  result.remaining = check_compat(*written);
  if (!out_is_file) {
    BITNET_RETURN_IF_ERROR(
        write_output_file(out, [&](OutputFile& f) { return f.write(std::span<const uint8_t>(bytes)); }));
    return result;
  }

  nlohmann::json report;
  report["tool"] = "bitnet compat-fix";
  report["tool_version"] = tool_version;
  report["utc_time"] = utc_now_iso8601();
  report["input"] = {{"path", in}, {"sha256", result.input_sha256}, {"size", file.file_size()}};
  report["output"] = {{"path", out}, {"sha256", result.output_sha256}, {"size", written->file_size()}};
  nlohmann::json fixes = nlohmann::json::array();
  for (const auto& fx : result.fixes) {
    fixes.push_back({{"code", fx.code},
                     {"key", fx.key},
                     {"before", fx.before},
                     {"after", fx.after},
                     {"description", fx.description}});
  }
  report["fixes"] = fixes;
  nlohmann::json remaining = nlohmann::json::array();
  for (const auto& f : result.remaining.items) {
    remaining.push_back({{"severity", severity_name(f.severity)}, {"code", f.code}, {"message", f.message}});
  }
  report["remaining_findings"] = remaining;
  BITNET_RETURN_IF_ERROR(
      write_text_atomic(report_path, report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"));
  return result;
}

}  // namespace bitnet::gguf

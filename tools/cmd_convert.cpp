// `bitnet convert INPUT -o OUT.gguf [--type T] [--embedding-type E]`: a Hugging Face model
// directory becomes a GGUF model (convert/hf_convert.h); a GGUF input has its ternary weights
// retyped between I2_S, TQ2_0 and TQ1_0 (frontend_gguf/retype_ternary.h).
#include "convert/hf_convert.h"
#include "frontend_gguf/retype_ternary.h"
#include "tools/commands.h"

#include <fmt/format.h>

#include <array>
#include <filesystem>
#include <memory>

namespace bitnet::tools {
namespace {

constexpr std::array<std::string_view, 7> kTypes = {"i2_s", "tq2_0", "tq1_0", "f16", "bf16", "f32", "q8_0"};
constexpr std::array<std::string_view, 4> kEmbeddingTypes = {"f16", "bf16", "f32", "q8_0"};

template <size_t N>
bool one_of(const std::string& value, const std::array<std::string_view, N>& names) {
  for (auto name : names) {
    if (value == name) return true;
  }
  return false;
}

int retype_gguf(const std::string& input, const std::string& output, const std::string& type) {
  const auto target = gguf::parse_ternary_type(type);
  if (!target) {
    print_error("convert", fmt::format("a GGUF input is retyped to i2_s, tq2_0 or tq1_0, not '{}'", type));
    return kExitUsage;
  }
  auto report = gguf::retype_ternary(input, output, *target);
  if (!report.ok()) {
    print_error("convert", report.error().message);
    return kExitFailure;
  }
  fmt::print("wrote {} ({} ternary tensors retyped to {}, {} copied; largest scale change {:.3g})\n", output,
             report->tensors_retyped, type, report->tensors_copied, report->max_scale_rel_error);
  return kExitOk;
}

}  // namespace

void add_convert(CLI::App& app, int& exit_code) {
  struct Options {
    std::string input, output, type, embedding_type, name;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "convert", "Convert a Hugging Face model directory to GGUF, or retype a GGUF's ternary weights");
  cmd->add_option("input", o->input, "a Hugging Face model directory (config.json, *.safetensors, tokenizer) or a GGUF")
      ->required();
  cmd->add_option("-o,--output", o->output, "output GGUF file")->required();
  cmd->add_option("--type", o->type,
                  "weight type: i2_s (BitNet default), tq2_0, tq1_0, f16 (llama default), bf16, f32, q8_0");
  cmd->add_option("--embedding-type", o->embedding_type,
                  "token embedding / output type: f16 (default), bf16, f32, q8_0");
  cmd->add_option("--name", o->name, "general.name (default: the directory's name)");
  cmd->callback([o, &exit_code] {
    if (!o->type.empty() && !one_of(o->type, kTypes)) {
      print_error("convert",
                  fmt::format("--type '{}' is not one of i2_s, tq2_0, tq1_0, f16, bf16, f32, q8_0", o->type));
      exit_code = kExitUsage;
      return;
    }
    if (!o->embedding_type.empty() && !one_of(o->embedding_type, kEmbeddingTypes)) {
      print_error("convert",
                  fmt::format("--embedding-type '{}' is not one of f16, bf16, f32, q8_0", o->embedding_type));
      exit_code = kExitUsage;
      return;
    }
    std::error_code ec;
    if (!std::filesystem::is_directory(o->input, ec)) {
      if (!std::filesystem::exists(o->input, ec)) {
        print_error("convert", fmt::format("{} does not exist", o->input));
        exit_code = kExitFailure;
        return;
      }
      if (!o->embedding_type.empty() || !o->name.empty() || o->type.empty()) {
        print_error("convert", "a GGUF input takes --type (i2_s, tq2_0 or tq1_0) and nothing else");
        exit_code = kExitUsage;
        return;
      }
      exit_code = retype_gguf(o->input, o->output, o->type);
      return;
    }
    auto report = convert::convert_hf_checkpoint(
        o->input, o->output, {.type = o->type, .embedding_type = o->embedding_type, .name = o->name});
    if (!report.ok()) {
      print_error("convert", report.error().message);
      exit_code = kExitFailure;
      return;
    }
    fmt::print(
        "wrote {} ({} -> {}, {} layers, {} tensors; weights {} from {}; embedding {}; tokenizer {} ({}{}), "
        "{} tokens)\n",
        o->output, report->hf_architecture, report->gguf_arch, report->n_layer, report->n_tensors, report->weight_type,
        report->layout, report->embedding_type, report->tokenizer.source, report->tokenizer.model,
        report->tokenizer.pre.empty() ? "" : ", pre " + report->tokenizer.pre, report->tokenizer.n_tokens);
    for (const auto& note : report->tokenizer.notes) fmt::print(stderr, "bitnet convert: note: {}\n", note);
    exit_code = kExitOk;
  });
}

}  // namespace bitnet::tools

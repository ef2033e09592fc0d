// `bitnet gen-model`: writes a synthetic model in the exact I2_S layout of the
// reference tools (random ternary weights, F16 tied embedding) for tests and benchmarks.
#include "frontend_gguf/model_generator.h"
#include "tools/commands.h"
#include "tools/option_values.h"

#include <fmt/format.h>

#include <chrono>
#include <memory>
#include <optional>

namespace bitnet::tools {

void add_gen_model(CLI::App& app, int& exit_code) {
  struct Options {
    std::string arch, preset = "tiny", out, vocab_from;
    std::optional<uint32_t> layers, embd, ff, heads, heads_kv;
    std::string seed = "1";
  };
  auto o = std::make_shared<Options>();
  std::string presets;
  for (auto name : gguf::model_preset_names()) presets += fmt::format("{}{}", presets.empty() ? "" : ", ", name);
  CLI::App* cmd =
      app.add_subcommand("gen-model", "Write a synthetic model with random ternary weights in the I2_S layout");
  cmd->add_option("--arch", o->arch, "bitnet, bitnet-b1.58 (default of the presets), bitnet-25 or llama");
  cmd->add_option("--preset", o->preset, "shape preset: " + presets)->capture_default_str();
  cmd->add_option("--layers", o->layers, "override the layer count")->check(integer_in(1, 1024));
  cmd->add_option("--embd", o->embd, "override the embedding size (multiple of 128)")->check(integer_in(1, 1 << 16));
  cmd->add_option("--ff", o->ff, "override the feed-forward size (multiple of 128)")->check(integer_in(1, 1 << 18));
  cmd->add_option("--heads", o->heads, "override the head count")->check(integer_in(1, 1024));
  cmd->add_option("--heads-kv", o->heads_kv, "override the KV head count")->check(integer_in(1, 1024));
  cmd->add_option("--vocab-from", o->vocab_from, "copy the tokenizer of this GGUF");
  cmd->add_option("--seed", o->seed, "random seed, 0 to 2^64-1 (-1: a random one)")
      ->check(seed_value())
      ->capture_default_str();
  cmd->add_option("-o,--output", o->out, "output GGUF file")->required();
  cmd->callback([o, &exit_code] {
    auto spec = gguf::model_preset(o->preset);
    if (!spec) {
      print_error("gen-model", fmt::format("unknown preset '{}'", o->preset));
      exit_code = kExitUsage;
      return;
    }
    if (!o->arch.empty()) spec->arch = o->arch;
    if (o->layers) spec->n_layer = *o->layers;
    if (o->embd) spec->n_embd = *o->embd;
    if (o->ff) spec->n_ff = *o->ff;
    if (o->heads) spec->n_head = *o->heads;
    if (o->heads_kv) spec->n_head_kv = *o->heads_kv;
    spec->seed =
        to_seed(o->seed).value_or(static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count()));
    std::optional<gguf::GgufFile> vocab;
    if (!o->vocab_from.empty()) {
      auto file = gguf::GgufFile::open(o->vocab_from);
      if (!file.ok()) {
        print_error("gen-model", file.error().message);
        exit_code = kExitFailure;
        return;
      }
      vocab.emplace(std::move(*file));
      spec->vocab_from = &*vocab;
    }
    auto status = gguf::generate_model(*spec, o->out);
    if (!status.ok()) {
      print_error("gen-model", status.error().message);
      exit_code = kExitFailure;
      return;
    }
    fmt::print("wrote {} ({} {} layers, n_embd {}, n_ff {}, heads {}/{}, seed {})\n", o->out, spec->arch, spec->n_layer,
               spec->n_embd, spec->n_ff, spec->n_head, spec->n_head_kv, spec->seed);
    exit_code = kExitOk;
  });
}

}  // namespace bitnet::tools

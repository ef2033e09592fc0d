// Options shared by `bitnet run` and `bitnet eval`: model, tokenizer, threads, backend,
// context, and the environment defaults (BITNET_GGUF, BITNET_SEED, BITNET_DETERMINISTIC).
#pragma once

#include "bitnet/model.h"
#include "bitnet/sampler.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace bitnet::tools {

// The largest -c/--ctx-size accepted (the KV cache of a 2B model at this size is ~80 GB).
inline constexpr int64_t kMaxContext = int64_t{1} << 20;

// Top logits recorded per step by --dump-logit-steps when --logits-topk is not given.
inline constexpr int32_t kDefaultLogitsTopK = 10;

struct CommonRunOptions {
  std::string model;
  std::string hf_repo;  // -hf REPO[:FILE]: the model from the Hugging Face hub (replaces -m)
  std::string tokenizer;
  int threads = 0;  // 0: hardware threads, capped at 8
  int64_t ctx = 0;
  std::string backend = "jit";
  std::string target = "host";
  bool verbose = false;
  bool deterministic = false;
  std::string plan;                   // run this compiled plan (-m then only overrides where the model is)
  bool no_cache = false;              // JIT without the plan cache
  std::string lm_head = "f16";        // f16 | q8_0 | q6_k: requantize an F16 LM head (JIT only; opt-in)
  std::string cuda_gemm = "dp4a";     // dp4a | mma: the CUDA backend's batched GEMMs
  double cache_lock_timeout_s = 600;  // $BITNET_CACHE_LOCK_TIMEOUT: the wait for another process's compile
};

void add_common_run_options(CLI::App& cmd, CommonRunOptions& o);
// Sampling (llama.cpp's options and defaults): --greedy, --temperature, --top-k, --top-p,
// --min-p, --repeat-penalty, --repeat-last-n, -s/--seed.
struct SamplingFlags {
  bool greedy = false;
  SamplerParams sampling;
  std::string seed;  // checked by seed_value(); empty: BITNET_SEED, else random
};
void add_sampling_options(CLI::App& cmd, SamplingFlags& o);
// The options with the seed resolved: --seed, else $BITNET_SEED (both may say -1: random), else 0
// with --deterministic, else random.
SamplerParams resolve_sampling(const SamplingFlags& o, bool deterministic);

// --print-after-all, --print-after=PASS and --time-passes (dump-ir, run, compile): what the
// compiler's pass manager is asked to print to stderr (tools/pass_options.h turns them into
// passes::PassOptions; bitnet-rt runs no passes and accepts none).
struct PassFlags {
  bool print_after_all = false;
  std::vector<std::string> print_after;
  bool time_passes = false;
  bool any() const { return print_after_all || time_passes || !print_after.empty(); }
};
void add_pass_options(CLI::App& cmd, PassFlags& o);
// Resolves defaults from the environment (a bad BITNET_DETERMINISTIC is a usage error, thrown
// as option_values.h says); fails on --lm-head other than f16 with the interpreter or a plan
// (whose LM head `bitnet compile --lm-head` fixed).
Status finish_common_options(CommonRunOptions& o);
int resolved_threads(const CommonRunOptions& o);

// Loads the model through the library (bitnet::Model::load: the plan, or the GGUF through the
// compiler in `bitnet`; bitnet-rt's library runs plans only) with compiler diagnostics from
// `passes`; the library's messages (warnings, -v reports) go to stderr.
Expected<std::shared_ptr<const Model>> load_model(const CommonRunOptions& o, double* load_ms,
                                                  const PassFlags& passes = {});

// "1,2,3" -> ids; fails on anything that is not a comma-separated integer list.
Expected<std::vector<int32_t>> parse_id_list(const std::string& text);
bool is_valid_utf8(std::string_view s);
// The whole file; errors name the file and the system's reason ("Is a directory").
Expected<std::string> read_text_file(const std::string& path);

// [[{"id", "logit", "piece"}...] per step]: `steps` of items with .id and .logit, piece(id) the
// token's text.
template <class Steps, class Piece>
nlohmann::json top_logits_json(const Steps& steps, const Piece& piece) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& step : steps) {
    nlohmann::json items = nlohmann::json::array();
    for (const auto& c : step) items.push_back({{"id", c.id}, {"logit", c.logit}, {"piece", piece(c.id)}});
    out.push_back(items);
  }
  return out;
}
Status write_json_file(const std::string& path, const nlohmann::json& doc);

}  // namespace bitnet::tools

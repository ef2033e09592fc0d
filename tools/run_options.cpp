// Shared run/eval options (see run_options.h).
#include "tools/run_options.h"

#include "frontend_gguf/output_file.h"
#include "hub/hub_model.h"
#include "hub/progress_bar.h"
#include "tools/option_values.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <thread>

namespace bitnet::tools {

namespace {

// -hf REPO[:FILE]: fetched into the hub cache (a progress bar on a terminal), then its path.
Expected<std::string> fetch_hf_model(const std::string& text) {
  BITNET_ASSIGN_OR_RETURN(hub::ModelSpec spec, hub::parse_model_spec(text));
  BITNET_ASSIGN_OR_RETURN(hub::HubOptions options, hub::hub_options_from_environment());
  hub::ProgressBar bar(stderr);
  if (hub::progress_bar_wanted()) options.progress = [&bar](const hub::DownloadProgress& p) { bar.update(p); };
  hub::HubClient client(std::move(options));
  auto got = hub::fetch_model(client, spec);
  bar.finish();
  if (!got.ok()) return got.error();
  if (!got->note.empty()) fmt::print(stderr, "bitnet: {}\n", got->note);
  return got->path;
}

}  // namespace

void add_common_run_options(CLI::App& cmd, CommonRunOptions& o) {
  cmd.add_option("-m,--model", o.model, "GGUF model (default: $BITNET_GGUF)")->envname("BITNET_GGUF");
  cmd.add_option("--hf-repo", o.hf_repo,
                 "-hf REPO[:FILE]: download the GGUF from the Hugging Face hub (bitnet download) and use it instead "
                 "of -m; without FILE the repository's only .gguf")
      ->check(CLI::Validator(
          [](std::string& text) {
            auto spec = hub::parse_model_spec(text);
            return spec.ok() ? std::string() : spec.error().message;
          },
          "REPO[:FILE]", "hf_repo"));
  cmd.add_option("--tokenizer", o.tokenizer, "use this tokenizer.json or GGUF instead of the model's own");
  cmd.add_option("-t,--threads", o.threads, "threads (default: all cores, at most 8)")
      ->check(integer_in(1, max_threads()));
  cmd.add_option("-c,--ctx-size", o.ctx, "context size in tokens (default: the model's, at most 4096)")
      ->check(integer_in(1, kMaxContext));
  cmd.add_option("--backend", o.backend,
                 "jit (kernels compiled for this CPU with LLVM), interp (the reference interpreter), cuda (an "
                 "NVIDIA GPU through the CUDA driver: BitNet I2_S models) or auto (cuda where it can run, else jit, "
                 "saying why)")
      ->check(CLI::IsMember({"jit", "interp", "cuda", "auto"}))
      ->capture_default_str();
  cmd.add_option("--target", o.target, "JIT code target: host, x86-64-v3 or x86-64-v4")
      ->check(CLI::IsMember({"host", "x86-64-v3", "x86-64-v4"}))
      ->capture_default_str();
  cmd.add_option("--cuda-gemm", o.cuda_gemm,
                 "cuda backend: the batched steps' ternary GEMMs with dp4a or on int8 tensor cores (mma; the same "
                 "results, not yet measured on a GPU)")
      ->check(CLI::IsMember({"dp4a", "mma"}))
      ->capture_default_str();
  cmd.add_option("--plan", o.plan,
                 "run this compiled plan (bitnet compile); -m then only says where the model is, and it must be "
                 "the model the plan was compiled for");
  cmd.add_option("--lm-head", o.lm_head,
                 "JIT: the LM head's type. q8_0 or q6_k requantize an F16 head once at load (fewer bytes per "
                 "decoded token, slightly different logits; heads that are not F16 are used as they are)")
      ->check(CLI::IsMember({"f16", "q8_0", "q6_k"}))
      ->capture_default_str();
  cmd.add_flag("--no-cache", o.no_cache, "JIT: compile without looking in or writing to the plan cache");
  cmd.add_flag("-v,--verbose", o.verbose, "report compilation (kernels, per-kernel compile times) on stderr");
  cmd.add_flag("--deterministic", o.deterministic,
               "reproducible results: a fixed seed unless one is given (results never depend on the thread count); "
               "also set by BITNET_DETERMINISTIC=1");
}

void add_sampling_options(CLI::App& cmd, SamplingFlags& o) {
  constexpr int64_t kMaxInt32 = std::numeric_limits<int32_t>::max();
  constexpr double kInf = std::numeric_limits<double>::infinity();
  cmd.add_flag("--greedy", o.greedy, "always take the most likely token (same as --temperature 0)");
  cmd.add_option("--temperature,--temp", o.sampling.temperature, "sampling temperature; 0 = greedy")
      ->check(real_in(0, kInf, false, true))
      ->capture_default_str();
  cmd.add_option("--top-k", o.sampling.top_k, "keep the K most likely tokens (0 = off)")
      ->check(integer_in(0, kMaxInt32))
      ->capture_default_str();
  cmd.add_option("--top-p", o.sampling.top_p, "nucleus sampling threshold (1 = off)")
      ->check(real_in(0, 1))
      ->capture_default_str();
  cmd.add_option("--min-p", o.sampling.min_p, "drop tokens below min-p x the top probability (0 = off)")
      ->check(real_in(0, 1))
      ->capture_default_str();
  cmd.add_option("--repeat-penalty", o.sampling.repeat_penalty, "penalty for repeated tokens (1 = off)")
      ->check(real_in(0, kInf, true, true))
      ->capture_default_str();
  cmd.add_option("--repeat-last-n", o.sampling.repeat_last_n, "how many recent tokens the penalty considers (0 = off)")
      ->check(integer_in(0, kMaxInt32))
      ->capture_default_str();
  cmd.add_option("-s,--seed", o.seed,
                 "random seed, 0 to 2^64-1, or -1 for a random one (default: $BITNET_SEED, else random; 0 with "
                 "--deterministic)")
      ->check(seed_value());
}

SamplerParams resolve_sampling(const SamplingFlags& o, bool deterministic) {
  std::optional<uint64_t> seed = deterministic ? std::optional<uint64_t>(0) : std::nullopt;
  if (!o.seed.empty()) {
    seed = to_seed(o.seed);
  } else if (auto env = checked_env("BITNET_SEED", seed_value())) {
    seed = to_seed(*env);
  }
  if (!seed) seed = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  SamplerParams out = o.sampling;
  if (o.greedy) out.temperature = 0;  // greedy
  out.seed = *seed;
  return out;
}

void add_pass_options(CLI::App& cmd, PassFlags& o) {
  // A misspelt pass name would print nothing and look like a pass that did nothing.
  const CLI::Validator known_pass(
      [](std::string& name) -> std::string {
        const std::vector<std::string> names = compiler_pass_names();
        if (names.empty()) return "this runtime has no compiler and runs no passes";
        if (std::find(names.begin(), names.end(), name) != names.end()) return {};
        return fmt::format("no pass named '{}' (passes: {})", name, fmt::join(names, ", "));
      },
      "PASS", "known_pass");
  cmd.add_flag("--print-after-all", o.print_after_all, "print the IR to stderr after every pass");
  cmd.add_option("--print-after", o.print_after, "print the IR to stderr after the named pass (repeatable)")
      ->check(known_pass);
  cmd.add_flag("--time-passes", o.time_passes, "print each pass's time to stderr");
}

Status finish_common_options(CommonRunOptions& o) {
  if (!o.hf_repo.empty()) {
    BITNET_ASSIGN_OR_RETURN(o.model, fetch_hf_model(o.hf_repo));
  }
  if (o.model.empty() && o.plan.empty()) {
    throw_usage_error("-m", "no model: pass -m MODEL (or --plan PLAN) or set BITNET_GGUF");
  }
  if (bool_from_env("BITNET_DETERMINISTIC").value_or(false)) o.deterministic = true;
  if (auto timeout = checked_env("BITNET_CACHE_LOCK_TIMEOUT", real_in(0, 86400))) {
    o.cache_lock_timeout_s = std::stod(*timeout);
  }
  if (o.lm_head != "f16" && !o.plan.empty()) {
    return make_error("--lm-head {} does not apply to a plan: its LM head was fixed by `bitnet compile --lm-head`",
                      o.lm_head);
  }
  if (o.lm_head != "f16" && o.backend == "interp") {
    return make_error("--lm-head {} needs --backend jit: the interpreter reads only the model file's tensors",
                      o.lm_head);
  }
  return Status::success();
}

int resolved_threads(const CommonRunOptions& o) {
  if (o.threads > 0) return o.threads;
  return static_cast<int>(std::clamp<unsigned>(std::thread::hardware_concurrency(), 1, 8));
}

Expected<std::shared_ptr<const Model>> load_model(const CommonRunOptions& o, double* load_ms, const PassFlags& passes) {
  const auto start = std::chrono::steady_clock::now();
  ModelParams params;
  params.backend = o.backend;
  params.target = o.target;
  params.tokenizer_path = o.tokenizer;
  params.use_cache = !o.no_cache;
  params.plan_path = o.plan;
  params.lm_head = o.lm_head;
  params.cuda_gemm = o.cuda_gemm;
  params.verbose = o.verbose;
  params.cache_lock_timeout_s = o.cache_lock_timeout_s;
  params.diagnostics = {passes.print_after_all, passes.print_after, passes.time_passes};
  auto model = bitnet::Model::load(o.model, params);
  if (load_ms) *load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (!model.ok()) return make_error("{}", model.error().message);
  return *model;
}

Expected<std::vector<int32_t>> parse_id_list(const std::string& text) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t comma = std::min(text.find(',', pos), text.size());
    std::string_view item(text.data() + pos, comma - pos);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    int32_t id = 0;
    auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), id);
    if (item.empty() || ec != std::errc() || end != item.data() + item.size()) {
      return make_error("'{}' is not a comma-separated list of token ids (bad item '{}')", text, item);
    }
    ids.push_back(id);
    pos = comma + 1;
  }
  return ids;
}

bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (len == 0 || i + len > s.size() || (len == 2 && c < 0xc2) || c > 0xf4) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    }
    const auto c1 = len > 1 ? static_cast<unsigned char>(s[i + 1]) : 0;
    if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 >= 0xa0) || (c == 0xf0 && c1 < 0x90) ||
        (c == 0xf4 && c1 >= 0x90)) {
      return false;
    }
    i += len;
  }
  return true;
}

Expected<std::string> read_text_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return make_error("cannot read '{}': {}", path, std::strerror(errno));
  std::string text;
  char buffer[1 << 16];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, f)) > 0) text.append(buffer, n);
  const int error = std::ferror(f) ? errno : 0;
  std::fclose(f);
  if (error != 0) return make_error("cannot read '{}': {}", path, std::strerror(error));
  return text;
}

Status write_json_file(const std::string& path, const nlohmann::json& doc) {
  // frontend_gguf/output_file.h: temp file + rename over a regular file, /dev/null written directly.
  const std::string text = doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  return gguf::write_output_file(path, [&](gguf::OutputFile& out) { return out.write(text); });
}

}  // namespace bitnet::tools

// Options shared by `bitnet run` and `bitnet eval`: model, tokenizer, threads, backend,
// context, and the environment defaults (BITNET_GGUF, BITNET_SEED, BITNET_DETERMINISTIC).
#pragma once

#include "runtime/model.h"
#include "runtime/sampler.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace bitnet::tools {

struct CommonRunOptions {
  std::string model;
  std::string tokenizer;
  int threads = 0;  // 0: hardware threads, capped at 8
  int64_t ctx = 0;
  std::string backend = "jit";
  std::string target = "host";
  bool verbose = false;
  bool deterministic = false;
};

void add_common_run_options(CLI::App& cmd, CommonRunOptions& o);
// Resolves defaults from the environment; fails on an unknown backend.
Status finish_common_options(CommonRunOptions& o);
int resolved_threads(const CommonRunOptions& o);

Expected<std::unique_ptr<runtime::Model>> load_model(const CommonRunOptions& o, double* load_ms);

// "1,2,3" -> ids; fails on anything that is not a comma-separated integer list.
Expected<std::vector<int32_t>> parse_id_list(const std::string& text);
bool is_valid_utf8(std::string_view s);

// [[{"id", "logit", "piece"}...] per step]
nlohmann::json top_logits_json(const std::vector<std::vector<runtime::Candidate>>& steps,
                               const runtime::Tokenizer& tokenizer);
Status write_json_file(const std::string& path, const nlohmann::json& doc);

}  // namespace bitnet::tools

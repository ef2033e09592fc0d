// `bitnet bench`: llama-bench-style throughput table (ppN and tgN tokens/s, mean ± sd over
// repetitions, per thread count), plus the memory-bandwidth roofline of decoding measured in
// the same run: bytes read per decoded token and the fraction of the roofline reached.
#include "passes/lm_head.h"
#include "runtime/bench.h"
#include "tools/commands.h"
#include "tools/run_options.h"

#include <fmt/format.h>

#include <memory>
#include <sstream>

namespace bitnet::tools {
namespace {

Expected<std::vector<int>> parse_threads(const std::string& text) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v <= 0 || v > 256)
      return make_error("bad thread count '{}' in '{}'", item, text);
    out.push_back(static_cast<int>(v));
  }
  if (out.empty()) return make_error("no thread counts in '{}'", text);
  return out;
}

}  // namespace

void add_bench(CLI::App& app, int& exit_code) {
  struct Options {
    CommonRunOptions common;
    int64_t n_prompt = 128;
    int64_t n_gen = 64;
    std::string threads = "1,2";
    int repetitions = 5;
    bool json = false;
    bool membw = true;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd =
      app.add_subcommand("bench", "Prompt (ppN) and generation (tgN) throughput with the bandwidth roofline");
  add_common_run_options(*cmd, o->common);
  cmd->remove_option(cmd->get_option("--threads"));
  cmd->add_option("-p,--n-prompt", o->n_prompt, "prompt tokens per pp test (0: skip)")->capture_default_str();
  cmd->add_option("-n,--n-gen", o->n_gen, "generated tokens per tg test (0: skip)")->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "comma-separated thread counts")->capture_default_str();
  cmd->add_option("-r,--repetitions", o->repetitions, "measured repetitions per test (after one warm-up)")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "print a JSON list of {test, threads, tokens_per_s, stddev, ...}");
  cmd->add_flag("--membw,!--no-membw", o->membw, "measure read bandwidth and report the decode roofline")
      ->capture_default_str();
  cmd->callback([o, &exit_code] {
    exit_code = kExitFailure;
    if (auto s = finish_common_options(o->common); !s.ok()) {
      print_error("bench", s.error().message);
      return;
    }
    auto threads = parse_threads(o->threads);
    if (!threads.ok() || o->repetitions <= 0 || o->n_prompt < 0 || o->n_gen < 0) {
      print_error("bench", threads.ok() ? "repetitions must be positive and token counts non-negative"
                                        : threads.error().message);
      exit_code = kExitUsage;
      return;
    }
    auto model = load_model(o->common, nullptr);
    if (!model.ok()) {
      print_error("bench", model.error().message);
      return;
    }
    const runtime::Model& m = **model;
    std::string backend = o->common.plan.empty() ? o->common.backend : "plan";
    // A requantized LM head (--lm-head, or a plan compiled with it) changes the results: its
    // rows say so, apart from the default's.
    const auto head = passes::find_lm_head(m.graph(false));
    const std::string lm_head = head.ok() ? std::string(ir::dtype_name(head->type.dtype)) : "";
    if (head.ok() && head->retargeted()) backend += " lm_head=" + lm_head;
    const int64_t bytes_per_token = runtime::decode_bytes_per_token(m);
    nlohmann::json rows = nlohmann::json::array();
    if (!o->json) {
      fmt::print("| model | size | backend | threads | test | t/s |\n|---|---|---|---|---|---|\n");
    }
    const std::string name = m.file().path().substr(m.file().path().find_last_of('/') + 1);
    const double gib = static_cast<double>(m.file().file_size()) / (1024.0 * 1024.0 * 1024.0);
    for (int t : *threads) {
      double bandwidth = o->membw ? runtime::measure_read_bandwidth(t) : 0;
      std::vector<runtime::BenchStats> stats;
      if (o->n_prompt > 0) {
        auto pp = runtime::bench_prompt(m, o->n_prompt, t, o->repetitions);
        if (!pp.ok()) {
          print_error("bench", pp.error().message);
          return;
        }
        stats.push_back(*pp);
      }
      if (o->n_gen > 0) {
        auto tg = runtime::bench_generate(m, o->n_gen, t, o->repetitions);
        if (!tg.ok()) {
          print_error("bench", tg.error().message);
          return;
        }
        stats.push_back(*tg);
      }
      for (const auto& s : stats) {
        nlohmann::json row = {{"test", s.test},
                              {"threads", s.threads},
                              {"tokens_per_s", s.mean},
                              {"stddev", s.stddev},
                              {"backend", o->common.plan.empty() ? o->common.backend : "plan"},
                              {"lm_head", lm_head},
                              {"model", name},
                              {"samples_tokens_per_s", s.samples}};
        const bool tg = s.test.starts_with("tg");
        if (tg && bandwidth > 0) {
          const double roofline = bandwidth * 1e9 / static_cast<double>(bytes_per_token);
          row["bytes_per_token"] = bytes_per_token;
          row["read_bandwidth_gbs"] = bandwidth;
          row["roofline_tokens_per_s"] = roofline;
          row["roofline_fraction"] = s.mean / roofline;
        }
        rows.push_back(row);
        if (!o->json) {
          fmt::print("| {} | {:.2f} GiB | {} | {} | {} | {:.2f} ± {:.2f} |\n", name, gib, backend, t, s.test, s.mean,
                     s.stddev);
        }
      }
      if (!o->json && bandwidth > 0 && o->n_gen > 0) {
        const double roofline = bandwidth * 1e9 / static_cast<double>(bytes_per_token);
        fmt::print(
            "  roofline at {} threads: read bandwidth {:.2f} GB/s, {:.1f} MB per decoded token -> {:.2f} tok/s; "
            "tg reached {:.0f} %\n",
            t, bandwidth, static_cast<double>(bytes_per_token) / 1e6, roofline, 100.0 * stats.back().mean / roofline);
      }
    }
    if (o->json) fmt::print("{}\n", rows.dump(2));
    exit_code = kExitOk;
  });
}

}  // namespace bitnet::tools

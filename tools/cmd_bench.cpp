// `bitnet bench`: llama-bench-style throughput table (ppN and tgN tokens/s, mean ± sd over
// repetitions, per thread count), plus the memory-bandwidth roofline of decoding measured in
// the same run: bytes read per decoded token and the fraction of the roofline reached. With
// --batch B1,B2,...: llama-batched-bench's test, B sequences prefilled then decoded together,
// aggregate tokens/s. Written on the public library (include/bitnet/) only.
#include "tools/bench_runs.h"
#include "tools/commands.h"
#include "tools/option_values.h"
#include "tools/run_options.h"

#include <fmt/format.h>
#include <unistd.h>

#include <memory>
#include <sstream>

namespace bitnet::tools {
namespace {

// -t 1,2,4 (already checked by integer_list_in).
std::vector<int> thread_counts(const std::string& text) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(static_cast<int>(to_integer(item)));
  return out;
}

// The last-level cache's size (0 when unknown). Weights that fit in it are read from the
// cache, not from DRAM, so the DRAM roofline does not bound their decode.
int64_t last_level_cache_bytes() {
  for (int name : {_SC_LEVEL3_CACHE_SIZE, _SC_LEVEL2_CACHE_SIZE}) {
    if (const long bytes = ::sysconf(name); bytes > 0) return bytes;
  }
  return 0;
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
    std::string batch;  // --batch 1,4,8: batched tests instead of the single-sequence ones
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd =
      app.add_subcommand("bench", "Prompt (ppN) and generation (tgN) throughput with the bandwidth roofline");
  add_common_run_options(*cmd, o->common);
  cmd->remove_option(cmd->get_option("--threads"));
  cmd->add_option("-p,--n-prompt", o->n_prompt, "prompt tokens per pp test (0: skip; at most the context)")
      ->check(integer_in(0, kMaxContext))
      ->capture_default_str();
  cmd->add_option("-n,--n-gen", o->n_gen, "generated tokens per tg test (0: skip; at most the context)")
      ->check(integer_in(0, kMaxContext))
      ->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "comma-separated thread counts")
      ->check(integer_list_in(1, max_threads()))
      ->capture_default_str();
  cmd->add_option("-r,--repetitions", o->repetitions, "measured repetitions per test (after one warm-up)")
      ->check(integer_in(1, 1000))
      ->capture_default_str();
  cmd->add_option("--batch", o->batch,
                  "comma-separated sequence counts: each gets the -p prompt, then -n tokens are decoded for all "
                  "together (aggregate t/s, as llama-batched-bench)")
      ->check(integer_list_in(1, 256));
  cmd->add_flag("--json", o->json, "print a JSON list of {test, threads, tokens_per_s, stddev, ...}");
  cmd->add_flag("--membw,!--no-membw", o->membw, "measure read bandwidth and report the decode roofline")
      ->capture_default_str();
  cmd->callback([o, &exit_code] {
    exit_code = kExitFailure;
    if (auto s = finish_common_options(o->common); !s.ok()) {
      print_error("bench", s.error().message);
      return;
    }
    const std::vector<int> threads = thread_counts(o->threads);
    auto loaded = load_model(o->common, nullptr);
    if (!loaded.ok()) {
      print_error("bench", loaded.error().message);
      return;
    }
    const std::shared_ptr<const Model>& model = *loaded;
    // Each test runs in a context of its own length: past the model's context (or -c) the
    // figures would be for positions the model was never meant to see.
    const auto context = o->common.ctx > 0 ? o->common.ctx : model->n_ctx_train();
    const std::string context_source = o->common.ctx > 0 ? "-c" : "the model's context length";
    if (o->n_prompt > context) {
      throw_usage_error(
          "-p", fmt::format("{} tokens exceed the context ({} tokens, {})", o->n_prompt, context, context_source));
    }
    if (o->n_gen > context) {
      throw_usage_error("-n",
                        fmt::format("{} tokens exceed the context ({} tokens, {})", o->n_gen, context, context_source));
    }
    const std::vector<int> batches = o->batch.empty() ? std::vector<int>{} : thread_counts(o->batch);
    if (!batches.empty() && o->n_prompt + o->n_gen > context) {
      throw_usage_error("--batch", fmt::format("each sequence needs -p + -n = {} cells, more than the context ({} "
                                               "tokens, {})",
                                               o->n_prompt + o->n_gen, context, context_source));
    }
    std::string backend = model->backend();  // auto: what it chose
    // A requantized LM head (--lm-head, or a plan compiled with it) changes the results: its
    // rows say so, apart from the default's.
    const std::string lm_head = model->lm_head_type();  // "": the model file's own head
    if (!lm_head.empty()) backend += " lm_head=" + lm_head;
    const int64_t bytes_per_token = model->decode_bytes_per_token();
    nlohmann::json rows = nlohmann::json::array();
    if (!o->json && batches.empty()) {
      fmt::print("| model | size | backend | threads | test | t/s |\n|---|---|---|---|---|---|\n");
    } else if (!o->json) {
      fmt::print(
          "| model | size | backend | threads | batch | test | aggregate t/s |\n|---|---|---|---|---|---|---|\n");
    }
    const std::string path = model->path();
    const std::string name = path.substr(path.find_last_of('/') + 1);
    const std::string size = format_size(static_cast<uint64_t>(model->file_size()));
    const int64_t cache_bytes = last_level_cache_bytes();
    const bool cache_resident = cache_bytes > 0 && bytes_per_token <= cache_bytes;
    for (int t : threads) {
      // The host's read bandwidth is no roofline for a GPU.
      double bandwidth = o->membw && batches.empty() && model->backend() != "cuda" ? measure_read_bandwidth(t) : 0;
      std::vector<BenchStats> stats;
      for (int b : batches) {
        auto rows = bench_batched(model, o->n_prompt, o->n_gen, b, t, o->repetitions);
        if (!rows.ok()) {
          print_error("bench", rows.error().message);
          return;
        }
        stats.insert(stats.end(), rows->begin(), rows->end());
      }
      if (batches.empty() && o->n_prompt > 0) {
        auto pp = bench_prompt(model, o->n_prompt, t, o->repetitions);
        if (!pp.ok()) {
          print_error("bench", pp.error().message);
          return;
        }
        stats.push_back(*pp);
      }
      if (batches.empty() && o->n_gen > 0) {
        auto tg = bench_generate(model, o->n_gen, t, o->repetitions);
        if (!tg.ok()) {
          print_error("bench", tg.error().message);
          return;
        }
        stats.push_back(*tg);
      }
      for (const auto& s : stats) {
        nlohmann::json row = {{"test", s.test},         {"threads", s.threads}, {"batch", s.batch},
                              {"tokens_per_s", s.mean}, {"stddev", s.stddev},   {"backend", model->backend()},
                              {"lm_head", lm_head},     {"model", name},        {"samples_tokens_per_s", s.samples}};
        const bool tg = s.test.starts_with("tg");
        if (tg && bandwidth > 0) {
          const double roofline = bandwidth * 1e9 / static_cast<double>(bytes_per_token);
          row["bytes_per_token"] = bytes_per_token;
          row["read_bandwidth_gbs"] = bandwidth;
          row["roofline_tokens_per_s"] = roofline;
          row["roofline_fraction"] = s.mean / roofline;
          row["cache_resident"] = cache_resident;
        }
        rows.push_back(row);
        if (!o->json && batches.empty()) {
          fmt::print("| {} | {} | {} | {} | {} | {:.2f} ± {:.2f} |\n", name, size, backend, t, s.test, s.mean,
                     s.stddev);
        } else if (!o->json) {
          fmt::print("| {} | {} | {} | {} | {} | {} | {:.2f} ± {:.2f} |\n", name, size, backend, t, s.batch, s.test,
                     s.mean, s.stddev);
        }
      }
      if (!o->json && bandwidth > 0 && o->n_gen > 0) {
        const double roofline = bandwidth * 1e9 / static_cast<double>(bytes_per_token);
        if (cache_resident) {
          fmt::print(
              "  roofline at {} threads: {:.2f} MB per decoded token fit in the {} last-level cache: decode reads "
              "the weights from the cache, so the DRAM roofline ({:.2f} GB/s -> {:.2f} tok/s) does not apply\n",
              t, static_cast<double>(bytes_per_token) / 1e6, format_size(static_cast<uint64_t>(cache_bytes)), bandwidth,
              roofline);
        } else {
          fmt::print(
              "  roofline at {} threads: read bandwidth {:.2f} GB/s, {:.1f} MB per decoded token -> {:.2f} tok/s; "
              "tg reached {:.0f} %\n",
              t, bandwidth, static_cast<double>(bytes_per_token) / 1e6, roofline, 100.0 * stats.back().mean / roofline);
        }
      }
    }
    if (o->json) fmt::print("{}\n", rows.dump(2));
    exit_code = kExitOk;
  });
}

}  // namespace bitnet::tools

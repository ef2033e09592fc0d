// `bitnet run`: generate text from a prompt, streaming it to stdout as it is produced,
// then a timing summary on stderr. llama.cpp's short options work (-m -p -n -t -s -c).
#include "runtime/generate.h"
#include "tools/commands.h"
#include "tools/run_options.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>

namespace bitnet::tools {

void add_run(CLI::App& app, int& exit_code) {
  struct Options {
    CommonRunOptions common;
    std::string prompt;
    int32_t n_predict = 128;
    bool greedy = false;
    runtime::SamplerOptions sampling;
    std::optional<uint64_t> seed;
    int32_t dump_logit_steps = 0;
    int32_t logits_topk = 0;
    std::string json_out;
    bool no_display_prompt = false;
    bool ignore_eos = false;
    passes::PassOptions passes;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("run", "Generate text from a prompt");
  add_common_run_options(*cmd, o->common);
  cmd->add_option("-p,--prompt", o->prompt, "prompt text")->required();
  cmd->add_option("-n,--n-predict", o->n_predict, "tokens to generate")->capture_default_str();
  cmd->add_flag("--greedy", o->greedy, "always take the most likely token (same as --temperature 0)");
  cmd->add_option("--temperature,--temp", o->sampling.temperature, "sampling temperature; 0 = greedy")
      ->capture_default_str();
  cmd->add_option("--top-k", o->sampling.top_k, "keep the K most likely tokens (0 = off)")->capture_default_str();
  cmd->add_option("--top-p", o->sampling.top_p, "nucleus sampling threshold (1 = off)")->capture_default_str();
  cmd->add_option("--min-p", o->sampling.min_p, "drop tokens below min-p x the top probability (0 = off)")
      ->capture_default_str();
  cmd->add_option("--repeat-penalty", o->sampling.repeat_penalty, "penalty for repeated tokens (1 = off)")
      ->capture_default_str();
  cmd->add_option("--repeat-last-n", o->sampling.repeat_last_n, "how many recent tokens the penalty considers")
      ->capture_default_str();
  cmd->add_option("-s,--seed", o->seed, "random seed (default: $BITNET_SEED, else random; 0 with --deterministic)");
  cmd->add_option("--dump-logit-steps", o->dump_logit_steps, "record the top logits of the first K steps");
  cmd->add_option("--logits-topk", o->logits_topk, "how many top logits to record per step");
  cmd->add_option("--json-out", o->json_out, "write prompt_ids, generated_ids, text, timings (and dumped logits)");
  cmd->add_flag("--no-display-prompt", o->no_display_prompt, "print only the generated text");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "keep generating after an end-of-generation token");
  add_pass_options(*cmd, o->passes);
  cmd->callback([o, &exit_code] {
    exit_code = kExitFailure;
    auto fail = [](std::string_view message) { print_error("run", message); };
    if (auto s = finish_common_options(o->common); !s.ok()) {
      fail(s.error().message);
      return;
    }
    if (o->prompt.empty()) {
      fail("the prompt is empty; pass -p TEXT");
      return;
    }
    if (!is_valid_utf8(o->prompt)) {
      fail("the prompt is not valid UTF-8");
      return;
    }
    if (o->n_predict < 0) {
      fail("--n-predict must not be negative");
      return;
    }
    uint64_t seed = 0;
    if (o->seed) {
      seed = *o->seed;
    } else if (const char* env = std::getenv("BITNET_SEED"); env && *env) {
      seed = std::strtoull(env, nullptr, 10);
    } else if (!o->common.deterministic) {
      seed = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
    }
    double load_ms = 0;
    auto model = load_model(o->common, &load_ms, o->passes);
    if (!model.ok()) {
      fail(model.error().message);
      return;
    }
    const runtime::Tokenizer& tok = (*model)->tokenizer();
    const std::vector<int32_t> prompt_ids = tok.encode(o->prompt, {.add_bos = true, .parse_special = false});
    // For the JIT backend, creating the session compiles the kernels.
    const auto session_start = std::chrono::steady_clock::now();
    auto session = (*model)->new_session(false, o->common.ctx, resolved_threads(o->common));
    const double session_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - session_start).count();
    if (!session.ok()) {
      fail(session.error().message);
      return;
    }
    runtime::GenerateOptions g;
    g.n_predict = o->n_predict;
    g.sampling = o->sampling;
    g.sampling.greedy = o->greedy;
    g.sampling.seed = seed;
    g.stop_at_eog = !o->ignore_eos;
    g.dump_logit_steps = o->dump_logit_steps;
    g.logits_topk = o->logits_topk;
    if (!o->no_display_prompt) {
      fmt::print("{}", o->prompt);
      std::fflush(stdout);
    }
    auto result = runtime::generate(**session, tok, prompt_ids, g, [](std::string_view text) {
      fmt::print("{}", text);
      std::fflush(stdout);
    });
    fmt::print("\n");
    std::fflush(stdout);
    if (!result.ok()) {
      fail(result.error().message);
      return;
    }
    const runtime::Timings& t = result->timings;
    fmt::print(stderr,
               "\nbackend {} | load {:.1f} ms | {} {:.1f} ms | prompt {} tokens in {:.1f} ms ({:.2f} tok/s) | "
               "generation {} tokens in {:.1f} ms ({:.2f} tok/s) | stop: {}\n",
               (*session)->backend(), load_ms, "session", session_ms, t.prompt_tokens, t.prompt_ms,
               t.prompt_tokens_per_s(), t.generated_tokens, t.generate_ms, t.generate_tokens_per_s(),
               result->stop_reason);
    if (!o->json_out.empty()) {
      nlohmann::json doc = {
          {"model", o->common.model},
          {"prompt", o->prompt},
          {"prompt_ids", result->prompt_ids},
          {"generated_ids", result->generated_ids},
          {"text", result->text},
          {"seed", seed},
          {"backend", (*session)->backend()},
          {"stop_reason", result->stop_reason},
          {"timings",
           {{"load_ms", load_ms},
            {"session_ms", session_ms},
            {"prompt_ms", t.prompt_ms},
            {"prompt_tokens", t.prompt_tokens},
            {"prompt_tokens_per_s", t.prompt_tokens_per_s()},
            {"generate_ms", t.generate_ms},
            {"generated_tokens", t.generated_tokens},
            {"generate_tokens_per_s", t.generate_tokens_per_s()}}},
      };
      if (!result->dumped_logits.empty()) doc["top_logits"] = top_logits_json(result->dumped_logits, tok);
      if (auto s = write_json_file(o->json_out, doc); !s.ok()) {
        fail(s.error().message);
        return;
      }
    }
    exit_code = kExitOk;
  });
}

}  // namespace bitnet::tools

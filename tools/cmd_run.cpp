// `bitnet run`: generate text from a prompt, streaming it to stdout as it is produced,
// then a timing summary on stderr. llama.cpp's short options work (-m -p -n -t -s -c).
// Written on the public library (include/bitnet/) only.
#include "bitnet/generate.h"
#include "tools/commands.h"
#include "tools/option_values.h"
#include "tools/run_options.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <optional>

namespace bitnet::tools {

void add_run(CLI::App& app, int& exit_code) {
  struct Options {
    CommonRunOptions common;
    std::string prompt;
    int32_t n_predict = 128;
    SamplingFlags sampling;
    int32_t dump_logit_steps = 0;
    int32_t logits_topk = 0;
    std::string json_out;
    bool no_display_prompt = false;
    bool ignore_eos = false;
    PassFlags passes;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("run", "Generate text from a prompt");
  add_common_run_options(*cmd, o->common);
  constexpr int64_t kMaxInt32 = std::numeric_limits<int32_t>::max();
  cmd->add_option("-p,--prompt", o->prompt,
                  "prompt text; empty (-p \"\") generates from BOS alone, for models that add BOS")
      ->required();
  cmd->add_option("-n,--n-predict", o->n_predict, "tokens to generate (-1: until end of generation or a full context)")
      ->check(integer_in(-1, kMaxInt32))
      ->capture_default_str();
  add_sampling_options(*cmd, o->sampling);
  auto* dump = cmd->add_option("--dump-logit-steps", o->dump_logit_steps, "record the top logits of the first K steps")
                   ->check(integer_in(0, kMaxInt32));
  cmd->add_option("--logits-topk", o->logits_topk,
                  fmt::format("how many top logits to record per step (default {})", kDefaultLogitsTopK))
      ->check(integer_in(1, kMaxInt32))
      ->needs(dump);
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
    if (!is_valid_utf8(o->prompt)) {
      fail("the prompt is not valid UTF-8");
      return;
    }
    const SamplerParams sampling = resolve_sampling(o->sampling, o->common.deterministic);
    double load_ms = 0;
    auto loaded = load_model(o->common, &load_ms, o->passes);
    if (!loaded.ok()) {
      fail(loaded.error().message);
      return;
    }
    const std::shared_ptr<const Model>& model = *loaded;
    const Vocab& vocab = model->vocab();
    // An empty prompt starts from BOS alone (llama.cpp, llama2.c), when the model has one.
    const std::vector<Token> prompt_ids = vocab.tokenize(o->prompt, /*add_special=*/true, /*parse_special=*/false);
    if (prompt_ids.empty()) {
      fail("the prompt is empty and this model adds no BOS token to start from; pass -p TEXT");
      return;
    }
    // For the JIT backend, creating the context compiles the kernels (when the plan cache
    // did not have them).
    const auto context_start = std::chrono::steady_clock::now();
    auto ctx = Context::create(model, {.n_ctx = o->common.ctx, .threads = resolved_threads(o->common)});
    const double session_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - context_start).count();
    if (!ctx.ok()) {
      fail(ctx.error().message);
      return;
    }
    // Checked before anything is printed (generate checks it too).
    if (static_cast<int64_t>(prompt_ids.size()) >= (*ctx)->n_ctx()) {
      fail(
          fmt::format("the prompt has {} tokens but the context holds {}; use a larger --ctx-size or a shorter "
                      "prompt",
                      prompt_ids.size(), (*ctx)->n_ctx()));
      return;
    }
    GenerateParams g;
    g.n_predict = o->n_predict;
    g.sampling = sampling;
    g.stop_at_eog = !o->ignore_eos;
    g.top_logits_steps = o->dump_logit_steps;
    g.top_logits_k = o->logits_topk > 0 ? o->logits_topk : kDefaultLogitsTopK;
    if (!o->no_display_prompt) {
      fmt::print("{}", o->prompt);
      flush_stdout();
    }
    // A failed write (full disk, reader gone) throws out of the stream and ends generation at
    // once; parse_and_run reports it.
    auto result = generate(**ctx, prompt_ids, g, [](std::string_view text) {
      fmt::print("{}", text);
      flush_stdout();
    });
    fmt::print("\n");
    flush_stdout();
    if (!result.ok()) {
      fail(result.error().message);
      return;
    }
    const GenerateTimings& t = result->timings;
    const std::string backend = (*ctx)->backend();
    fmt::print(stderr,
               "\nbackend {} | load {:.1f} ms | {} {:.1f} ms | prompt {} tokens in {:.1f} ms ({:.2f} tok/s) | "
               "generated {} tokens, {} decode steps in {:.1f} ms ({:.2f} tok/s) | stop: {}\n",
               backend, load_ms, "session", session_ms, t.prompt_tokens, t.prompt_ms, t.prompt_tokens_per_s(),
               t.generated_tokens, t.decode_steps, t.generate_ms, t.generate_tokens_per_s(), result->stop_reason);
    if (!o->json_out.empty()) {
      nlohmann::json doc = {
          {"model", o->common.model},
          {"prompt", o->prompt},
          {"prompt_ids", result->prompt_ids},
          {"generated_ids", result->generated_ids},
          {"text", result->text},
          {"seed", sampling.seed},
          {"backend", backend},
          {"stop_reason", result->stop_reason},
          {"timings",
           {{"load_ms", load_ms},
            {"session_ms", session_ms},
            {"prompt_ms", t.prompt_ms},
            {"prompt_tokens", t.prompt_tokens},
            {"prompt_tokens_per_s", t.prompt_tokens_per_s()},
            {"generate_ms", t.generate_ms},
            {"generated_tokens", t.generated_tokens},
            {"decode_steps", t.decode_steps},
            {"generate_tokens_per_s", t.generate_tokens_per_s()}}},
      };
      if (!result->top_logits.empty()) {
        doc["top_logits"] =
            top_logits_json(result->top_logits, [&](Token id) { return vocab.token_to_piece(id, true); });
      }
      if (auto s = write_json_file(o->json_out, doc); !s.ok()) {
        fail(s.error().message);
        return;
      }
    }
    exit_code = kExitOk;
  });
}

}  // namespace bitnet::tools

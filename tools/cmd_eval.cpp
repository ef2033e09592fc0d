// `bitnet eval`: teacher-forced negative log-likelihood and perplexity of a text file or a
// token id list, optionally writing every logit as .npy. Written on the public library
// (include/bitnet/) only.
#include "bitnet/evaluate.h"
#include "tools/commands.h"
#include "tools/npy_writer.h"
#include "tools/option_values.h"
#include "tools/run_options.h"

#include <fmt/format.h>

#include <limits>
#include <memory>

namespace bitnet::tools {

void add_eval(CLI::App& app, int& exit_code) {
  struct Options {
    CommonRunOptions common;
    std::string text_file;
    std::string ids;
    int64_t stride = 0;  // 0: ctx / 2
    std::string mode = "prompt";
    std::string logits_out;
    int32_t dump_logit_steps = 0;
    int32_t logits_topk = 0;
    std::string json_out;
    bool no_bos = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("eval", "Token-weighted NLL and perplexity (teacher forcing)");
  add_common_run_options(*cmd, o->common);
  auto* text = cmd->add_option("--text-file", o->text_file, "text to evaluate (tokenized with BOS)");
  auto* ids = cmd->add_option("--teacher-force-ids", o->ids, "comma-separated token ids to evaluate as given");
  text->excludes(ids);
  constexpr int64_t kMaxInt32 = std::numeric_limits<int32_t>::max();
  cmd->add_option("--stride", o->stride,
                  "window step when the text is longer than --ctx-size, at most the window (default ctx/2)")
      ->check(integer_in(1, kMaxContext));
  cmd->add_option("--mode", o->mode, "prompt: one batch per window; decode: one token per step")
      ->check(CLI::IsMember({"prompt", "decode"}))
      ->capture_default_str();
  cmd->add_option("--logits-out", o->logits_out, "write float32 [n_tokens, n_vocab] logits as .npy");
  auto* dump =
      cmd->add_option("--dump-logit-steps", o->dump_logit_steps, "record the top logits after the first K tokens")
          ->check(integer_in(0, kMaxInt32));
  cmd->add_option("--logits-topk", o->logits_topk,
                  fmt::format("how many top logits to record per position (default {})", kDefaultLogitsTopK))
      ->check(integer_in(1, kMaxInt32))
      ->needs(dump);
  cmd->add_option("--json-out", o->json_out, "write the results as JSON");
  cmd->add_flag("--no-bos", o->no_bos, "do not prepend BOS to --text-file");
  cmd->callback([o, &exit_code] {
    exit_code = kExitFailure;
    auto fail = [](std::string_view message) { print_error("eval", message); };
    if (auto s = finish_common_options(o->common); !s.ok()) {
      fail(s.error().message);
      return;
    }
    if (o->text_file.empty() == o->ids.empty()) {
      throw_usage_error("eval", "pass exactly one of --text-file or --teacher-force-ids");
    }
    if (o->common.ctx == 1) throw_usage_error("--ctx-size", "an evaluation window must hold at least 2 tokens");
    if (o->common.ctx > 0 && o->stride > o->common.ctx) {
      throw_usage_error("--stride",
                        fmt::format("{} is larger than the window (--ctx-size {})", o->stride, o->common.ctx));
    }
    double load_ms = 0;
    auto loaded = load_model(o->common, &load_ms);
    if (!loaded.ok()) {
      fail(loaded.error().message);
      return;
    }
    const Model& model = **loaded;
    std::vector<Token> tokens;
    if (!o->ids.empty()) {
      auto parsed = parse_id_list(o->ids);
      if (!parsed.ok()) {
        fail(parsed.error().message);
        return;
      }
      tokens = std::move(*parsed);
    } else {
      auto text = read_text_file(o->text_file);
      if (!text.ok()) {
        fail(text.error().message);
        return;
      }
      const std::string& content = *text;
      if (!is_valid_utf8(content)) {
        fail(fmt::format("'{}' is not valid UTF-8", o->text_file));
        return;
      }
      tokens = model.vocab().tokenize(content, /*add_special=*/!o->no_bos, /*parse_special=*/false);
    }
    EvalParams e;
    e.ctx = o->common.ctx;
    e.stride = o->stride;
    e.decode_mode = o->mode == "decode";
    e.keep_logits = !o->logits_out.empty();
    e.top_logits_steps = o->dump_logit_steps;
    e.top_logits_k = o->logits_topk > 0 ? o->logits_topk : kDefaultLogitsTopK;
    e.threads = resolved_threads(o->common);
    auto result = evaluate(model, tokens, e);
    if (!result.ok()) {
      fail(result.error().message);
      return;
    }
    fmt::print(
        "tokens {} | predicted {} | windows {} | mean NLL {:.6f} | perplexity {:.4f} | {:.1f} ms ({:.1f} tok/s)\n",
        result->n_tokens, result->n_predicted, result->windows, result->mean_nll(), result->perplexity(), result->ms,
        result->ms > 0 ? result->processed_tokens * 1000.0 / result->ms : 0);
    if (!o->logits_out.empty()) {
      auto s = write_npy_f32(o->logits_out, result->logits, {result->n_tokens, result->n_vocab});
      if (!s.ok()) {
        fail(s.error().message);
        return;
      }
    }
    if (!o->json_out.empty()) {
      nlohmann::json doc = {{"model", o->common.model},
                            {"mode", o->mode},
                            {"n_tokens", result->n_tokens},
                            {"n_predicted", result->n_predicted},
                            {"windows", result->windows},
                            {"nll_sum", result->nll_sum},
                            {"mean_nll", result->mean_nll()},
                            {"perplexity", result->perplexity()},
                            {"ms", result->ms},
                            {"load_ms", load_ms}};
      if (!result->top_logits.empty()) {
        doc["top_logits"] =
            top_logits_json(result->top_logits, [&](Token id) { return model.vocab().token_to_piece(id, true); });
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

// `bitnet chat`: an interactive multi-turn chat on the terminal. Each line read from stdin is a
// user turn; the conversation is rendered with the model's chat template (bitnet/chat.h) and
// only the tokens past what the KV cache already holds are fed, so the cache is kept across
// turns; replies stream to stdout. `/exit` or end of input ends the chat. Written on the public
// library (include/bitnet/) only.
#include "bitnet/chat.h"
#include "bitnet/generate.h"
#include "tools/commands.h"
#include "tools/option_values.h"
#include "tools/run_options.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <iostream>
#include <limits>
#include <memory>

namespace bitnet::tools {
namespace {

// Tokens at the start of `a` and `b` that agree.
size_t common_prefix(const std::vector<Token>& a, const std::vector<Token>& b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

}  // namespace

void add_chat(CLI::App& app, int& exit_code) {
  struct Options {
    CommonRunOptions common;
    std::string system;
    std::string chat_template;
    int32_t n_predict = -1;
    SamplingFlags sampling;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("chat", "Chat with a model on the terminal (one line per turn; /exit ends)");
  add_common_run_options(*cmd, o->common);
  cmd->add_option("--system", o->system, "system message that opens the conversation");
  cmd->add_option("--chat-template", o->chat_template,
                  fmt::format("chat template: {} (default: the model's tokenizer.chat_template, else chatml)",
                              fmt::join(chat_template_names(), ", ")));
  cmd->add_option("-n,--n-predict", o->n_predict, "tokens per reply at most (-1: until the end of the turn)")
      ->check(integer_in(-1, std::numeric_limits<int32_t>::max()))
      ->capture_default_str();
  add_sampling_options(*cmd, o->sampling);
  cmd->callback([o, &exit_code] {
    exit_code = kExitFailure;
    auto fail = [](std::string_view message) { print_error("chat", message); };
    if (auto s = finish_common_options(o->common); !s.ok()) {
      fail(s.error().message);
      return;
    }
    if (!is_valid_utf8(o->system)) throw_usage_error("--system", "not valid UTF-8");
    if (!o->chat_template.empty()) {
      const std::vector<std::string> names = chat_template_names();
      if (std::find(names.begin(), names.end(), o->chat_template) == names.end()) {
        throw_usage_error("--chat-template", fmt::format("unknown chat template '{}' (built in: {})", o->chat_template,
                                                         fmt::join(names, ", ")));
      }
    }
    const SamplerParams sampling = resolve_sampling(o->sampling, o->common.deterministic);
    auto loaded = load_model(o->common, nullptr);
    if (!loaded.ok()) {
      fail(loaded.error().message);
      return;
    }
    const std::shared_ptr<const Model>& model = *loaded;
    // The name given, else the model's template (recognised), else chatml.
    auto template_name = chat_template_name(*model, o->chat_template);
    if (!template_name.ok()) {
      fail(template_name.error().message);
      return;
    }
    const Vocab& vocab = model->vocab();
    auto context = Context::create(model, {.n_ctx = o->common.ctx, .threads = resolved_threads(o->common)});
    if (!context.ok()) {
      fail(context.error().message);
      return;
    }
    Context& ctx = **context;
    if (o->common.verbose) {
      fmt::print(stderr, "chat: template {}, context {} tokens, backend {}\n", *template_name, ctx.n_ctx(),
                 ctx.backend());
    }
    std::vector<ChatMessage> messages;
    if (!o->system.empty()) messages.push_back({"system", o->system});
    std::vector<Token> cached;  // the tokens the context's KV cache holds, in order
    std::string line;
    for (int turn = 1;; ++turn) {
      fmt::print(stderr, "> ");
      std::fflush(stderr);
      if (!std::getline(std::cin, line) || line == "/exit") break;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) {
        --turn;
        continue;
      }
      if (!is_valid_utf8(line)) {
        fail("the input line is not valid UTF-8; type it again");
        --turn;
        continue;
      }
      messages.push_back({"user", line});
      // The rendered text opens with BOS where the model adds one; the template's own special
      // tokens are parsed, the user's text is part of it (as llama.cpp's chat does). A
      // conversation that outgrows the context (with room for the reply's first tokens)
      // forgets its oldest exchanges, the system message kept.
      std::vector<Token> ids;
      int dropped = 0;
      for (;;) {
        auto text = apply_chat_template(*model, *template_name, messages, true);
        if (!text.ok()) {
          fail(text.error().message);
          return;
        }
        ids = vocab.tokenize(*text, /*add_special=*/true, /*parse_special=*/true);
        const size_t first = !messages.empty() && messages.front().role == "system" ? 1 : 0;
        const bool fits = static_cast<int64_t>(ids.size()) + std::min<int64_t>(ctx.n_ctx() / 4, 64) < ctx.n_ctx();
        if (fits || messages.size() - first <= 1) break;
        const size_t n = messages.size() - first > 2 ? 2 : 1;  // a user turn and its reply
        messages.erase(messages.begin() + static_cast<std::ptrdiff_t>(first),
                       messages.begin() + static_cast<std::ptrdiff_t>(first + n));
        ++dropped;
      }
      if (dropped > 0 && o->common.verbose) {
        fmt::print(stderr, "chat: forgot the {} oldest exchanges before turn {} to fit the context of {}\n", dropped,
                   turn, ctx.n_ctx());
      }
      // Keep what the cache already holds of this conversation; feed the rest (at least one
      // token, whose logits start the reply).
      const size_t keep = std::min(common_prefix(cached, ids), ids.size() - 1);
      ctx.seq_rm(0, static_cast<int64_t>(keep), -1);
      cached.resize(keep);
      const std::vector<Token> fresh(ids.begin() + static_cast<std::ptrdiff_t>(keep), ids.end());
      if (static_cast<int64_t>(ids.size()) >= ctx.n_ctx()) {
        fail(fmt::format("the conversation has {} tokens and no longer fits the context of {} (-c); start a new chat",
                         ids.size(), ctx.n_ctx()));
        return;
      }
      GenerateParams g;
      g.n_predict = o->n_predict;
      g.sampling = sampling;
      g.sampling.seed = sampling.seed + static_cast<uint64_t>(turn - 1);  // one seed, a different draw per turn
      g.earlier_tokens = cached;
      auto reply = generate(ctx, fresh, g, [](std::string_view piece) {
        fmt::print("{}", piece);
        flush_stdout();
      });
      fmt::print("\n");
      flush_stdout();
      if (!reply.ok()) {
        fail(reply.error().message);
        return;
      }
      // The cache now holds the fed tokens and every generated one but the last (its logits
      // were never needed, or it ended the turn).
      cached.insert(cached.end(), fresh.begin(), fresh.end());
      cached.insert(cached.end(), reply->generated_ids.begin(), reply->generated_ids.end());
      cached.resize(static_cast<size_t>(ctx.seq_pos_max(0) + 1));
      messages.push_back({"assistant", reply->text});
      if (o->common.verbose) {
        const GenerateTimings& t = reply->timings;
        fmt::print(stderr,
                   "chat: turn {}: {} tokens reused from the cache, {} fed ({:.1f} tok/s), {} generated "
                   "({:.1f} tok/s), stop: {}\n",
                   turn, keep, fresh.size(), t.prompt_tokens_per_s(), t.generated_tokens, t.generate_tokens_per_s(),
                   reply->stop_reason);
      }
    }
    exit_code = kExitOk;
  });
}

}  // namespace bitnet::tools

// `bitnet chat`: an interactive multi-turn chat on the terminal. Each line read from stdin is a
// user turn; the conversation is rendered with the model's chat template (runtime/chat_template.h)
// and only the tokens past what the KV cache already holds are fed, so the cache is kept across
// turns; replies stream to stdout. `/exit` or end of input ends the chat.
#include "runtime/chat_template.h"
#include "runtime/generate.h"
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
size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
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
                              fmt::join(runtime::chat_template_names(), ", ")));
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
      if (auto t = runtime::ChatTemplate::by_name(o->chat_template); !t.ok()) {
        throw_usage_error("--chat-template", t.error().message);
      }
    }
    const runtime::SamplerOptions sampling = resolve_sampling(o->sampling, o->common.deterministic);
    auto model = load_model(o->common, nullptr);
    if (!model.ok()) {
      fail(model.error().message);
      return;
    }
    const runtime::Model& m = **model;
    const std::string* model_template = m.file().get_string("tokenizer.chat_template");
    auto tmpl = runtime::ChatTemplate::choose(o->chat_template, model_template ? *model_template : "");
    if (!tmpl.ok()) {
      fail(tmpl.error().message);
      return;
    }
    const runtime::Tokenizer& tok = m.tokenizer();
    const runtime::ChatSpecialTokens special{tok.bos() >= 0 ? tok.token_to_piece(tok.bos(), true) : "",
                                             tok.eos() >= 0 ? tok.token_to_piece(tok.eos(), true) : ""};
    auto session = m.new_session(false, o->common.ctx, resolved_threads(o->common));
    if (!session.ok()) {
      fail(session.error().message);
      return;
    }
    runtime::Session& s = **session;
    if (o->common.verbose) {
      fmt::print(stderr, "chat: template {}, context {} tokens, backend {}\n", tmpl->name(), s.n_ctx(), s.backend());
    }
    std::vector<runtime::ChatMessage> messages;
    if (!o->system.empty()) messages.push_back({"system", o->system});
    std::vector<int32_t> cached;  // the tokens the session's KV cache holds, in order
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
      std::vector<int32_t> ids;
      int dropped = 0;
      for (;;) {
        auto text = tmpl->apply(messages, true, special);
        if (!text.ok()) {
          fail(text.error().message);
          return;
        }
        ids = tok.encode(*text, {.add_bos = true, .parse_special = true});
        const size_t first = !messages.empty() && messages.front().role == "system" ? 1 : 0;
        const bool fits = static_cast<int64_t>(ids.size()) + std::min<int64_t>(s.n_ctx() / 4, 64) < s.n_ctx();
        if (fits || messages.size() - first <= 1) break;
        const size_t n = messages.size() - first > 2 ? 2 : 1;  // a user turn and its reply
        messages.erase(messages.begin() + static_cast<std::ptrdiff_t>(first),
                       messages.begin() + static_cast<std::ptrdiff_t>(first + n));
        ++dropped;
      }
      if (dropped > 0 && o->common.verbose) {
        fmt::print(stderr, "chat: forgot the {} oldest exchanges before turn {} to fit the context of {}\n", dropped,
                   turn, s.n_ctx());
      }
      // Keep what the cache already holds of this conversation; feed the rest (at least one
      // token, whose logits start the reply).
      const size_t keep = std::min(common_prefix(cached, ids), ids.size() - 1);
      s.truncate(static_cast<int64_t>(keep));
      cached.resize(keep);
      const std::vector<int32_t> fresh(ids.begin() + static_cast<std::ptrdiff_t>(keep), ids.end());
      if (static_cast<int64_t>(ids.size()) >= s.n_ctx()) {
        fail(fmt::format("the conversation has {} tokens and no longer fits the context of {} (-c); start a new chat",
                         ids.size(), s.n_ctx()));
        return;
      }
      runtime::GenerateOptions g;
      g.n_predict = o->n_predict;
      g.sampling = sampling;
      g.sampling.seed = sampling.seed + static_cast<uint64_t>(turn - 1);  // one seed, a different draw per turn
      g.earlier_tokens = cached;
      auto reply = runtime::generate(s, tok, fresh, g, [](std::string_view piece) {
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
      cached.resize(static_cast<size_t>(s.pos()));
      messages.push_back({"assistant", reply->text});
      if (o->common.verbose) {
        const runtime::Timings& t = reply->timings;
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

// Generation loop (see generate.h).
#include "runtime/generate.h"

#include "runtime/nonfinite.h"

#include <chrono>

namespace bitnet::runtime {
namespace {

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// Length of the UTF-8 sequence a lead byte starts (1 for invalid leads: pass them through).
size_t utf8_length(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c >> 5) == 0x6) return 2;
  if ((c >> 4) == 0xe) return 3;
  if ((c >> 3) == 0x1e) return 4;
  return 1;
}

}  // namespace

std::string Utf8Stream::push(std::string_view bytes) {
  pending_.append(bytes);
  size_t complete = 0;
  while (complete < pending_.size()) {
    const size_t len = utf8_length(static_cast<unsigned char>(pending_[complete]));
    if (complete + len > pending_.size()) break;
    complete += len;
  }
  std::string out = pending_.substr(0, complete);
  pending_.erase(0, complete);
  return out;
}

std::string Utf8Stream::flush() {
  return std::exchange(pending_, std::string());
}

Expected<GenerateResult> generate(Session& session, const Tokenizer& tokenizer, std::vector<int32_t> prompt_ids,
                                  const GenerateOptions& options,
                                  const std::function<void(std::string_view)>& on_text) {
  if (prompt_ids.empty()) return make_error("the prompt is empty (no tokens to start from)");
  if (options.n_predict < -1) return make_error("n_predict must be -1 (until the context is full) or more");
  if (session.pos() != static_cast<int64_t>(options.earlier_tokens.size())) {
    return make_error("the session holds {} tokens, not the {} earlier tokens given", session.pos(),
                      options.earlier_tokens.size());
  }
  if (session.pos() + static_cast<int64_t>(prompt_ids.size()) >= session.n_ctx()) {
    return make_error(
        "the prompt has {} tokens{} but the context holds {}; use a larger --ctx-size or a shorter prompt",
        prompt_ids.size(), session.pos() > 0 ? fmt::format(" after the {} it already holds", session.pos()) : "",
        session.n_ctx());
  }
  GenerateResult result;
  result.prompt_ids = prompt_ids;
  Sampler sampler(options.sampling);
  std::vector<int32_t> history = options.earlier_tokens;
  history.insert(history.end(), prompt_ids.begin(), prompt_ids.end());
  Utf8Stream stream;
  auto emit = [&](std::string_view piece) {
    const std::string ready = stream.push(piece);
    result.text += ready;
    if (on_text && !ready.empty()) on_text(ready);
  };

  auto start = std::chrono::steady_clock::now();
  BITNET_ASSIGN_OR_RETURN(auto outputs, session.run(prompt_ids));
  result.timings.prompt_ms = ms_since(start);
  result.timings.prompt_tokens = static_cast<int64_t>(prompt_ids.size());

  result.stop_reason = "length";
  const bool unlimited = options.n_predict == -1;
  for (int32_t step = 0; unlimited || step < options.n_predict; ++step) {
    const Matrix& logits = outputs.at("logits");
    const auto row = logits.row(logits.rows - 1);
    if (first_non_finite(row)) return nonfinite_logits_error(session);  // names the first non-finite node
    if (step < options.dump_logit_steps && options.logits_topk > 0) {
      result.dumped_logits.push_back(top_k_logits(row, static_cast<size_t>(options.logits_topk)));
    }
    const int32_t next = sampler.sample(row, history);
    result.generated_ids.push_back(next);
    ++result.timings.generated_tokens;
    history.push_back(next);
    if (options.stop_at_eog && tokenizer.is_end_of_generation(next)) {
      result.stop_reason = "eog";
      break;
    }
    emit(tokenizer.token_to_piece(next));
    if (step + 1 == options.n_predict) break;
    if (session.pos() >= session.n_ctx()) {
      result.stop_reason = "context";
      break;
    }
    const int32_t one[] = {next};
    start = std::chrono::steady_clock::now();
    BITNET_ASSIGN_OR_RETURN(outputs, session.run(one));
    result.timings.generate_ms += ms_since(start);
    ++result.timings.decode_steps;
  }
  const std::string rest = stream.flush();
  result.text += rest;
  if (on_text && !rest.empty()) on_text(rest);
  return result;
}

}  // namespace bitnet::runtime

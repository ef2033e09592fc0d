// Chat templates of the public API (see bitnet/chat.h).
#include "bitnet/chat.h"
#include "api/model_impl.h"
#include "runtime/chat_template.h"

namespace bitnet {

namespace {

Result<std::string> render(std::string_view name_or_template, std::string_view model_template,
                           std::span<const ChatMessage> messages, bool add_generation_prompt,
                           const runtime::ChatSpecialTokens& special) {
  auto chosen = runtime::ChatTemplate::choose(name_or_template, model_template);
  if (!chosen.ok()) return Error{chosen.error().message};
  std::vector<runtime::ChatMessage> converted;
  for (const ChatMessage& m : messages) converted.push_back({m.role, m.content});
  auto text = chosen->apply(converted, add_generation_prompt, special);
  if (!text.ok()) return Error{text.error().message};
  return std::move(*text);
}

}  // namespace

Result<std::string> apply_chat_template(const Model& model, std::string_view name_or_template,
                                        std::span<const ChatMessage> messages, bool add_generation_prompt) {
  const Vocab& vocab = model.vocab();
  const runtime::ChatSpecialTokens special{vocab.bos() >= 0 ? vocab.token_to_piece(vocab.bos(), true) : "",
                                           vocab.eos() >= 0 ? vocab.token_to_piece(vocab.eos(), true) : ""};
  return render(name_or_template, model.chat_template(), messages, add_generation_prompt, special);
}

Result<std::string> apply_chat_template(std::string_view name_or_template, std::span<const ChatMessage> messages,
                                        bool add_generation_prompt, std::string_view bos_text,
                                        std::string_view eos_text) {
  return render(name_or_template, "", messages, add_generation_prompt, {std::string(bos_text), std::string(eos_text)});
}

Result<std::string> chat_template_name(const Model& model, std::string_view name_or_template) {
  auto chosen = runtime::ChatTemplate::choose(name_or_template, model.chat_template());
  if (!chosen.ok()) return Error{chosen.error().message};
  return std::string(chosen->name());
}

std::vector<std::string> chat_template_names() {
  std::vector<std::string> out;
  for (std::string_view n : runtime::chat_template_names()) out.emplace_back(n);
  return out;
}

}  // namespace bitnet

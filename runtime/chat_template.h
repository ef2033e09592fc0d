// Chat templates: a conversation (role, content messages) rendered into the prompt text a chat
// model was trained on. Built in for the families we run and the common ones, one row each in
// one table (name, how llama.cpp-style detection recognises the model's Jinja template text,
// how it renders): bitnet (BitNet b1.58 2B4T: "User: …<|eot_id|>Assistant: "), llama3, llama2,
// chatml, zephyr, phi3, gemma, mistral. Not a Jinja interpreter: each renderer reproduces what
// its family's reference Jinja template gives (tests render those with python3-jinja2), with
// the model's own BOS/EOS texts where the template uses bos_token/eos_token.
#pragma once

#include "ir/support/expected.h"

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet::runtime {

struct ChatMessage {
  std::string role;  // system | user | assistant
  std::string content;
};

// The special-token texts a template may use ("" when the vocabulary has none).
struct ChatSpecialTokens {
  std::string bos;
  std::string eos;
};

class ChatTemplate {
 public:
  // A built-in template by name (chat_template_names()); fails naming the valid ones.
  static Expected<ChatTemplate> by_name(std::string_view name);
  // The built-in template a model's `tokenizer.chat_template` text is, recognised by the
  // substrings that mark each family (as llama.cpp's llm_chat_detect_template does); a text
  // that is exactly a built-in name is that template. nullopt when none matches.
  static std::optional<ChatTemplate> detect(std::string_view jinja_text);
  // What `bitnet chat` uses: `name` when given (a name, or a Jinja text to detect), else the
  // model's template text, else chatml (llama.cpp's default). Fails for a name that is not
  // built in, or a model template no built-in matches (asking for --chat-template).
  static Expected<ChatTemplate> choose(std::string_view name, std::string_view model_template_text);

  std::string_view name() const;
  // The prompt for `messages`, ending with the assistant's turn opening when
  // `add_generation_prompt`. Roles other than system, user and assistant are an error. A
  // leading BOS is part of the text where the family's template writes one (tokenize it with
  // special tokens parsed, adding no second BOS).
  Expected<std::string> apply(std::span<const ChatMessage> messages, bool add_generation_prompt,
                              const ChatSpecialTokens& special) const;

 private:
  explicit ChatTemplate(size_t row) : row_(row) {}
  size_t row_;
};

// The built-in names, in table order.
std::vector<std::string_view> chat_template_names();

}  // namespace bitnet::runtime

// Chat templates: built in for BitNet 2B4T ("bitnet"), llama3, llama2, chatml, zephyr, phi3,
// gemma and mistral, chosen by name or detected from a model's tokenizer.chat_template text.
#pragma once

#include "bitnet/export.h"

#include "bitnet/model.h"

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet {

struct ChatMessage {
  std::string role;  // system | user | assistant
  std::string content;
};

// `name_or_template`: a built-in name, a Jinja template text to recognise, or "" for the
// model's own template (chatml when it has none). Tokenize the text as `bitnet chat` does:
// with add_special and parse_special.
BITNET_API Result<std::string> apply_chat_template(const Model& model, std::string_view name_or_template,
                                                   std::span<const ChatMessage> messages, bool add_generation_prompt);
// Without a model (llama_chat_apply_template): a built-in name or a Jinja text to recognise, ""
// for chatml; templates that write the BOS or EOS text use `bos_text` and `eos_text`.
BITNET_API Result<std::string> apply_chat_template(std::string_view name_or_template,
                                                   std::span<const ChatMessage> messages, bool add_generation_prompt,
                                                   std::string_view bos_text, std::string_view eos_text);
BITNET_API std::vector<std::string> chat_template_names();
// The built-in template apply_chat_template would use for `name_or_template` (as above).
BITNET_API Result<std::string> chat_template_name(const Model& model, std::string_view name_or_template);

}  // namespace bitnet

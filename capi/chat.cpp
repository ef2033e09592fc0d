// llama.h's chat templates: the library's built-in templates, by name or recognised from a
// model's Jinja text, with llama.cpp's buffer-size protocol.
#include "bitnet/chat.h"

#include "capi/handles.h"

#include <cstring>

extern "C" {

int32_t llama_chat_apply_template(const char* tmpl, const llama_chat_message* chat, size_t n_msg, bool add_ass,
                                  char* buf, int32_t length) {
  if (chat == nullptr && n_msg > 0) {
    capi::log_error("llama_chat_apply_template: NULL messages");
    return -1;
  }
  std::vector<bitnet::ChatMessage> messages;
  for (size_t i = 0; i < n_msg; ++i) {
    if (chat[i].role == nullptr || chat[i].content == nullptr) {
      capi::log_error("llama_chat_apply_template: message {} has a NULL role or content", i);
      return -1;
    }
    messages.push_back({chat[i].role, chat[i].content});
  }
  // Without a model, templates that write BOS/EOS use the texts llama.cpp writes for them.
  auto text = bitnet::apply_chat_template(tmpl != nullptr ? tmpl : "chatml", messages, add_ass, "<s>", "</s>");
  if (!text.ok()) {
    capi::log_error("llama_chat_apply_template: {}", text.error().message);
    return -1;
  }
  if (text->size() > static_cast<size_t>(INT32_MAX)) return -1;
  if (buf != nullptr && length > 0) {
    // As llama.cpp (strncpy): as much as fits, terminated when there is room.
    const size_t n = std::min(text->size(), static_cast<size_t>(length));
    std::memcpy(buf, text->data(), n);
    if (n < static_cast<size_t>(length)) buf[n] = '\0';
  }
  return static_cast<int32_t>(text->size());
}

int32_t llama_chat_builtin_templates(const char** output, size_t len) {
  static const std::vector<std::string> names = bitnet::chat_template_names();
  for (size_t i = 0; i < len && i < names.size() && output != nullptr; ++i) output[i] = names[i].c_str();
  return static_cast<int32_t>(names.size());
}

}  // extern "C"

// The built-in chat templates (see chat_template.h). Each renderer follows its family's
// reference Jinja template (tests/runtime/chat_templates/) exactly, except that the text never
// starts with the BOS token: tokenization adds it, as llama.cpp does (a template that writes
// bos_token inside the history, like llama2's per-turn "<s>[INST]", keeps those).
#include "runtime/chat_template.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace bitnet::runtime {
namespace {

using Messages = std::span<const ChatMessage>;

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

// Jinja's `trim` / Python's str.strip() on ASCII whitespace.
std::string trim(std::string_view s) {
  constexpr std::string_view kSpace = " \t\n\r\v\f";
  const size_t begin = s.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  return std::string(s.substr(begin, s.find_last_not_of(kSpace) - begin + 1));
}

// Jinja's `capitalize`: the first character upper case, the rest lower case (ASCII).
std::string capitalize(std::string_view s) {
  std::string out(s);
  for (size_t i = 0; i < out.size(); ++i) {
    const char c = out[i];
    if (i == 0 && c >= 'a' && c <= 'z') out[i] = static_cast<char>(c - 'a' + 'A');
    if (i > 0 && c >= 'A' && c <= 'Z') out[i] = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// BitNet b1.58 2B4T: "System: …<|eot_id|>User: …<|eot_id|>Assistant: ".
std::string render_bitnet(Messages messages, bool add_generation_prompt, const ChatSpecialTokens&) {
  std::string out;
  for (const ChatMessage& m : messages) out += capitalize(m.role) + ": " + trim(m.content) + "<|eot_id|>";
  if (add_generation_prompt) out += "Assistant: ";
  return out;
}

std::string render_llama3(Messages messages, bool add_generation_prompt, const ChatSpecialTokens&) {
  std::string out;
  for (const ChatMessage& m : messages) {
    out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) + "<|eot_id|>";
  }
  if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

// Llama 2 chat: "<s>[INST] <<SYS>>\n…\n<</SYS>>\n\n… [/INST] … </s><s>[INST] … [/INST]". The
// assistant's turn needs no opening: the model answers right after [/INST].
std::string render_llama2(Messages messages, bool, const ChatSpecialTokens& special) {
  std::string out;
  const bool has_system = !messages.empty() && messages[0].role == "system";
  const Messages turns = has_system ? messages.subspan(1) : messages;
  for (size_t i = 0; i < turns.size(); ++i) {
    std::string content = turns[i].content;
    if (i == 0 && has_system) content = "<<SYS>>\n" + messages[0].content + "\n<</SYS>>\n\n" + content;
    if (turns[i].role == "user") {
      out += (out.empty() ? "" : special.bos) + "[INST] " + trim(content) + " [/INST]";  // the first BOS: tokenization
    } else if (turns[i].role == "assistant") {
      out += " " + trim(content) + " " + special.eos;
    }
  }
  return out;
}

std::string render_chatml(Messages messages, bool add_generation_prompt, const ChatSpecialTokens&) {
  std::string out;
  for (const ChatMessage& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

// HuggingFaceH4/zephyr: "<|user|>\n…</s>\n<|assistant|>\n" (the model's EOS closes each turn).
std::string render_zephyr(Messages messages, bool add_generation_prompt, const ChatSpecialTokens& special) {
  std::string out;
  for (const ChatMessage& m : messages) out += "<|" + m.role + "|>\n" + m.content + special.eos + "\n";
  if (add_generation_prompt && !messages.empty()) out += "<|assistant|>\n";
  return out;
}

std::string render_phi3(Messages messages, bool add_generation_prompt, const ChatSpecialTokens&) {
  std::string out;
  for (const ChatMessage& m : messages) out += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
  if (add_generation_prompt) out += "<|assistant|>\n";
  return out;
}

// Gemma has no system role: a system message opens the next user turn (as llama.cpp does).
std::string render_gemma(Messages messages, bool add_generation_prompt, const ChatSpecialTokens&) {
  std::string out, system;
  for (const ChatMessage& m : messages) {
    if (m.role == "system") {
      system += trim(m.content);
      continue;
    }
    const std::string role = m.role == "assistant" ? "model" : m.role;
    out += "<start_of_turn>" + role + "\n";
    if (!system.empty() && role != "model") {
      out += system + "\n\n";
      system.clear();
    }
    out += trim(m.content) + "<end_of_turn>\n";
  }
  if (add_generation_prompt) out += "<start_of_turn>model\n";
  return out;
}

// Mistral instruct (v1): "[INST] … [/INST]…</s>[INST] … [/INST]". No system role: a system
// message opens the next user turn.
std::string render_mistral(Messages messages, bool, const ChatSpecialTokens& special) {
  std::string out, system;
  for (const ChatMessage& m : messages) {
    if (m.role == "system") {
      system += m.content + "\n\n";
    } else if (m.role == "user") {
      out += "[INST] " + system + m.content + " [/INST]";
      system.clear();
    } else {
      out += m.content + special.eos;
    }
  }
  return out;
}

struct TemplateRow {
  std::string_view name;
  bool (*matches)(std::string_view jinja);  // llama.cpp-style detection by marker substrings
  std::string (*render)(Messages, bool, const ChatSpecialTokens&);
};

// Detection tries the rows in this order: the first whose markers the text has wins.
constexpr TemplateRow kTemplates[] = {
    {"chatml", [](std::string_view t) { return contains(t, "<|im_start|>"); }, render_chatml},
    {"llama2", [](std::string_view t) { return contains(t, "[INST]") && contains(t, "<<SYS>>"); }, render_llama2},
    {"mistral", [](std::string_view t) { return contains(t, "[INST]"); }, render_mistral},
    {"phi3", [](std::string_view t) { return contains(t, "<|assistant|>") && contains(t, "<|end|>"); }, render_phi3},
    {"zephyr", [](std::string_view t) { return contains(t, "<|user|>") && contains(t, "<|assistant|>"); },
     render_zephyr},
    {"gemma", [](std::string_view t) { return contains(t, "<start_of_turn>"); }, render_gemma},
    {"llama3",
     [](std::string_view t) { return contains(t, "<|start_header_id|>") && contains(t, "<|end_header_id|>"); },
     render_llama3},
    // The 2B4T's own template ("'Assistant: '" after "<|eot_id|>" turns), and the
    // "…BITNETAssistant: …" text the reference's converter writes into its GGUF.
    {"bitnet",
     [](std::string_view t) {
       return (contains(t, "<|eot_id|>") && contains(t, "Assistant: ")) || contains(t, "BITNETAssistant");
     },
     render_bitnet},
};

}  // namespace

std::vector<std::string_view> chat_template_names() {
  std::vector<std::string_view> names;
  for (const TemplateRow& row : kTemplates) names.push_back(row.name);
  return names;
}

Expected<ChatTemplate> ChatTemplate::by_name(std::string_view name) {
  for (size_t i = 0; i < std::size(kTemplates); ++i) {
    if (kTemplates[i].name == name) return ChatTemplate(i);
  }
  return make_error("unknown chat template '{}' (built in: {})", name, fmt::join(chat_template_names(), ", "));
}

std::optional<ChatTemplate> ChatTemplate::detect(std::string_view jinja_text) {
  if (auto named = by_name(jinja_text); named.ok()) return *named;
  for (size_t i = 0; i < std::size(kTemplates); ++i) {
    if (kTemplates[i].matches(jinja_text)) return ChatTemplate(i);
  }
  return std::nullopt;
}

Expected<ChatTemplate> ChatTemplate::choose(std::string_view name, std::string_view model_template_text) {
  if (!name.empty()) {
    auto named = by_name(name);
    if (named.ok()) return named;
    if (auto detected = detect(name)) return *detected;  // a Jinja text given instead of a name
    return named.error();
  }
  if (model_template_text.empty()) return by_name("chatml");
  if (auto detected = detect(model_template_text)) return *detected;
  return make_error("the model's chat template is not one of the built-in ones ({}); choose one with --chat-template",
                    fmt::join(chat_template_names(), ", "));
}

std::string_view ChatTemplate::name() const {
  return kTemplates[row_].name;
}

Expected<std::string> ChatTemplate::apply(std::span<const ChatMessage> messages, bool add_generation_prompt,
                                          const ChatSpecialTokens& special) const {
  for (const ChatMessage& m : messages) {
    if (m.role != "system" && m.role != "user" && m.role != "assistant") {
      return make_error("unknown chat role '{}' (use system, user or assistant)", m.role);
    }
  }
  return kTemplates[row_].render(messages, add_generation_prompt, special);
}

}  // namespace bitnet::runtime

// Chat templates: every built-in template renders what its family's reference Jinja template
// (tests/runtime/chat_templates/NAME.jinja; phi3 also the template of ../shared's phi-3
// vocabulary GGUF) gives when Jinja2 renders it as transformers does
// (render_chat_templates.py, python3-jinja2), on conversations with and without a system
// message, several turns, whitespace around contents and non-ASCII text; detection picks the
// template from its text; names, roles and fallbacks.
#include "runtime/chat_template.h"
#include "frontend_gguf/gguf_file.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace bitnet::runtime {
namespace {

using Conversation = std::vector<ChatMessage>;

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::filesystem::path template_dir() {
  return testing::source_dir() / "tests/runtime/chat_templates";
}

std::vector<Conversation> conversations() {
  return {
      {{"user", "Hello!"}},
      {{"system", "You are a helpful assistant."}, {"user", "What is 1.58 bits?"}},
      {{"user", "  Hi there  "}, {"assistant", "\nHello, how can I help?\n"}, {"user", "Tell me a joke."}},
      {{"system", " Be brief. "}, {"user", "Grüße aus Köln — 你好"}, {"assistant", "Hallo! 👋"}, {"user", "Two\nlines"}},
      {{"user", "Done?"}, {"assistant", "Yes."}},
  };
}

// Jinja2's rendering of `templates` x conversations x {with, without generation prompt}, or
// nothing when python3-jinja2 is missing (a failure under CI, where it is installed).
struct Rendered {
  std::string name;
  size_t conversation;
  bool generation_prompt;
  std::optional<std::string> text;  // nullopt: the template raised (an unsupported conversation)
};
std::optional<std::vector<Rendered>> render_with_jinja(
    const std::vector<std::pair<std::string, std::string>>& templates, const ChatSpecialTokens& special) {
  nlohmann::json cases = nlohmann::json::array();
  std::vector<Rendered> out;
  const auto convs = conversations();
  for (const auto& [name, text] : templates) {
    for (size_t c = 0; c < convs.size(); ++c) {
      for (bool gen : {true, false}) {
        nlohmann::json messages = nlohmann::json::array();
        for (const ChatMessage& m : convs[c]) messages.push_back({{"role", m.role}, {"content", m.content}});
        cases.push_back({{"template", text},
                         {"messages", messages},
                         {"add_generation_prompt", gen},
                         {"bos_token", special.bos},
                         {"eos_token", special.eos}});
        out.push_back({name, c, gen, std::nullopt});
      }
    }
  }
  testing::TempDir dir;
  const auto input = dir / "cases.json";
  const std::string json = nlohmann::json{{"cases", cases}}.dump();
  testing::write_file(input, std::vector<uint8_t>(json.begin(), json.end()));
  auto r = testing::run_command(
      "python3 " + testing::shell_quote((testing::source_dir() / "tests/runtime/render_chat_templates.py").string()) +
      " < " + testing::shell_quote(input.string()));
  if (r.exit_code != 0) {
    const bool ci = std::getenv("CI") != nullptr && std::string(std::getenv("CI")) == "true";
    EXPECT_FALSE(ci) << "python3-jinja2 is needed under CI (scripts/install-deps.sh installs it): " << r.err;
    return std::nullopt;
  }
  const auto results = nlohmann::json::parse(r.out);
  EXPECT_EQ(results.size(), out.size());
  for (size_t i = 0; i < out.size() && i < results.size(); ++i) {
    if (results[i].contains("text")) out[i].text = results[i]["text"].get<std::string>();
  }
  return out;
}

// What our renderer must equal: the Jinja text without the leading BOS (tokenization adds it).
std::string without_leading_bos(std::string text, const std::string& bos) {
  if (!bos.empty() && text.starts_with(bos)) text.erase(0, bos.size());
  return text;
}

TEST(ChatTemplate, EveryBuiltInRendersAsItsJinjaTemplate) {
  const ChatSpecialTokens special{"<s>", "</s>"};
  std::vector<std::pair<std::string, std::string>> templates;
  for (std::string_view name : chat_template_names()) {
    const auto path = template_dir() / (std::string(name) + ".jinja");
    ASSERT_TRUE(std::filesystem::exists(path)) << path;
    templates.emplace_back(std::string(name), read_text(path));
  }
  auto rendered = render_with_jinja(templates, special);
  if (!rendered) GTEST_SKIP() << "python3-jinja2 is not installed";
  const auto convs = conversations();
  std::map<std::string, int> compared;
  for (const Rendered& r : *rendered) {
    if (!r.text) continue;  // e.g. gemma's and mistral's templates refuse a system message
    // phi3's template closes a conversation without a generation prompt with EOS, which a chat
    // never renders (the assistant's turn follows): compared with the generation prompt only.
    if (r.name == "phi3" && !r.generation_prompt) continue;
    auto tmpl = ChatTemplate::by_name(r.name);
    ASSERT_TRUE(tmpl.ok()) << tmpl.error().message;
    auto ours = tmpl->apply(convs[r.conversation], r.generation_prompt, special);
    ASSERT_TRUE(ours.ok()) << ours.error().message;
    EXPECT_EQ(*ours, without_leading_bos(*r.text, special.bos))
        << r.name << ", conversation " << r.conversation << (r.generation_prompt ? ", generation prompt" : "");
    ++compared[r.name];
  }
  for (std::string_view name : chat_template_names()) {
    EXPECT_GE(compared[std::string(name)], 3) << name << " was compared on too few conversations";
  }
}

// A template text that nobody here wrote: the phi-3 vocabulary GGUF's.
TEST(ChatTemplate, Phi3GgufTemplateIsDetectedAndRendered) {
  BITNET_REQUIRE_SHARED(shared);
  auto file = gguf::GgufFile::open((shared / "models/vocab/ggml-vocab-phi-3.gguf").string());
  ASSERT_TRUE(file.ok()) << file.error().message;
  const std::string* text = file->get_string("tokenizer.chat_template");
  ASSERT_NE(text, nullptr);
  auto detected = ChatTemplate::detect(*text);
  ASSERT_TRUE(detected);
  EXPECT_EQ(detected->name(), "phi3");
  const ChatSpecialTokens special{"<s>", "<|endoftext|>"};
  auto rendered = render_with_jinja({{"phi3", *text}}, special);
  if (!rendered) GTEST_SKIP() << "python3-jinja2 is not installed";
  const auto convs = conversations();
  int compared = 0;
  for (const Rendered& r : *rendered) {
    // This early template drops system messages and always opens the assistant's turn after a
    // user's: the conversations a chat sends (no system message, ending with the user's turn).
    const Conversation& c = convs[r.conversation];
    if (!r.text || !r.generation_prompt || c.front().role == "system" || c.back().role != "user") continue;
    auto ours = detected->apply(c, true, special);
    ASSERT_TRUE(ours.ok());
    EXPECT_EQ(*ours, without_leading_bos(*r.text, special.bos)) << "conversation " << r.conversation;
    ++compared;
  }
  EXPECT_GE(compared, 2);
}

TEST(ChatTemplate, DetectionFindsEachFamilyFromItsText) {
  for (std::string_view name : chat_template_names()) {
    const std::string text = read_text(template_dir() / (std::string(name) + ".jinja"));
    auto detected = ChatTemplate::detect(text);
    ASSERT_TRUE(detected) << name;
    EXPECT_EQ(detected->name(), name);
    // A name is also a template "text" (as llama.cpp accepts).
    auto by_name = ChatTemplate::detect(name);
    ASSERT_TRUE(by_name);
    EXPECT_EQ(by_name->name(), name);
  }
  // The template the reference's converter writes into BitNet GGUFs.
  auto converted =
      ChatTemplate::detect("{% for m in messages %}Human: {{ m.content }}\n\nBITNETAssistant: {% endfor %}");
  ASSERT_TRUE(converted);
  EXPECT_EQ(converted->name(), "bitnet");
  EXPECT_FALSE(ChatTemplate::detect("{{ messages[0].content }}"));
}

TEST(ChatTemplate, BitnetTwoBFourTFormat) {
  auto t = ChatTemplate::by_name("bitnet");
  ASSERT_TRUE(t.ok());
  auto text = t->apply(std::vector<ChatMessage>{{"system", "Be nice."}, {"user", " Hi "}}, true, {});
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "System: Be nice.<|eot_id|>User: Hi<|eot_id|>Assistant: ");
}

TEST(ChatTemplate, ChoiceNamesRolesAndFallbacks) {
  auto unknown = ChatTemplate::by_name("vicuna");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("chatml"), std::string::npos) << unknown.error().message;
  // No template in the model: chatml, as llama.cpp; a model template nothing matches: an error
  // asking for --chat-template; a name given wins over the model's text.
  auto fallback = ChatTemplate::choose("", "");
  ASSERT_TRUE(fallback.ok());
  EXPECT_EQ(fallback->name(), "chatml");
  auto unmatched = ChatTemplate::choose("", "{{ messages[0].content }}");
  ASSERT_FALSE(unmatched.ok());
  EXPECT_NE(unmatched.error().message.find("--chat-template"), std::string::npos);
  auto named = ChatTemplate::choose("gemma", "<|im_start|>");
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(named->name(), "gemma");
  auto chatml = ChatTemplate::by_name("chatml");
  ASSERT_TRUE(chatml.ok());
  auto bad_role = chatml->apply(std::vector<ChatMessage>{{"tool", "x"}}, true, {});
  ASSERT_FALSE(bad_role.ok());
  EXPECT_NE(bad_role.error().message.find("tool"), std::string::npos);
  auto empty = chatml->apply({}, true, {});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, "<|im_start|>assistant\n");
}

}  // namespace
}  // namespace bitnet::runtime

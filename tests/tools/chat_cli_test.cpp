// `bitnet chat` end to end: turns from stdin, replies streamed to stdout, the KV cache kept
// across turns (only the new part of the conversation is fed), /exit and end of input, the
// template chosen by name or from the model's tokenizer.chat_template, and bad options.
#include "test_support.h"

#include <string>

namespace bitnet {
namespace {

using testing::cli;
using testing::run_command;
using testing::shell_quote;
using testing::stories;

// Runs `bitnet chat ARGS` with `input` on stdin.
testing::CommandResult chat(const std::string& args, const std::string& input) {
  testing::TempDir dir;
  const auto in = dir / "input.txt";
  testing::write_file(in, std::vector<uint8_t>(input.begin(), input.end()));
  return run_command(cli() + " chat " + args + " < " + shell_quote(in.string()));
}

// "turn N: R tokens reused from the cache, F fed" lines of -v, as (R, F) per turn.
std::vector<std::pair<int, int>> turns(const std::string& err) {
  std::vector<std::pair<int, int>> out;
  const std::string reused = " tokens reused from the cache, ";
  for (size_t at = err.find("chat: turn "); at != std::string::npos; at = err.find("chat: turn ", at + 1)) {
    const size_t colon = err.find(": ", at + 11);
    const size_t mid = err.find(reused, colon);
    if (colon == std::string::npos || mid == std::string::npos) break;
    out.emplace_back(std::stoi(err.substr(colon + 2, mid - colon - 2)), std::stoi(err.substr(mid + reused.size())));
  }
  return out;
}

TEST(ChatCli, KeepsTheCacheAcrossTurnsAndStreamsReplies) {
  auto r =
      chat("-m " + stories() + " --temp 0 -n 12 -v -t 2", "Once upon a time\nThe dog\n\nA bird\n/exit\nnot read\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("template chatml"), std::string::npos) << r.err;  // stories260K has no template
  const auto t = turns(r.err);
  ASSERT_EQ(t.size(), 3u) << r.err;  // the empty line is no turn; /exit ends before "not read"
  EXPECT_EQ(t[0].first, 0);
  // Later turns feed only what the cache does not hold: the previous reply's end and the new turn.
  for (size_t i = 1; i < t.size(); ++i) {
    EXPECT_GT(t[i].first, t[i - 1].first + t[i - 1].second) << r.err;
    EXPECT_LT(t[i].second, t[i].first) << r.err;
  }
  // One reply line per turn, each with text.
  size_t lines = 0;
  for (char c : r.out) lines += c == '\n';
  EXPECT_EQ(lines, 3u) << r.out;
  EXPECT_EQ(r.out.find("\n\n"), std::string::npos) << r.out;

  // End of input ends the chat like /exit; the same seed and turns give the same replies.
  auto again = chat("-m " + stories() + " --temp 0 -n 12 -t 1", "Once upon a time\nThe dog\n\nA bird\n");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, r.out);
}

// A conversation longer than the context forgets its oldest exchanges and goes on.
TEST(ChatCli, ALongConversationForgetsItsOldestTurns) {
  std::string input;
  for (int i = 0; i < 8; ++i) input += "Once upon a time there was a little dog who liked to play in the park\n";
  auto r = chat("-m " + stories() + " --temp 0 -n 16 -v -c 128 --system 'Tell a story.'", input);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(turns(r.err).size(), 8u) << r.err;
  EXPECT_NE(r.err.find("oldest exchanges before turn 2 to fit the context of 128"), std::string::npos) << r.err;
}

TEST(ChatCli, SystemMessageAndTemplateChoice) {
  auto plain = chat("-m " + stories() + " --temp 0 -n 4 -v", "Hi\n");
  auto with_system = chat("-m " + stories() + " --temp 0 -n 4 -v --system 'You tell stories.'", "Hi\n");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  ASSERT_EQ(with_system.exit_code, 0) << with_system.err;
  ASSERT_EQ(turns(plain.err).size(), 1u);
  ASSERT_EQ(turns(with_system.err).size(), 1u);
  EXPECT_GT(turns(with_system.err)[0].second, turns(plain.err)[0].second);  // the system turn is fed too
  auto gemma = chat("-m " + stories() + " --temp 0 -n 4 -v --chat-template gemma", "Hi\n");
  ASSERT_EQ(gemma.exit_code, 0) << gemma.err;
  EXPECT_NE(gemma.err.find("template gemma"), std::string::npos) << gemma.err;

  // A model whose GGUF names its template: detected from tokenizer.chat_template.
  testing::TempDir dir;
  auto model = testing::make_synthetic_model();
  model.writer.set("tokenizer.chat_template",
                   std::string("{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n"
                               "{{ m.content }}<|eot_id|>{% endfor %}"));
  ASSERT_TRUE(model.writer.write_file_atomic((dir / "m.gguf").string()).ok());
  auto llama3 = chat("-m " + shell_quote((dir / "m.gguf").string()) + " --temp 0 -n 2 -v", "Hi\n");
  ASSERT_EQ(llama3.exit_code, 0) << llama3.err;
  EXPECT_NE(llama3.err.find("template llama3"), std::string::npos) << llama3.err;
  // One nothing matches: an error that says what to do.
  model.writer.set("tokenizer.chat_template", std::string("{{ messages[0].content }}"));
  ASSERT_TRUE(model.writer.write_file_atomic((dir / "odd.gguf").string()).ok());
  auto odd = chat("-m " + shell_quote((dir / "odd.gguf").string()) + " -n 2", "Hi\n");
  EXPECT_EQ(odd.exit_code, 1);
  EXPECT_NE(odd.err.find("--chat-template"), std::string::npos) << odd.err;
}

TEST(ChatCli, BadOptionsAreUsageErrors) {
  auto bogus = chat("-m " + stories() + " --chat-template vicuna", "Hi\n");
  EXPECT_EQ(bogus.exit_code, 2);
  EXPECT_NE(bogus.err.find("chatml"), std::string::npos) << bogus.err;  // lists the built-in names
  EXPECT_EQ(chat("-m " + stories() + " -n -2", "Hi\n").exit_code, 2);
  EXPECT_EQ(chat("-m " + stories() + " --temp -1", "Hi\n").exit_code, 2);
  EXPECT_EQ(chat("-m /no/such.gguf", "Hi\n").exit_code, 1);
}

}  // namespace
}  // namespace bitnet

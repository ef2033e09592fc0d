// `bitnet tokenize`: text -> token ids and pieces, or ids -> text with --detokenize, using
// the tokenizer of a GGUF model or vocabulary, or a Hugging Face tokenizer.json. Written on
// the public library (include/bitnet/) only.
#include "bitnet/model.h"
#include "tools/commands.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <memory>

namespace bitnet::tools {
namespace {

using nlohmann::json;

// Pieces are printed between quotes; control characters are escaped so each token stays on one line.
std::string escape(std::string_view piece) {
  std::string out;
  for (char c : piece) {
    switch (c) {
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
          out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string json_text(const json& doc) {
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

void add_tokenize(CLI::App& app, int& exit_code) {
  struct Options {
    std::string model;
    std::string tokenizer;
    std::string text;
    std::vector<int32_t> ids;
    bool no_bos = false;
    bool parse_special = false;
    bool json = false;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Turn text into token ids and pieces (or ids back into text)");
  CLI::Option* model = cmd->add_option("-m,--model", opts->model, "GGUF model whose tokenizer to use");
  CLI::Option* tok = cmd->add_option("--tokenizer", opts->tokenizer, "GGUF (vocab-only is fine) or tokenizer.json");
  model->excludes(tok);
  CLI::Option* text = cmd->add_option("--text", opts->text, "Text to tokenize");
  CLI::Option* detok =
      cmd->add_option("--detokenize", opts->ids, "Comma-separated token ids to turn back into text")->delimiter(',');
  text->excludes(detok);
  cmd->add_flag("--no-bos", opts->no_bos, "Do not add BOS (and EOS) even when the model asks for them");
  cmd->add_flag("--parse-special", opts->parse_special,
                "Recognise control tokens such as <|eot_id|> in the text; render them when detokenizing");
  cmd->add_flag("--json", opts->json, "Print JSON: {\"ids\": [...], \"pieces\": [...]} or {\"text\": ...}");
  cmd->callback([opts, model, tok, text, detok, &exit_code] {
    if (model->count() == 0 && tok->count() == 0) throw CLI::RequiredError("--model or --tokenizer");
    if (text->count() == 0 && detok->count() == 0) throw CLI::RequiredError("--text or --detokenize");
    auto vocab = Vocab::load(opts->model.empty() ? opts->tokenizer : opts->model);
    if (!vocab.ok()) {
      print_error("tokenize", vocab.error().message);
      exit_code = kExitFailure;
      return;
    }
    const Vocab& v = **vocab;
    if (detok->count() > 0) {
      auto decoded = v.detokenize(opts->ids, opts->parse_special);
      if (!decoded.ok()) {
        print_error("tokenize", decoded.error().message);
        exit_code = kExitFailure;
        return;
      }
      if (opts->json) {
        fmt::print("{}\n", json_text(json{{"text", *decoded}}));
      } else {
        fmt::print("{}\n", *decoded);
      }
      exit_code = kExitOk;
      return;
    }
    const std::vector<Token> ids = v.tokenize(opts->text, /*add_special=*/!opts->no_bos, opts->parse_special);
    if (opts->json) {
      json pieces = json::array();
      for (const Token id : ids) pieces.push_back(v.token_to_piece(id, true));
      fmt::print("{}\n", json_text(json{{"ids", ids}, {"pieces", pieces}}));
    } else {
      for (const Token id : ids) fmt::print("{:>7} -> '{}'\n", id, escape(v.token_to_piece(id, true)));
    }
    exit_code = kExitOk;
  });
}

}  // namespace bitnet::tools

// `bitnet compat-check MODEL [--json]` and `bitnet compat-fix IN OUT`.
#include "frontend_gguf/compat.h"
#include "tools/commands.h"

#include <fmt/format.h>

#include <memory>

namespace bitnet::tools {
namespace {

using nlohmann::json;

// compat-check's own exit codes: 0 clean, 1 warnings only, 2 errors.
int compat_exit_code(const gguf::Findings& f) {
  if (f.has_errors()) return 2;
  if (f.has_warnings()) return 1;
  return 0;
}

json findings_json(const gguf::Findings& f) {
  json items = json::array();
  for (const auto& x : f.items) {
    items.push_back({{"severity", gguf::severity_name(x.severity)},
                     {"code", x.code},
                     {"message", x.message},
                     {"hint", x.hint},
                     {"fixable", x.fixable}});
  }
  return items;
}

void print_findings(const gguf::Findings& f) {
  for (const auto& x : f.items) {
    fmt::print("{:<7}  {:<22}  {}\n", gguf::severity_name(x.severity), x.code, x.message);
    if (!x.hint.empty()) fmt::print("{:<7}  {:<22}  fix: {}{}\n", "", "", x.hint, x.fixable ? " [compat-fix]" : "");
  }
}

}  // namespace

void add_compat_check(CLI::App& app, int& exit_code) {
  struct Options {
    std::string model;
    bool json = false;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* cmd =
      app.add_subcommand("compat-check",
                         "Diagnose what makes a GGUF fail or misbehave here or in other engines (exit 0 clean, 1 "
                         "warnings, 2 errors)");
  cmd->add_option("MODEL", opts->model, "GGUF file")->required();
  cmd->add_flag("--json", opts->json, "Print findings as JSON");
  cmd->callback([opts, &exit_code] {
    const gguf::Findings f = gguf::check_compat_file(opts->model);
    exit_code = compat_exit_code(f);
    const char* verdict = exit_code == 0 ? "clean" : exit_code == 1 ? "warnings" : "errors";
    if (opts->json) {
      json doc = {{"schema_version", 1},
                  {"file", opts->model},
                  {"verdict", verdict},
                  {"exit_code", exit_code},
                  {"findings", findings_json(f)}};
      fmt::print("{}\n", doc.dump(2, ' ', false, json::error_handler_t::replace));
      return;
    }
    print_findings(f);
    size_t errors = 0, warnings = 0;
    for (const auto& x : f.items) {
      errors += x.severity == gguf::Severity::kError;
      warnings += x.severity == gguf::Severity::kWarning;
    }
    fmt::print("{}: {} ({} errors, {} warnings)\n", opts->model, verdict, errors, warnings);
  });
}

void add_compat_fix(CLI::App& app, int& exit_code) {
  struct Options {
    std::string in, out;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "compat-fix", "Write a fixed copy of a GGUF applying only safe fixes, plus OUT.compat.json; IN is never touched");
  cmd->add_option("IN", opts->in, "input GGUF file")->required();
  cmd->add_option("OUT", opts->out, "output GGUF file (must not be IN)")->required();
  cmd->callback([opts, &exit_code] {
    auto result = gguf::compat_fix(opts->in, opts->out, version_string());
    if (!result.ok()) {
      print_error("compat-fix", result.error().message);
      exit_code = kExitFailure;
      return;
    }
    if (result->fixes.empty()) fmt::print("no fixes were needed; wrote an equivalent copy\n");
    for (const auto& fx : result->fixes) {
      fmt::print("fixed  {:<18}  {}: {} -> {}  ({})\n", fx.code, fx.key,
                 fx.before.dump(-1, ' ', false, json::error_handler_t::replace),
                 fx.after.dump(-1, ' ', false, json::error_handler_t::replace), fx.description);
    }
    fmt::print("wrote {} (sha256 {})\n", opts->out, result->output_sha256);
    if (result->report_path.empty()) {  // OUT is a device or FIFO: no OUT.compat.json beside it
      fmt::print(stderr, "bitnet: note: '{}' is not a regular file: the report {}.compat.json was not written\n",
                 opts->out, opts->out);
    } else {
      fmt::print("report {}\n", result->report_path);
    }
    if (!result->remaining.items.empty()) {
      fmt::print("remaining findings (not safely fixable):\n");
      print_findings(result->remaining);
    }
    exit_code = kExitOk;
  });
}

}  // namespace bitnet::tools

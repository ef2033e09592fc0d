// The `bitnet` subcommands. Each add_* registers its options on `app` and, when
// chosen, stores its exit code in `exit_code`.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace bitnet::tools {

// Exit codes shared by every command (README "Exit codes").
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // bad input file, I/O error, refused operation
inline constexpr int kExitUsage = 2;    // bad command line

std::string version_string();
// What --version prints: the version, then a line on the CUDA driver and its devices.
std::string version_report();

void add_inspect(CLI::App& app, int& exit_code);
void add_compat_check(CLI::App& app, int& exit_code);
void add_compat_fix(CLI::App& app, int& exit_code);
void add_tokenize(CLI::App& app, int& exit_code);
void add_dump_ir(CLI::App& app, int& exit_code);
void add_gen_model(CLI::App& app, int& exit_code);
void add_convert(CLI::App& app, int& exit_code);  // Hugging Face checkpoints -> GGUF (convert/)
void add_run(CLI::App& app, int& exit_code);
void add_chat(CLI::App& app, int& exit_code);
void add_eval(CLI::App& app, int& exit_code);
void add_bench(CLI::App& app, int& exit_code);
void add_compile(CLI::App& app, int& exit_code);  // needs the compiler (compiler/)
void add_dump_plan(CLI::App& app, int& exit_code);
void add_cache(CLI::App& app, int& exit_code);
void add_serve(CLI::App& app, int& exit_code);     // the HTTP server (server/)
void add_download(CLI::App& app, int& exit_code);  // files from the Hugging Face hub (hub/)

// Parses the command line and runs the chosen command: its exit code, kExitUsage for a bad
// command line (0 for --help / --version), kExitFailure for an exception (`program` names it).
int parse_and_run(CLI::App& app, int argc, char** argv, const int& exit_code, std::string_view program);

// Flushes stdout; throws std::system_error with the reason when the write fails (a full
// disk, a reader that went away), which parse_and_run reports as "cannot write output".
void flush_stdout();

// Prints "bitnet <command>: error: <message>" to stderr.
void print_error(std::string_view command, std::string_view message);

}  // namespace bitnet::tools

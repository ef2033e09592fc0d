// `bitnet cache list|clear|prune`: what the plan cache holds (runtime/plan_cache.h), emptying
// it, and trimming it to a size, least recently used plans first.
#include "runtime/plan_cache.h"
#include "tools/commands.h"
#include "tools/option_values.h"

#include <fmt/format.h>

#include <ctime>
#include <memory>

namespace bitnet::tools {
namespace {

std::string format_time(int64_t unix_s) {
  const std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M", &tm);
  return buffer;
}

}  // namespace

void add_cache(CLI::App& app, int& exit_code) {
  struct Options {
    std::string dir;
    std::string max_size;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("cache",
                                     "List, clear or prune the plan cache ($BITNET_CACHE_DIR, "
                                     "else $XDG_CACHE_HOME/bitnet, else ~/.cache/bitnet)");
  cmd->require_subcommand(1);
  // Before or after the action: `cache --dir DIR list` and `cache list --dir DIR` (the
  // actions let options they do not know fall through to `cache`).
  cmd->add_option("--dir", o->dir, "the cache directory (default: as above)");
  auto cache = [o]() -> Expected<runtime::PlanCache> {
    if (!o->dir.empty()) return runtime::PlanCache(o->dir);
    BITNET_ASSIGN_OR_RETURN(std::string dir, runtime::default_cache_dir());
    return runtime::PlanCache(dir);
  };

  CLI::App* list = cmd->add_subcommand("list",
                                       "Plans and CUDA modules in the cache, most recently used first (invalid "
                                       "ones and plans this CPU cannot run marked)");
  list->fallthrough();
  list->callback([cache, &exit_code] {
    exit_code = kExitFailure;
    auto c = cache();
    auto entries = c.ok() ? c->list() : Expected<std::vector<runtime::PlanCache::Entry>>(c.error());
    if (!entries.ok()) return print_error("cache list", entries.error().message);
    uint64_t total = 0;
    size_t modules = 0;
    fmt::print("cache {}\n", c->root());
    for (const auto& e : *entries) {
      total += e.bytes;
      modules += e.cuda_module ? 1 : 0;
      std::string what = !e.valid        ? "INVALID: " + e.problem
                         : e.cuda_module ? fmt::format("CUDA module for {}: {}", e.target, e.model)
                                         : fmt::format("{} for {}", e.model, e.target);
      if (e.valid && !e.unusable.empty()) what += "  UNUSABLE on this CPU: " + e.unusable;
      fmt::print("{}  {:>10}  used {}  {}\n", e.key.substr(0, 16), format_size(e.bytes), format_time(e.last_used_s),
                 what);
    }
    fmt::print("{} plans, {} CUDA modules, {}\n", entries->size() - modules, modules, format_size(total));
    exit_code = kExitOk;
  });

  CLI::App* clear = cmd->add_subcommand("clear", "Remove every cached plan, CUDA module and memoised model hash");
  clear->fallthrough();
  clear->callback([cache, &exit_code] {
    exit_code = kExitFailure;
    auto c = cache();
    auto removed = c.ok() ? c->clear() : Expected<runtime::PlanCache::Removed>(c.error());
    if (!removed.ok()) return print_error("cache clear", removed.error().message);
    fmt::print("removed {} files ({})\n", removed->files, format_size(removed->bytes));
    exit_code = kExitOk;
  });

  CLI::App* prune = cmd->add_subcommand("prune",
                                        "Remove invalid plans, plans this CPU cannot run and stale temp and "
                                        "lock files, then the least recently used plans beyond --max-size");
  prune->fallthrough();
  prune->add_option("--max-size", o->max_size, "keep at most this much (e.g. 500M, 2G)");
  prune->callback([o, cache, &exit_code] {
    exit_code = kExitFailure;
    std::optional<uint64_t> max_bytes;
    if (!o->max_size.empty()) {
      auto parsed = runtime::parse_size(o->max_size);
      if (!parsed.ok()) {
        exit_code = kExitUsage;
        return print_error("cache prune", parsed.error().message);
      }
      max_bytes = *parsed;
    }
    auto c = cache();
    auto removed = c.ok() ? c->prune(max_bytes) : Expected<runtime::PlanCache::Removed>(c.error());
    if (!removed.ok()) return print_error("cache prune", removed.error().message);
    fmt::print("removed {} files ({})\n", removed->files, format_size(removed->bytes));
    exit_code = kExitOk;
  });
}

}  // namespace bitnet::tools

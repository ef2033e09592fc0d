// `bitnet download REPO [FILE...]`: files from the Hugging Face hub into the huggingface_hub
// cache (hub/), printed one path per line; -o DIR places them there too. Without FILE every
// file of the revision is fetched (the hub's file list).
#include "hub/hub_cache.h"
#include "hub/hub_client.h"
#include "hub/local_dir.h"
#include "hub/progress_bar.h"
#include "tools/commands.h"
#include "tools/option_values.h"

#include <fmt/format.h>

#include <memory>

namespace bitnet::tools {
namespace {

CLI::Validator checked_by(Status (*check)(std::string_view), const char* name) {
  return CLI::Validator(
      [check](std::string& value) -> std::string {
        Status s = check(value);
        return s.ok() ? "" : s.error().message;
      },
      "", name);
}

}  // namespace

void add_download(CLI::App& app, int& exit_code) {
  struct Options {
    std::string repo;
    std::vector<std::string> files;
    std::string revision = "main";
    std::string output_dir;
    bool copy = false;
    std::string token;
    std::string repo_type = "model";
    std::string cache_dir;
    bool offline = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "download",
      "Download files from the Hugging Face hub ($HF_ENDPOINT, else https://huggingface.co) into the "
      "huggingface_hub cache ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub); prints their paths");
  cmd->add_option("repo", o->repo, "repository id, NAMESPACE/NAME")
      ->required()
      ->check(checked_by(hub::check_repo_id, "REPO"));
  cmd->add_option("files", o->files, "files to fetch (default: every file of the revision)")
      ->check(checked_by(hub::check_repo_file, "FILE"));
  cmd->add_option("--revision", o->revision, "branch, tag or commit")
      ->check(checked_by(hub::check_revision, "REVISION"))
      ->capture_default_str();
  cmd->add_option("-o,--local-dir", o->output_dir,
                  "also place the files in DIR (symlinks to the cache; --copy for copies), as DIR/FILE");
  cmd->add_flag("--copy", o->copy, "with -o: copy the files instead of linking them");
  cmd->add_option("--token", o->token,
                  "access token for private and gated repositories (default: $HF_TOKEN, else "
                  "the token `huggingface-cli login` saved)");
  cmd->add_option("--repo-type", o->repo_type, "model, dataset or space")
      ->check(CLI::IsMember({"model", "dataset", "space"}))
      ->capture_default_str();
  cmd->add_option("--cache-dir", o->cache_dir, "the hub cache directory (default: as above)");
  cmd->add_flag("--offline", o->offline, "use the cache only, as HF_HUB_OFFLINE=1 does");
  cmd->callback([o, &exit_code] {
    exit_code = kExitFailure;
    auto fail = [](std::string_view message) { print_error("download", message); };
    if (o->copy && o->output_dir.empty()) throw_usage_error("--copy", "--copy needs -o DIR");
    auto options = hub::hub_options_from_environment();
    if (!options.ok()) return fail(options.error().message);
    if (!o->token.empty()) options->token = o->token;
    if (!o->cache_dir.empty()) options->cache_dir = o->cache_dir;
    if (o->offline) options->offline = true;
    options->repo_type = *hub::parse_repo_type(o->repo_type);
    hub::ProgressBar bar(stderr);
    if (hub::progress_bar_wanted()) options->progress = [&bar](const hub::DownloadProgress& p) { bar.update(p); };
    hub::HubClient client(std::move(*options));

    std::vector<std::string> files = o->files;
    std::string revision = o->revision;
    if (files.empty()) {
      auto listing = client.list_files(o->repo, o->revision);
      if (!listing.ok()) return fail(listing.error().message);
      if (!listing->note.empty()) fmt::print(stderr, "bitnet download: {}\n", listing->note);
      files = listing->files;
      revision = listing->commit;  // every file from the same commit
    }
    for (const auto& file : files) {
      auto got = client.download(o->repo, file, revision);
      bar.finish();
      if (!got.ok()) return fail(got.error().message);
      if (!got->note.empty()) fmt::print(stderr, "bitnet download: {}\n", got->note);
      std::string path = got->path;
      if (!o->output_dir.empty()) {
        auto placed =
            hub::place_in_dir(got->path, o->output_dir, file, o->copy ? hub::PlaceMode::kCopy : hub::PlaceMode::kLink);
        if (!placed.ok()) return fail(placed.error().message);
        path = *placed;
      }
      fmt::print("{}\n", path);
    }
    flush_stdout();
    exit_code = kExitOk;
  });
}

}  // namespace bitnet::tools

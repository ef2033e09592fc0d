// `bitnet inspect MODEL [--json]`: what a GGUF file holds, as aligned text or as the
// stable JSON document built by frontend_gguf (schema in README.md).
#include "frontend_gguf/gguf_json.h"
#include "tools/commands.h"
#include "tools/option_values.h"

#include <fmt/format.h>

#include <memory>

namespace bitnet::tools {
namespace {

using nlohmann::json;

std::string human_count(uint64_t n) {
  if (n >= 1'000'000'000) return fmt::format("{:.2f} B", n / 1e9);
  if (n >= 1'000'000) return fmt::format("{:.2f} M", n / 1e6);
  if (n >= 1'000) return fmt::format("{:.2f} K", n / 1e3);
  return fmt::format("{}", n);
}

std::string scalar_text(const json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) {
    // f32 metadata reads better in its own shortest form (1e-05, not 9.999999747378752e-06).
    const double d = v.get<double>();
    const auto f = static_cast<float>(d);
    return static_cast<double>(f) == d ? fmt::format("{}", f) : fmt::format("{}", d);
  }
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string shape_text(const json& shape) {
  std::string s;
  for (const auto& d : shape) s += fmt::format("{}{}", s.empty() ? "" : " x ", d.get<uint64_t>());
  return s;
}

void print_text(const json& doc) {
  const json& file = doc["file"];
  fmt::print("file            {}\n", file["path"].get<std::string>());
  fmt::print("size            {} ({} bytes)\n", format_size(file["size"]), file["size"].get<uint64_t>());
  fmt::print("format          GGUF v{}, alignment {}, tensor data at offset {}\n", file["gguf_version"].get<int>(),
             file["alignment"].get<uint64_t>(), file["data_offset"].get<uint64_t>());
  fmt::print("architecture    {}{}\n", doc["architecture"].get<std::string>(),
             doc["name"].is_null() ? "" : fmt::format(" (name \"{}\")", doc["name"].get<std::string>()));
  fmt::print("supported       {}\n", doc["supported"].get<bool>() ? "yes" : "no");
  for (const auto& p : doc["problems"]) fmt::print("  problem       {}\n", p.get<std::string>());

  auto print_object = [](const json& object) {
    size_t width = 0;
    for (const auto& [key, value] : object.items()) width = std::max(width, key.size());
    for (const auto& [key, value] : object.items()) fmt::print("  {:<{}}  {}\n", key, width, scalar_text(value));
  };
  fmt::print("\nhyper-parameters\n");
  print_object(doc["hparams"]);
  fmt::print("\ntokenizer\n");
  if (doc["tokenizer"].is_null()) {
    fmt::print("  (none)\n");
  } else {
    print_object(doc["tokenizer"]);
  }

  fmt::print("\nmetadata ({} keys)\n", doc["metadata"].size());
  size_t key_width = 4;
  for (const auto& kv : doc["metadata"]) key_width = std::max(key_width, kv["key"].get<std::string>().size());
  for (const auto& kv : doc["metadata"]) {
    std::string value = scalar_text(kv["value"]);
    if (value.size() > 100) value = value.substr(0, 97) + "...";
    fmt::print("  {:<{}}  {:<6}  {}\n", kv["key"].get<std::string>(), key_width, kv["type"].get<std::string>(), value);
  }

  const json& tensors = doc["tensors"];
  fmt::print("\ntensors ({})\n", tensors.size());
  size_t name_width = 4, shape_width = 5;
  for (const auto& t : tensors) {
    name_width = std::max(name_width, t["name"].get<std::string>().size());
    shape_width = std::max(shape_width, shape_text(t["shape"]).size());
  }
  fmt::print("  {:<{}}  {:<8}  {:<{}}  {:>14}  {:>14}\n", "name", name_width, "type", "shape", shape_width, "bytes",
             "offset");
  for (const auto& t : tensors) {
    fmt::print("  {:<{}}  {:<8}  {:<{}}  {:>14}  {:>14}\n", t["name"].get<std::string>(), name_width,
               t["type"].get<std::string>(), shape_text(t["shape"]), shape_width, t["bytes"].get<uint64_t>(),
               t["offset"].get<uint64_t>());
  }
  fmt::print("\ntotals by type\n");
  fmt::print("  {:<8}  {:>7}  {:>16}  {:>14}\n", "type", "tensors", "elements", "bytes");
  for (const auto& t : doc["totals_by_type"]) {
    fmt::print("  {:<8}  {:>7}  {:>16}  {:>14}\n", t["type"].get<std::string>(), t["tensors"].get<uint64_t>(),
               t["elements"].get<uint64_t>(), t["bytes"].get<uint64_t>());
  }
  fmt::print("\nparameters      {} ({})\n", human_count(doc["parameter_count"]),
             doc["parameter_count"].get<uint64_t>());
  fmt::print("tensor data     {}\n", format_size(doc["tensor_bytes"]));
}

}  // namespace

void add_inspect(CLI::App& app, int& exit_code) {
  struct Options {
    std::string model;
    bool json = false;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* cmd =
      app.add_subcommand("inspect", "Show a GGUF model's architecture, hyper-parameters, tokenizer and tensors");
  cmd->add_option("MODEL", opts->model, "GGUF file")->required();
  cmd->add_flag("--json", opts->json, "Print the stable JSON document instead of text");
  cmd->callback([opts, &exit_code] {
    auto file = gguf::GgufFile::open(opts->model);
    if (!file.ok()) {
      print_error("inspect", file.error().message);
      exit_code = kExitFailure;
      return;
    }
    const json doc = gguf::inspect_model(*file);
    if (opts->json) {
      fmt::print("{}\n", doc.dump(2, ' ', false, json::error_handler_t::replace));
    } else {
      print_text(doc);
    }
    exit_code = kExitOk;
  });
}

}  // namespace bitnet::tools

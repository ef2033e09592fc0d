// `bitnet dump-plan PLAN`: a readable summary of a plan (provenance, target, model, kernels
// and their sizes, weights, graphs, arena and KV layout, the schedule). Checks the file as
// loading does (runtime/plan_reader.h), so a corrupt plan is reported, not printed.
#include "runtime/plan_cache.h"
#include "runtime/plan_reader.h"
#include "tools/commands.h"
#include "tools/option_values.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <memory>
#include <string_view>

namespace bitnet::tools {
namespace {

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : " ") + s;
  return out.empty() ? "-" : out;
}

std::string split_name(planfb::WorkSplit s) {
  switch (s) {
    case planfb::WorkSplit::Rows:
      return "rows";
    case planfb::WorkSplit::Tokens:
      return "tokens";
    case planfb::WorkSplit::Heads:
      return "heads";
  }
  return "?";
}

std::string binding_text(const planfb::Binding& b, const planfb::GraphPlanT& g) {
  const size_t v = static_cast<size_t>(b.value());
  const std::string name = v < g.values.size() && g.values[v] ? g.values[v]->name : "?";
  switch (b.kind()) {
    case planfb::BindingKind::Arena:
      return fmt::format("%{}@{}", name, b.offset());
    case planfb::BindingKind::Weight:
      return fmt::format("{}", name);
    case planfb::BindingKind::Repacked:
      return fmt::format("{}(sidecar)", name);
  }
  return "?";
}

void print_schedule(const planfb::GraphPlanT& g, const planfb::PlanT& plan) {
  fmt::print("  schedule of '{}' (prefill and decode: T is a run-time argument):\n", g.name);
  for (size_t i = 0; i < g.schedule.size(); ++i) {
    const planfb::CallT& c = *g.schedule[i];
    const size_t k = static_cast<size_t>(c.kernel);
    const auto node = static_cast<size_t>(c.node);
    const std::string op = node < g.nodes.size() && g.nodes[node] ? g.nodes[node]->op : "?";
    std::string inputs;
    for (const auto& b : c.inputs) inputs += (inputs.empty() ? "" : ", ") + binding_text(b, g);
    if (c.kind != planfb::CallKind::Kernel) {
      fmt::print("    {:3} node {:4} {:15} {} ({}) -> {}\n", i, c.node, op,
                 c.kind == planfb::CallKind::LoadTokens ? "load the token ids"
                                                        : fmt::format("copy the last row ({} bytes)", c.row_bytes),
                 inputs, c.output ? binding_text(*c.output, g) : "?");
      continue;
    }
    fmt::print("    {:3} node {:4} {:15} {:11} split {} {} by {}{}  ({}) -> {}\n", i, c.node, op,
               k < plan.kernels.size() ? plan.kernels[k]->symbol : "?", split_name(c.split),
               c.units < 0 ? std::string("T") : std::to_string(c.units), c.granularity,
               c.kv_layer >= 0 ? fmt::format(", kv layer {}", c.kv_layer) : "", inputs,
               c.output ? binding_text(*c.output, g) : "?");
  }
}

}  // namespace

void add_dump_plan(CLI::App& app, int& exit_code) {
  struct Options {
    std::string path;
    std::string schedule = "last";
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("dump-plan", "Print a readable summary of a compiled plan");
  cmd->add_option("plan", o->path, "plan file")->required();
  cmd->add_option("--schedule", o->schedule, "print the kernel calls of the last-token graph, of both, or none")
      ->check(CLI::IsMember({"last", "all", "none"}))
      ->capture_default_str();
  cmd->callback([o, &exit_code] {
    exit_code = kExitFailure;
    auto read = runtime::read_plan(o->path);
    if (!read.ok()) return print_error("dump-plan", read.error().message);
    const planfb::PlanT& p = **read;
    const auto* prov = p.provenance.get();
    const auto* target = p.target.get();
    const auto* model = p.model.get();
    if (!prov || !target || !model || (!p.code && !p.cuda)) {
      return print_error("dump-plan", "the plan lacks a required section");
    }
    const std::time_t created = static_cast<std::time_t>(prov->created_unix_s);
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&created));
    fmt::print("plan {}: format {}, weight layout {}, checksum ok\n", o->path, p.format_version,
               p.weight_layout_version);
    if (p.cuda) {
      fmt::print("provenance: bitnet {}, NVRTC {}, created {}\n", prov->compiler_version, p.cuda->nvrtc_version, when);
    } else {
      fmt::print("provenance: bitnet {} (build {}), LLVM {}, created {}\n", prov->compiler_version,
                 prov->compiler_build_id, prov->llvm_version, when);
    }
    std::string options;
    for (const auto& kv : prov->options)
      options += fmt::format("{}{}={}", options.empty() ? "" : " ", kv->key, kv->value);
    fmt::print("options: {}\n", options);
    if (!prov->cache_key.empty()) fmt::print("cache key: {}, the xxh3-128 of:\n", prov->cache_key);
    for (size_t at = 0; at < prov->key_material.size();) {
      const size_t end = std::min(prov->key_material.find('\n', at), prov->key_material.size());
      fmt::print("  {}\n", std::string_view(prov->key_material).substr(at, end - at));
      at = end + 1;
    }
    fmt::print("target: {} ({}, cpu {})\n  requires: {}\n  not checked: {}\n", target->name, target->triple,
               target->cpu, join(target->required), join(target->unchecked));
    fmt::print("model: {} ({}, '{}'), {} bytes, xxh3-128 {:016x}{:016x}; tokenizer: {}\n", model->path,
               model->architecture, model->name, model->file_size, model->hash ? model->hash->hi() : 0,
               model->hash ? model->hash->lo() : 0, p.tokenizer == "gguf" ? "the model's GGUF metadata" : p.tokenizer);
    uint64_t weight_bytes = 0;
    size_t mapped = p.weights.size();
    for (const auto& w : p.weights) weight_bytes += w->bytes;
    if (p.cuda) {  // a CUDA plan's weights read from the GGUF as stored
      mapped = 0;
      for (const auto& b : p.cuda->buffers) {
        if (b->tensor.empty()) continue;
        ++mapped;
        weight_bytes += static_cast<uint64_t>(b->bytes);
      }
    }
    fmt::print("weights: {} tensors {} the GGUF ({})", mapped, p.cuda ? "read from" : "mapped from",
               format_size(weight_bytes));
    if (p.sidecar) {
      fmt::print("; {} repacked in {} ({})", p.sidecar->weights.size(), p.sidecar->file_name,
                 format_size(p.sidecar->file_size));
    }
    if (p.cuda) {  // a CUDA plan: its decode step instead of CPU code and graphs
      const planfb::CudaCodeT& c = *p.cuda;
      fmt::print("\ncode: CUDA sm_{} (NVRTC {}): CUBIN {}, PTX {}, {} kernels, {} launches per token\n", c.sm,
                 c.nvrtc_version, format_size(c.cubin.size()), format_size(c.ptx.size()), c.kernels.size(),
                 c.launches.size());
      for (const std::string& k : c.kernels) fmt::print("  {}\n", k);
      fmt::print("KV cache: {} layers x {} cells per sequence x {} (f16 K and V)\n", c.kv.size(), c.n_ctx,
                 format_size(static_cast<uint64_t>(2 * 2 * c.n_embd_kv)));
      exit_code = kExitOk;
      return;
    }
    fmt::print("\ncode: ELF shared object, {}, {} kernels\n", format_size(p.code->image.size()), p.kernels.size());
    for (const auto& k : p.kernels) {
      fmt::print("  {:10} {:6} {:8.1f} ms  {}\n", k->symbol, split_name(k->split), k->compile_ms, k->key);
    }
    for (const auto& g : p.graphs) {
      const auto kernel_calls = std::count_if(g->schedule.begin(), g->schedule.end(),
                                              [](const auto& c) { return c && c->kind == planfb::CallKind::Kernel; });
      int64_t kv_bytes_per_cell = 0;
      for (const auto& kv : g->kv) kv_bytes_per_cell += 2 * 2 * int64_t{kv.n_head_kv()} * kv.head_dim();
      fmt::print(
          "graph '{}' ({} logits): {} nodes, {} kernel calls, arena {} for t_max {}, KV cache {} layers x {} "
          "bytes per cell (f16 K and V)\n",
          g->name, g->all_logits ? "all" : "last-token", g->nodes.size(), kernel_calls,
          format_size(static_cast<uint64_t>(g->arena_bytes)), g->t_max, g->kv.size(),
          g->kv.empty() ? 0 : kv_bytes_per_cell / static_cast<int64_t>(g->kv.size()));
    }
    for (size_t i = 0; i < p.graphs.size(); ++i) {
      if (o->schedule == "all" || (o->schedule == "last" && i == 0)) print_schedule(*p.graphs[i], p);
    }
    exit_code = kExitOk;
  });
}

}  // namespace bitnet::tools

// Graph encoding and the deep re-derivation check (see plan_encode.h).
#include "compiler/plan_encode.h"

#include "passes/memory_plan.h"
#include "passes/schedule.h"
#include "runtime/plan_graph.h"

#include <set>

namespace bitnet::compiler {
namespace {

std::unique_ptr<planfb::ValueT> encode_value(const ir::Value& v) {
  auto out = std::make_unique<planfb::ValueT>();
  out->name = v.name;
  out->dtype = std::string(ir::dtype_name(v.type.dtype));
  for (const ir::Dim& d : v.type.shape) out->shape.push_back(d.size);
  return out;
}

std::unique_ptr<planfb::AttrT> encode_attr(const ir::Attr& a) {
  auto out = std::make_unique<planfb::AttrT>();
  out->name = a.name;
  if (const auto* i = std::get_if<int64_t>(&a.value)) {
    out->kind = planfb::AttrKind::Int;
    out->int_value = *i;
  } else if (const auto* f = std::get_if<double>(&a.value)) {
    out->kind = planfb::AttrKind::Float;
    out->float_value = *f;
  } else {
    out->kind = planfb::AttrKind::String;
    out->string_value = std::get<std::string>(a.value);
  }
  return out;
}

// The first part of two encodings that differs, for the refusal message.
std::string first_difference(const planfb::GraphPlanT& a, const planfb::GraphPlanT& b) {
  auto same = [](const auto& x, const auto& y) {
    return x.size() == y.size() && std::equal(x.begin(), x.end(), y.begin(), [](const auto& p, const auto& q) {
             return (p == q) || (p && q && *p == *q);
           });
  };
  if (a.name != b.name || a.all_logits != b.all_logits || !same(a.properties, b.properties)) return "header";
  if (!same(a.values, b.values)) return "values";
  if (!same(a.nodes, b.nodes)) return "nodes";
  if (a.t_max != b.t_max || a.arena_bytes != b.arena_bytes || a.slots != b.slots ||
      a.kernel_scratch_bytes != b.kernel_scratch_bytes) {
    return "memory plan";
  }
  if (!same(a.schedule, b.schedule)) return "schedule";
  if (!same(a.outputs, b.outputs)) return "outputs";
  return "KV-cache layout";
}

}  // namespace

int64_t split_granularity(const ir::Node& node, abi::WorkSplit split) {
  switch (split) {
    case abi::WorkSplit::kHeads:
      return node.attr_int("n_head") / node.attr_int("n_head_kv");
    case abi::WorkSplit::kRows:
      return abi::kRowSplitGranularity;
    case abi::WorkSplit::kTokens:
      break;
  }
  return 1;
}

Expected<std::unique_ptr<planfb::GraphPlanT>> encode_graph(const ir::Graph& graph, bool all_logits,
                                                           const std::vector<int32_t>& kernel_of_node, int64_t t_max,
                                                           const WeightIndex& weights) {
  if (kernel_of_node.size() != graph.nodes().size()) return make_error("one kernel index per node expected");
  auto out = std::make_unique<planfb::GraphPlanT>();
  out->name = graph.name();
  out->all_logits = all_logits;
  for (const auto& [key, value] : graph.properties()) {
    auto kv = std::make_unique<planfb::KeyValueT>();
    kv->key = key;
    kv->value = value;
    out->properties.push_back(std::move(kv));
  }
  for (const ir::Value& v : graph.values()) out->values.push_back(encode_value(v));
  for (size_t i = 0; i < graph.nodes().size(); ++i) {
    const ir::Node& n = graph.nodes()[i];
    auto node = std::make_unique<planfb::NodeT>();
    node->op = std::string(ir::op_name(n.op));
    node->operands = n.operands;
    for (const ir::Attr& a : n.attrs) node->attrs.push_back(encode_attr(a));
    node->result = n.result;
    node->kernel = kernel_of_node[i];
    out->nodes.push_back(std::move(node));
  }

  BITNET_ASSIGN_OR_RETURN(passes::MemoryPlan memory, passes::plan_memory(graph, t_max));
  out->t_max = memory.t_max;
  out->arena_bytes = memory.arena_bytes;
  for (const passes::Slot& s : memory.slots) out->slots.emplace_back(s.offset, s.bytes, s.alias);

  auto binding = [&](ir::ValueId v) -> Expected<planfb::Binding> {
    const ir::Node& def = graph.def(v);
    if (def.op == ir::OpKind::Weight) {
      auto it = weights.find(def.attr_string("tensor"));
      if (it == weights.end()) return make_error("weight '{}' has no binding", def.attr_string("tensor"));
      return planfb::Binding(it->second.kind, v, it->second.index, 0);
    }
    return planfb::Binding(planfb::BindingKind::Arena, v, -1, memory.slots[static_cast<size_t>(v)].offset);
  };
  std::set<int64_t> kv_layers;
  for (size_t i = 0; i < graph.nodes().size(); ++i) {
    const ir::Node& n = graph.nodes()[i];
    const ir::Type& type = graph.value(n.result).type;
    if (n.op == ir::OpKind::InputTokens || n.op == ir::OpKind::SelectRows) {
      auto call = std::make_unique<planfb::CallT>();
      call->node = static_cast<int32_t>(i);
      call->kernel = -1;
      call->units = 0;
      call->granularity = 1;
      if (n.op == ir::OpKind::SelectRows) {
        call->kind = planfb::CallKind::SelectRows;
        call->row_bytes = ir::activation_bytes(type, 1);
        BITNET_ASSIGN_OR_RETURN(planfb::Binding from, binding(n.operands[0]));
        call->inputs.push_back(from);
      } else {
        call->kind = planfb::CallKind::LoadTokens;
      }
      BITNET_ASSIGN_OR_RETURN(planfb::Binding to, binding(n.result));
      call->output = std::make_unique<planfb::Binding>(to);
      out->schedule.push_back(std::move(call));
      continue;
    }
    if (n.op == ir::OpKind::Output) {
      auto o = std::make_unique<planfb::GraphOutputT>();
      o->name = n.attr_string("name");
      BITNET_ASSIGN_OR_RETURN(planfb::Binding value, binding(n.operands[0]));
      o->value = std::make_unique<planfb::Binding>(value);
      o->token_rows = type.shape[0].is_tokens();
      o->cols = type.shape[1].size;
      out->outputs.push_back(std::move(o));
      continue;
    }
    const auto work = passes::work_of(graph, n);
    if (!work) continue;
    auto call = std::make_unique<planfb::CallT>();
    call->node = static_cast<int32_t>(i);
    call->kernel = kernel_of_node[i];
    call->split = static_cast<planfb::WorkSplit>(work->split);
    call->units = work->units.is_symbolic() ? -1 : work->units.size;
    call->granularity = split_granularity(n, work->split);
    call->token_rows = type.shape[0].is_tokens();
    call->per_sequence = ir::runs_per_sequence(graph, n);
    call->decode_rows = call->per_sequence && ir::op_info(n.op).rows == ir::OpRows::kArithmetic;
    if (call->decode_rows && graph.value(n.operands[1]).type.dtype == ir::DType::F16) {
      // The F16 kernels round their decode rows into scratch (codegen_cpu/emit_matmul_float.cpp).
      out->kernel_scratch_bytes =
          std::max(out->kernel_scratch_bytes, ir::activation_bytes(graph.value(n.operands[0]).type, memory.t_max));
    }
    for (ir::ValueId v : n.operands) {
      BITNET_ASSIGN_OR_RETURN(planfb::Binding b, binding(v));
      call->inputs.push_back(b);
    }
    if (call->per_sequence) {
      // Each sequence's rows: operands and result are offset by whole rows.
      for (ir::ValueId v : n.operands) {
        const ir::Type& t = graph.value(v).type;
        const bool rows = graph.def(v).op != ir::OpKind::Weight && t.rank() == 2 && t.shape[0].is_symbolic();
        if (rows && t.dtype == ir::DType::I8Q) {
          return make_error("node {} ({}) runs per sequence on quantized activations, whose layout has no row offset",
                            i, ir::op_name(n.op));
        }
        call->input_row_bytes.push_back(rows ? ir::activation_bytes(t, 1) : 0);
      }
      call->row_bytes = ir::activation_bytes(type, 1);
    }
    BITNET_ASSIGN_OR_RETURN(planfb::Binding result, binding(n.result));
    call->output = std::make_unique<planfb::Binding>(result);
    if (work->split == abi::WorkSplit::kHeads) {
      call->kv_layer = static_cast<int32_t>(n.attr_int("layer"));
      if (kv_layers.insert(n.attr_int("layer")).second) {
        const auto rope = ir::key_rope(graph, n);
        out->kv.emplace_back(call->kv_layer, static_cast<int32_t>(n.attr_int("n_head_kv")),
                             static_cast<int32_t>(n.attr_int("head_dim")), rope.has_value(), rope && rope->neox,
                             rope ? rope->freq_base : 0.0f, rope ? rope->freq_scale : 0.0f);
      }
    }
    out->schedule.push_back(std::move(call));
  }
  return out;
}

Status check_rederived(const planfb::GraphPlanT& stored, const WeightIndex& weights,
                       const std::vector<abi::WorkSplit>& kernel_splits) {
  BITNET_ASSIGN_OR_RETURN(runtime::DecodedGraph decoded, runtime::decode_graph(stored, kernel_splits));
  BITNET_ASSIGN_OR_RETURN(
      auto fresh, encode_graph(decoded.graph, stored.all_logits, decoded.kernel_of_node, stored.t_max, weights));
  if (!(*fresh == stored)) {
    return make_error("graph '{}': the plan's {} differs from what this compiler derives from its graph", stored.name,
                      first_difference(*fresh, stored));
  }
  return Status::success();
}

}  // namespace bitnet::compiler

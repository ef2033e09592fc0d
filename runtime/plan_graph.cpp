// Graph encoding and checked decoding (see plan_graph.h).
#include "runtime/plan_graph.h"

#include "ir/verifier.h"
#include "passes/memory_plan.h"
#include "passes/schedule.h"
#include "runtime/executor.h"

#include <optional>
#include <set>

namespace bitnet::runtime {
namespace {

std::optional<ir::OpKind> op_from_name(std::string_view name) {
#define BITNET_OP_FROM_NAME(id, op_name, min_ops, max_ops) \
  if (name == op_name) return ir::OpKind::id;
  BITNET_IR_OPS(BITNET_OP_FROM_NAME)
#undef BITNET_OP_FROM_NAME
  return std::nullopt;
}

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

Expected<ir::Type> decode_type(const planfb::ValueT& v) {
  auto dtype = ir::dtype_from_name(v.dtype);
  if (!dtype) return make_error("value '{}' has unknown dtype '{}'", v.name, v.dtype);
  ir::Type t{*dtype, {}};
  for (int64_t d : v.shape) {
    if (d < ir::Dim::kTokens) return make_error("value '{}' has a negative dim {}", v.name, d);
    t.shape.push_back(ir::Dim{d});
  }
  return t;
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
  if (a.t_max != b.t_max || a.arena_bytes != b.arena_bytes || a.slots != b.slots) return "memory plan";
  if (!same(a.schedule, b.schedule)) return "schedule";
  return "KV-cache layout";
}

}  // namespace

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
    const auto work = passes::work_of(graph, n);
    if (!work) continue;
    auto call = std::make_unique<planfb::CallT>();
    call->node = static_cast<int32_t>(i);
    call->kernel = kernel_of_node[i];
    call->split = static_cast<planfb::WorkSplit>(work->split);
    call->units = work->units.size;
    call->granularity = split_granularity(graph, n);
    for (ir::ValueId v : n.operands) {
      BITNET_ASSIGN_OR_RETURN(planfb::Binding b, binding(v));
      call->inputs.push_back(b);
    }
    BITNET_ASSIGN_OR_RETURN(planfb::Binding result, binding(n.result));
    call->output = std::make_unique<planfb::Binding>(result);
    if (n.op == ir::OpKind::Attention || n.op == ir::OpKind::RopeAttention) {
      call->kv_layer = static_cast<int32_t>(n.attr_int("layer"));
      if (kv_layers.insert(n.attr_int("layer")).second) {
        out->kv.emplace_back(call->kv_layer, static_cast<int32_t>(n.attr_int("n_head_kv")),
                             static_cast<int32_t>(n.attr_int("head_dim")));
      }
    }
    out->schedule.push_back(std::move(call));
  }
  return out;
}

Expected<DecodedGraph> decode_graph(const planfb::GraphPlanT& stored, const WeightIndex& weights,
                                    const std::vector<planfb::WorkSplit>& kernel_splits) {
  // Bounded before the memory planner multiplies sizes by it.
  if (stored.t_max <= 0 || stored.t_max > 65536)
    return make_error("graph '{}': bad t_max {}", stored.name, stored.t_max);
  DecodedGraph out;
  out.graph.set_name(stored.name);
  for (const auto& p : stored.properties) {
    if (p) out.graph.properties().emplace_back(p->key, p->value);
  }
  if (stored.values.size() != stored.nodes.size()) {
    return make_error("graph '{}': {} values for {} nodes", stored.name, stored.values.size(), stored.nodes.size());
  }
  for (size_t i = 0; i < stored.nodes.size(); ++i) {
    const planfb::NodeT* node = stored.nodes[i].get();
    const planfb::ValueT* value = stored.values[i].get();
    if (!node || !value) return make_error("graph '{}': node #{} is empty", stored.name, i);
    auto op = op_from_name(node->op);
    if (!op) return make_error("graph '{}': node #{} has unknown op '{}'", stored.name, i, node->op);
    if (node->result != static_cast<int32_t>(i))
      return make_error("graph '{}': node #{} defines value {}", stored.name, i, node->result);
    std::vector<ir::Attr> attrs;
    for (const auto& a : node->attrs) {
      if (!a) return make_error("graph '{}': node #{} has an empty attribute", stored.name, i);
      switch (a->kind) {
        case planfb::AttrKind::Int:
          attrs.push_back({a->name, a->int_value});
          break;
        case planfb::AttrKind::Float:
          attrs.push_back({a->name, a->float_value});
          break;
        case planfb::AttrKind::String:
          attrs.push_back({a->name, a->string_value});
          break;
        default:
          return make_error("graph '{}': node #{} attribute '{}' has a bad kind", stored.name, i, a->name);
      }
    }
    BITNET_ASSIGN_OR_RETURN(ir::Type type, decode_type(*value));
    auto added = out.graph.add(*op, node->operands, std::move(attrs), value->name, type);
    if (!added.ok())
      return make_error("graph '{}': node #{} ({}): {}", stored.name, i, node->op, added.error().message);
    const ir::Value& v = out.graph.value(*added);
    if (v.type != type || v.name != value->name) {
      return make_error("graph '{}': node #{} ({}) should be {} '{}' but is {} '{}'", stored.name, i, node->op,
                        ir::to_string(type), value->name, ir::to_string(v.type), v.name);
    }
    const bool has_work = passes::work_of(out.graph, out.graph.nodes().back()).has_value();
    const int32_t k = node->kernel;
    if (has_work != (k >= 0) || k >= static_cast<int32_t>(kernel_splits.size()) ||
        (has_work && kernel_splits[static_cast<size_t>(k)] !=
                         static_cast<planfb::WorkSplit>(*passes::split_of(out.graph.nodes().back())))) {
      return make_error("graph '{}': node #{} ({}) has a bad kernel index {}", stored.name, i, node->op, k);
    }
    out.kernel_of_node.push_back(k);
  }
  BITNET_RETURN_IF_ERROR(ir::verify(out.graph));
  BITNET_ASSIGN_OR_RETURN(auto fresh,
                          encode_graph(out.graph, stored.all_logits, out.kernel_of_node, stored.t_max, weights));
  if (!(*fresh == stored)) {
    return make_error(
        "graph '{}': the plan's {} differs from what this runtime derives from its graph; recompile the plan",
        stored.name, first_difference(*fresh, stored));
  }
  return out;
}

}  // namespace bitnet::runtime

// Bounds checks of a plan's graph (see plan_check.h).
#include "runtime/plan_check.h"

#include "ir/type.h"

#include <optional>
#include <set>
#include <string_view>

namespace bitnet::runtime {
namespace {

constexpr int64_t kMaxDim = int64_t{1} << 32;

// The stored type of value `v`, with every dim and the byte count it implies bounded.
struct ValueFacts {
  ir::Type type;
  bool weight_dtype = false;  // a quantized weight type (no arena layout)
};

Expected<ValueFacts> facts_of(const planfb::GraphPlanT& g, int32_t v) {
  if (v < 0 || static_cast<size_t>(v) >= g.values.size() || !g.values[static_cast<size_t>(v)]) {
    return make_error("value {} does not exist", v);
  }
  const planfb::ValueT& stored = *g.values[static_cast<size_t>(v)];
  auto dtype = ir::dtype_from_name(stored.dtype);
  if (!dtype) return make_error("value {} has unknown dtype '{}'", v, stored.dtype);
  ValueFacts f;
  f.type.dtype = *dtype;
  f.weight_dtype = ir::dtype_info(*dtype).kind == ir::DTypeKind::kQuantizedWeight;
  __int128 elems = 1;
  for (int64_t d : stored.shape) {
    if (d < ir::Dim::kSelected || d > kMaxDim) return make_error("value {} has a bad dim {}", v, d);
    elems *= d < 0 ? kMaxPlanTMax : d;
    if (elems > kMaxArenaBytes) return make_error("value {} is too large", v);
    f.type.shape.push_back(ir::Dim{d});
  }
  return f;
}

// Bytes the value needs: in the arena for t_max tokens, or in a weight buffer.
int64_t needed_bytes(const ValueFacts& f, int64_t t_max) {
  if (!f.weight_dtype) return ir::activation_bytes(f.type, t_max);
  const ir::DTypeInfo& info = ir::dtype_info(f.type.dtype);
  int64_t elems = 1;
  for (const ir::Dim& d : f.type.shape) elems *= d.size;
  return elems / info.block_size * info.block_bytes;
}

struct Checker {
  const planfb::GraphPlanT& g;
  const PlanBindings& bindings;

  // The slot a value's arena binding must use (its own, or the one it aliases).
  Expected<const planfb::Slot*> slot_of(int32_t v) const {
    const planfb::Slot* s = &g.slots[static_cast<size_t>(v)];
    if (s->alias() >= 0) s = &g.slots[static_cast<size_t>(s->alias())];
    if (s->offset() < 0) return make_error("value {} has no arena slot", v);
    return s;
  }

  // `need` bytes through binding `b` (the write target when `output`).
  Status binding(const planfb::Binding& b, int64_t need, bool output) const {
    if (b.value() < 0 || static_cast<size_t>(b.value()) >= g.slots.size()) {
      return make_error("value {} does not exist", b.value());
    }
    switch (b.kind()) {
      case planfb::BindingKind::Arena: {
        BITNET_ASSIGN_OR_RETURN(const planfb::Slot* s, slot_of(b.value()));
        if (b.offset() != s->offset()) {
          return make_error("value {} is bound at arena offset {} but its slot is at {}", b.value(), b.offset(),
                            s->offset());
        }
        if (need > s->bytes()) {
          return make_error("value {} needs {} bytes but its slot has {}", b.value(), need, s->bytes());
        }
        return Status::success();
      }
      case planfb::BindingKind::Weight:
      case planfb::BindingKind::Repacked: {
        if (output) return make_error("value {} is written to a weight", b.value());
        const bool repacked = b.kind() == planfb::BindingKind::Repacked;
        const auto& list = repacked ? bindings.repacked : bindings.weights;
        if (b.index() < 0 || static_cast<size_t>(b.index()) >= list.size()) {
          return make_error("value {} is bound to {} weight #{}, which does not exist", b.value(),
                            repacked ? "repacked" : "model", b.index());
        }
        const size_t have = list[static_cast<size_t>(b.index())].size();
        if (need < 0 || static_cast<uint64_t>(need) > have) {
          return make_error("value {} needs {} bytes of weight #{}, which has {}", b.value(), need, b.index(), have);
        }
        return Status::success();
      }
    }
    return make_error("value {} has a bad binding kind", b.value());
  }

  Status value_binding(const planfb::Binding& b, bool output) const {
    BITNET_ASSIGN_OR_RETURN(ValueFacts f, facts_of(g, b.value()));
    if (f.weight_dtype && b.kind() == planfb::BindingKind::Arena) {
      return make_error("value {} ({}) is a weight but is bound to the arena", b.value(), ir::to_string(f.type));
    }
    return binding(b, needed_bytes(f, g.t_max), output);
  }

  // An integer attribute of the call's node (0 when absent).
  int64_t node_attr(const planfb::CallT& c, std::string_view name) const {
    const auto& node = g.nodes[static_cast<size_t>(c.node)];
    if (!node) return 0;
    for (const auto& a : node->attrs) {
      if (a && a->name == name && a->kind == planfb::AttrKind::Int) return a->int_value;
    }
    return 0;
  }

  // The work a kernel is given must be the work its node's result has room for: rows split over
  // the result's columns, heads over the node's heads, and an attention's KV layer as wide as
  // the node's KV heads (the kernel writes that many).
  Status units_and_kv_match_node(const planfb::CallT& c) const {
    BITNET_ASSIGN_OR_RETURN(ValueFacts out, facts_of(g, c.output->value()));
    const auto split = static_cast<abi::WorkSplit>(c.split);
    const auto& shape = out.type.shape;
    if (shape.size() != 2) return make_error("writes a value of rank {}", shape.size());
    const int64_t expected = split == abi::WorkSplit::kRows    ? shape[1].size
                             : split == abi::WorkSplit::kHeads ? node_attr(c, "n_head")
                             : shape[0].size < 0               ? -1
                                                               : shape[0].size;
    if (c.units != expected)
      return make_error("has {} work units for a result of {}", c.units, ir::to_string(out.type));
    if (split == abi::WorkSplit::kHeads) {
      for (const planfb::KvLayer& kv : g.kv) {
        if (kv.layer() == c.kv_layer &&
            (kv.n_head_kv() != node_attr(c, "n_head_kv") || kv.head_dim() != node_attr(c, "head_dim"))) {
          return make_error("uses KV layer {} of {} heads of {}, unlike its node", c.kv_layer, kv.n_head_kv(),
                            kv.head_dim());
        }
      }
    }
    return Status::success();
  }

  // A per-sequence call offsets each token-row operand by whole rows: the row sizes must be
  // those of the values' types (so offsets stay inside their slots).
  Status row_offsets(const planfb::CallT& c) const {
    if (!c.per_sequence) {
      if (!c.input_row_bytes.empty() || c.decode_rows) {
        return make_error("has row offsets or decode rows but does not run per sequence");
      }
      return Status::success();
    }
    if (c.input_row_bytes.size() != c.inputs.size())
      return make_error("has {} row offsets for {} inputs", c.input_row_bytes.size(), c.inputs.size());
    auto row_bytes_of = [&](int32_t value) -> Expected<int64_t> {
      BITNET_ASSIGN_OR_RETURN(ValueFacts f, facts_of(g, value));
      if (f.weight_dtype || f.type.shape.empty() || !f.type.shape[0].is_symbolic() || f.type.dtype == ir::DType::I8Q) {
        return int64_t{0};
      }
      return ir::activation_bytes(f.type, 1);
    };
    for (size_t k = 0; k < c.inputs.size(); ++k) {
      BITNET_ASSIGN_OR_RETURN(int64_t want, row_bytes_of(c.inputs[k].value()));
      if (c.input_row_bytes[k] != want) {
        return make_error("offsets input {} by {} bytes per row, not {}", k, c.input_row_bytes[k], want);
      }
    }
    BITNET_ASSIGN_OR_RETURN(int64_t want, row_bytes_of(c.output->value()));
    if (want == 0 || c.row_bytes != want) return make_error("offsets its output by {} bytes per row", c.row_bytes);
    return Status::success();
  }

  Status call(const planfb::CallT& c, const std::set<int32_t>& kv_layers) const {
    if (c.node < 0 || static_cast<size_t>(c.node) >= g.nodes.size()) return make_error("names node {}", c.node);
    if (!c.output) return make_error("has no output");
    if (c.output->kind() != planfb::BindingKind::Arena) return make_error("writes outside the arena");
    switch (c.kind) {
      case planfb::CallKind::Kernel: {
        if (c.kernel < 0 || static_cast<size_t>(c.kernel) >= bindings.kernel_splits.size()) {
          return make_error("has a bad kernel index {}", c.kernel);
        }
        const auto split = static_cast<abi::WorkSplit>(c.split);
        if (split != abi::WorkSplit::kRows && split != abi::WorkSplit::kTokens && split != abi::WorkSplit::kHeads) {
          return make_error("has a bad work split {}", static_cast<int>(c.split));
        }
        if (split != bindings.kernel_splits[static_cast<size_t>(c.kernel)]) {
          return make_error("splits its work unlike its kernel #{}", c.kernel);
        }
        // T units only for token splits (a token split after the last row was taken has 1).
        if ((c.units == -1 && split != abi::WorkSplit::kTokens) || c.units < -1 || c.units == 0 || c.units > kMaxDim) {
          return make_error("has {} work units for a {}-split kernel", c.units, static_cast<int>(c.split));
        }
        if (c.granularity < 1 || c.granularity > kMaxDim) return make_error("has granularity {}", c.granularity);
        if (c.inputs.size() > static_cast<size_t>(abi::kMaxKernelInputs)) return make_error("has too many inputs");
        for (const planfb::Binding& b : c.inputs) BITNET_RETURN_IF_ERROR(value_binding(b, false));
        BITNET_RETURN_IF_ERROR(value_binding(*c.output, true));
        const bool attention = split == abi::WorkSplit::kHeads;
        if (attention != (c.kv_layer >= 0) || (attention && !kv_layers.count(c.kv_layer))) {
          return make_error("names KV layer {}", c.kv_layer);
        }
        if (attention && !c.per_sequence) return make_error("reads the KV cache but does not run per sequence");
        BITNET_RETURN_IF_ERROR(row_offsets(c));
        return units_and_kv_match_node(c);
      }
      case planfb::CallKind::LoadTokens:
        if (c.kernel != -1 || !c.inputs.empty() || c.kv_layer != -1) return make_error("is not a plain token load");
        return binding(*c.output, 4 * g.t_max, true);
      case planfb::CallKind::SelectRows:
        if (c.kernel != -1 || c.inputs.size() != 1 || c.kv_layer != -1 ||
            c.inputs[0].kind() != planfb::BindingKind::Arena) {
          return make_error("is not a plain row copy");
        }
        if (c.row_bytes <= 0 || c.row_bytes > kMaxArenaBytes / g.t_max)
          return make_error("copies rows of {} bytes", c.row_bytes);
        BITNET_RETURN_IF_ERROR(binding(c.inputs[0], c.row_bytes * g.t_max, false));
        return binding(*c.output, c.row_bytes * std::min(g.t_max, abi::kMaxOutputRows), true);
    }
    return make_error("has an unknown kind {}", static_cast<int>(c.kind));
  }
};

}  // namespace

Status check_graph_plan(const planfb::GraphPlanT& g, const PlanBindings& bindings) {
  auto fail = [&](const std::string& what) { return make_error("graph '{}': {}", g.name, what); };
  if (g.t_max <= 0 || g.t_max > kMaxPlanTMax) return fail(fmt::format("bad t_max {}", g.t_max));
  if (g.arena_bytes < 0 || g.arena_bytes > kMaxArenaBytes) return fail(fmt::format("bad arena size {}", g.arena_bytes));
  if (g.kernel_scratch_bytes < 0 || g.kernel_scratch_bytes > kMaxArenaBytes) {
    return fail(fmt::format("bad kernel scratch size {}", g.kernel_scratch_bytes));
  }
  if (g.slots.size() != g.values.size()) {
    return fail(fmt::format("{} slots for {} values", g.slots.size(), g.values.size()));
  }
  for (size_t v = 0; v < g.slots.size(); ++v) {
    const planfb::Slot& s = g.slots[v];
    if (s.alias() != -1) {
      if (s.alias() < 0 || static_cast<size_t>(s.alias()) >= g.slots.size() ||
          g.slots[static_cast<size_t>(s.alias())].alias() != -1) {
        return fail(fmt::format("value {} aliases a bad slot {}", v, s.alias()));
      }
      continue;
    }
    if (s.offset() < 0) continue;  // a weight
    if (s.offset() % abi::kArenaAlignment != 0 || s.bytes() < 0 || s.offset() > g.arena_bytes ||
        s.bytes() > g.arena_bytes - s.offset()) {
      return fail(fmt::format("the slot of value {} ({} bytes at {}) lies outside the {}-byte arena", v, s.bytes(),
                              s.offset(), g.arena_bytes));
    }
  }
  std::set<int32_t> kv_layers;
  for (const planfb::KvLayer& kv : g.kv) {
    if (kv.n_head_kv() < 1 || kv.n_head_kv() > 4096 || kv.head_dim() < 1 || kv.head_dim() > 4096 ||
        !kv_layers.insert(kv.layer()).second) {
      return fail(fmt::format("bad KV layer {} ({} heads of {})", kv.layer(), kv.n_head_kv(), kv.head_dim()));
    }
  }
  const Checker checker{g, bindings};
  for (size_t i = 0; i < g.schedule.size(); ++i) {
    if (!g.schedule[i]) return fail(fmt::format("call #{} is empty", i));
    if (auto s = checker.call(*g.schedule[i], kv_layers); !s.ok()) {
      return fail(fmt::format("call #{} {}", i, s.error().message));
    }
  }
  for (const auto& out : g.outputs) {
    if (!out || !out->value || out->value->kind() != planfb::BindingKind::Arena || out->cols < 1 ||
        out->cols > kMaxDim) {
      return fail("an output is malformed");
    }
    const int64_t rows = out->token_rows ? g.t_max : 1;
    if (auto s = checker.binding(*out->value, rows * out->cols * 4, false); !s.ok()) {
      return fail(fmt::format("output '{}': {}", out->name, s.error().message));
    }
  }
  return Status::success();
}

}  // namespace bitnet::runtime

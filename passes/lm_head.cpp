// LM-head retargeting (see lm_head.h).
#include "passes/lm_head.h"

#include "ir/printer.h"

namespace bitnet::passes {
namespace {

// The index of the LM-head matmul node, or an error naming what the graph has instead.
Expected<size_t> lm_head_node(const ir::Graph& graph) {
  for (const ir::Node* out : graph.outputs()) {
    if (out->attr_string("name") != "logits") continue;
    const ir::Value& v = graph.value(out->operands[0]);
    const ir::Node& mm = graph.nodes()[static_cast<size_t>(v.def)];
    if (mm.op != ir::OpKind::MatMul || graph.def(mm.operands[1]).op != ir::OpKind::Weight) {
      return make_error("the logits are not a matmul by a weight (`{}`)", ir::print_node(graph, mm));
    }
    return static_cast<size_t>(v.def);
  }
  return make_error("the graph has no `logits` output");
}

}  // namespace

std::string lm_head_tensor_name(const std::string& source, ir::DType dtype) {
  return source + "@" + std::string(ir::dtype_name(dtype));
}

Expected<LmHead> find_lm_head(const ir::Graph& graph) {
  BITNET_ASSIGN_OR_RETURN(size_t index, lm_head_node(graph));
  const ir::ValueId w = graph.nodes()[index].operands[1];
  LmHead head;
  head.tensor = graph.def(w).attr_string("tensor");
  head.source = head.tensor.substr(0, head.tensor.find('@'));
  head.type = graph.value(w).type;
  return head;
}

Expected<LmHead> retarget_lm_head(ir::Graph& graph, ir::DType dtype) {
  if (dtype != ir::DType::F16 && dtype != ir::DType::Q8_0 && dtype != ir::DType::Q6_K) {
    return make_error("the LM head can be requantized to q8_0 or q6_k, not {}", ir::dtype_name(dtype));
  }
  BITNET_ASSIGN_OR_RETURN(LmHead head, find_lm_head(graph));
  if (head.retargeted()) return make_error("the LM head already reads {}", head.tensor);
  // Only F16 heads: F32 ones (small llama models) are not worth it, and requantizing an
  // already quantized head would only lose more precision.
  if (dtype == ir::DType::F16 || head.type.dtype != ir::DType::F16) return head;
  const int64_t cols = head.type.shape.back().size;
  const uint32_t block = ir::dtype_info(dtype).block_size;
  if (cols % block != 0) {
    return make_error("the LM head has {} columns, not a multiple of {}'s {}-weight blocks", cols,
                      ir::dtype_name(dtype), block);
  }

  // Rebuilt node by node (Graph::add only appends): the new weight goes just before the
  // matmul, as lowering places every weight just before its first reader.
  BITNET_ASSIGN_OR_RETURN(const size_t at, lm_head_node(graph));
  ir::Graph out(graph.name());
  out.properties() = graph.properties();
  // The choice travels with the graph (and a plan's copy of it): readers need not rediscover it.
  out.properties().emplace_back(std::string(ir::kLmHeadProperty), std::string(ir::dtype_name(dtype)));
  std::vector<ir::ValueId> remap(graph.values().size(), -1);
  const std::string tensor = lm_head_tensor_name(head.source, dtype);
  const ir::Type type = ir::Type::of(dtype, head.type.shape);
  for (size_t i = 0; i < graph.nodes().size(); ++i) {
    const ir::Node& n = graph.nodes()[i];
    std::vector<ir::ValueId> operands;
    for (ir::ValueId v : n.operands) operands.push_back(remap[static_cast<size_t>(v)]);
    if (i == at) {
      BITNET_ASSIGN_OR_RETURN(operands[1], out.add(ir::OpKind::Weight, {}, {{"tensor", tensor}}, "", type));
    }
    const ir::Value& result = graph.value(n.result);
    BITNET_ASSIGN_OR_RETURN(remap[static_cast<size_t>(n.result)],
                            out.add(n.op, std::move(operands), n.attrs, result.name, result.type));
  }
  graph = std::move(out);
  return LmHead{head.source, tensor, type};
}

}  // namespace bitnet::passes

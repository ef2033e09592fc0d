// Bytes a decode step reads (see decode_bytes.h).
#include "runtime/decode_bytes.h"

namespace bitnet::runtime {

int64_t decode_bytes_per_token(const Model& model) {
  const ir::Graph& g = model.graph(false);
  int64_t bytes = 0;
  for (const ir::Node& node : g.nodes()) {
    if (node.op == ir::OpKind::Weight || node.op == ir::OpKind::InputTokens || node.op == ir::OpKind::Output) continue;
    for (size_t k = 0; k < node.operands.size(); ++k) {
      const ir::Node& def = g.def(node.operands[k]);
      if (def.op != ir::OpKind::Weight) continue;
      const gguf::TensorInfo* t = model.file().find_tensor(def.attr_string("tensor"));
      if (t == nullptr) {
        // Not in the file (a requantized LM head): whole blocks of its IR type.
        const ir::Type& type = g.value(node.operands[k]).type;
        const ir::DTypeInfo& info = ir::dtype_info(type.dtype);
        int64_t n = 1;
        for (const ir::Dim& d : type.shape) n *= d.size;
        bytes += n / info.block_size * info.block_bytes;
        continue;
      }
      if (node.op == ir::OpKind::Embed) {
        bytes += static_cast<int64_t>(t->nbytes / t->ne.back());  // one row per token
      } else {
        bytes += static_cast<int64_t>(t->nbytes);
      }
    }
  }
  return bytes;
}

}  // namespace bitnet::runtime

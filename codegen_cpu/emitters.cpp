// Op -> emitter table (see emitters.h).
#include "codegen_cpu/emitters.h"

#include <map>

namespace bitnet::codegen {

const Emitter* find_emitter(ir::OpKind op) {
  using ir::OpKind;
  static const std::map<OpKind, Emitter> table = {
      {OpKind::Mul, emit_elementwise},
      {OpKind::Add, emit_elementwise},
      {OpKind::Silu, emit_elementwise},
      {OpKind::Relu2, emit_elementwise},
      {OpKind::Gelu, emit_elementwise},
      {OpKind::MatMul, emit_matmul_family},
      {OpKind::MatMulCat, emit_matmul_family},
      {OpKind::MatMulAdd, emit_matmul_family},
      {OpKind::GatedFfn, emit_matmul_family},
      {OpKind::Embed, emit_embed},
      {OpKind::RmsNorm, emit_norm},
      {OpKind::Norm, emit_norm},
      {OpKind::NormQuantize, emit_norm},
      {OpKind::QuantizeI8, emit_norm},
      {OpKind::Rope, emit_rope},
      {OpKind::Softmax, emit_softmax},
      {OpKind::Attention, emit_attention},
      {OpKind::RopeAttention, emit_attention},
  };
  auto it = table.find(op);
  return it == table.end() ? nullptr : &it->second;
}

}  // namespace bitnet::codegen

// Rotary position embedding over token rows [begin, end): every head of row t rotated at
// position pos + t (NEOX or GPT-J pairs), one sin/cos table per row shared by its heads.
#include "codegen_cpu/emit_math.h"
#include "codegen_cpu/emitters.h"

namespace bitnet::codegen {

bool emit_rope(KernelBuilder& kb, std::string* error) {
  auto& b = kb.b;
  const KernelDesc& d = kb.desc;
  const RopeParams p = rope_params(d);
  const int64_t heads = d.attr_int("n_head");
  const int64_t width = d.operands[0].shape[1].size;
  if (p.head_dim <= 0 || p.head_dim % 2 != 0 || heads * p.head_dim != width) {
    if (error) *error = "rope: heads do not tile the row";
    return false;
  }
  llvm::Value* x = kb.in(0);
  llvm::Value* out = kb.out();
  llvm::Value* pos = kb.pos();
  kb.loop(kb.begin(), kb.end(), 1, [&](llvm::Value* t) {
    const RopeTable table = rope_table(kb, p, b.CreateAdd(pos, t));
    llvm::Value* row = b.CreateMul(t, kb.c64(width));
    kb.loop(kb.c64(0), kb.c64(heads), 1, [&](llvm::Value* h) {
      llvm::Value* at = b.CreateAdd(row, b.CreateMul(h, kb.c64(p.head_dim)));
      llvm::Value* y = rope_head(kb, p, table, kb.element_ptr(kb.f32(), x, at));
      b.CreateAlignedStore(y, kb.element_ptr(kb.f32(), out, at), llvm::MaybeAlign(4));
    });
  });
  return true;
}

}  // namespace bitnet::codegen

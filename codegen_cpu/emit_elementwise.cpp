// Elementwise kernels over token rows [begin, end): binary mul/add (b a row broadcast, a
// scalar or a full matrix) and the activations. Plain scalar loops: LLVM's vectoriser
// turns them into full-width SIMD for the target.
#include "codegen_cpu/emitters.h"

namespace bitnet::codegen {
namespace {

// x / (1 + exp(-x)), with the builder's exp (float tolerance, a few ulp).
llvm::Value* silu(KernelBuilder& kb, llvm::Value* x) {
  llvm::Value* e = kb.exp_f32(kb.b.CreateFNeg(x));
  return kb.b.CreateFDiv(x, kb.b.CreateFAdd(kb.cf32(1.0f), e));
}

llvm::Value* gelu(KernelBuilder& kb, llvm::Value* x) {
  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), tanh(y) = 1 - 2 / (exp(2y) + 1)
  auto& b = kb.b;
  llvm::Value* inner =
      b.CreateFMul(kb.cf32(0.7978845608f),
                   b.CreateFMul(x, b.CreateFAdd(kb.cf32(1.0f), b.CreateFMul(kb.cf32(0.044715f), b.CreateFMul(x, x)))));
  llvm::Value* e = kb.exp_f32(b.CreateFMul(kb.cf32(2.0f), inner));
  llvm::Value* tanh = b.CreateFSub(kb.cf32(1.0f), b.CreateFDiv(kb.cf32(2.0f), b.CreateFAdd(e, kb.cf32(1.0f))));
  return b.CreateFMul(b.CreateFMul(kb.cf32(0.5f), x), b.CreateFAdd(kb.cf32(1.0f), tanh));
}

}  // namespace

bool emit_elementwise(KernelBuilder& kb, std::string* error) {
  auto& b = kb.b;
  const KernelDesc& d = kb.desc;
  const int64_t cols = d.result.shape[1].size;
  llvm::Value* a = kb.in(0);
  llvm::Value* out = kb.out();
  const bool binary = d.op == ir::OpKind::Mul || d.op == ir::OpKind::Add;
  llvm::Value* other = binary ? kb.in(1) : nullptr;
  // b's stride per token row: 0 for a broadcast row or scalar, cols for a full matrix.
  const bool b_matrix = binary && d.operands[1].rank() == 2;
  const bool b_scalar = binary && d.operands[1].rank() == 1 && d.operands[1].shape[0].size == 1 && cols != 1;
  kb.loop(kb.begin(), kb.end(), 1, [&](llvm::Value* t) {
    llvm::Value* row = b.CreateMul(t, kb.c64(cols));
    kb.loop(kb.c64(0), kb.c64(cols), 1, [&](llvm::Value* i) {
      llvm::Value* idx = b.CreateAdd(row, i);
      llvm::Value* x = kb.load(kb.f32(), a, idx, 4);
      llvm::Value* y = nullptr;
      switch (d.op) {
        case ir::OpKind::Mul:
        case ir::OpKind::Add: {
          llvm::Value* bi = b_matrix ? idx : b_scalar ? kb.c64(0) : i;
          llvm::Value* v = kb.load(kb.f32(), other, bi, 4);
          y = d.op == ir::OpKind::Mul ? b.CreateFMul(x, v) : b.CreateFAdd(x, v);
          break;
        }
        case ir::OpKind::Silu:
          y = silu(kb, x);
          break;
        case ir::OpKind::Relu2: {
          llvm::Value* r = b.CreateSelect(b.CreateFCmpOGT(x, kb.cf32(0.0f)), x, kb.cf32(0.0f));
          y = b.CreateFMul(r, r);
          break;
        }
        case ir::OpKind::Gelu:
          y = gelu(kb, x);
          break;
        default:
          break;
      }
      kb.store(y, out, idx, 4);
    });
  });
  (void)error;  // every elementwise description the type rules accept can be emitted
  return true;
}

}  // namespace bitnet::codegen

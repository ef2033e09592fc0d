// Kernel builder helpers (see kernel_builder.h).
#include "codegen_cpu/kernel_builder.h"

#include "schema/abi.h"

#include <llvm/IR/Verifier.h>
#include <llvm/Support/raw_ostream.h>

#include <cmath>
#include <cstddef>

namespace bitnet::codegen {

KernelBuilder::KernelBuilder(llvm::Module& m, const KernelDesc& d, const TargetFeatures& t, const std::string& symbol)
    : ctx(m.getContext()), module(m), b(m.getContext()), desc(d), target(t) {
  auto* type = llvm::FunctionType::get(b.getVoidTy(), {b.getPtrTy(), b.getInt64Ty(), b.getInt64Ty()}, false);
  fn = llvm::Function::Create(type, llvm::Function::ExternalLinkage, symbol, m);
  fn->addFnAttr(llvm::Attribute::NoUnwind);
  // Kernels must be self-contained (no calls into libc for plans, TOOLCHAIN.md 2).
  fn->addFnAttr("no-builtins");
  if (!t.cpu.empty()) fn->addFnAttr("target-cpu", t.cpu);
  if (!t.features.empty()) fn->addFnAttr("target-features", t.features);
  args_ = fn->getArg(0);
  begin_ = fn->getArg(1);
  end_ = fn->getArg(2);
  args_->setName("args");
  begin_->setName("begin");
  end_->setName("end");
  fn->addParamAttr(0, llvm::Attribute::NoAlias);
  b.SetInsertPoint(llvm::BasicBlock::Create(ctx, "entry", fn));
}

llvm::Value* KernelBuilder::field(int offset, llvm::Type* type) {
  return b.CreateLoad(type, b.CreateConstInBoundsGEP1_64(i8(), args_, static_cast<uint64_t>(offset)));
}

llvm::Value* KernelBuilder::in(int i) {
  return field(static_cast<int>(offsetof(abi::KernelArgs, in) + sizeof(void*) * static_cast<size_t>(i)), ptr());
}
llvm::Value* KernelBuilder::out() {
  return field(offsetof(abi::KernelArgs, out), ptr());
}
llvm::Value* KernelBuilder::n_tokens() {
  return field(offsetof(abi::KernelArgs, n_tokens), i64());
}
llvm::Value* KernelBuilder::pos() {
  return field(offsetof(abi::KernelArgs, pos), i64());
}
llvm::Value* KernelBuilder::decode_rows() {
  return b.CreateICmpNE(field(offsetof(abi::KernelArgs, decode_rows), i32()), c32(0));
}
llvm::Value* KernelBuilder::kv_k() {
  return field(offsetof(abi::KernelArgs, kv_k), ptr());
}
llvm::Value* KernelBuilder::kv_v() {
  return field(offsetof(abi::KernelArgs, kv_v), ptr());
}
llvm::Value* KernelBuilder::kv_cells() {
  return field(offsetof(abi::KernelArgs, kv_cells), i64());
}

llvm::Value* KernelBuilder::scratch() {
  llvm::Value* base = field(offsetof(abi::KernelArgs, scratch), ptr());
  llvm::Value* stride = field(offsetof(abi::KernelArgs, scratch_stride), i64());
  llvm::Value* thread = b.CreateSExt(field(offsetof(abi::KernelArgs, thread), i32()), i64());
  return byte_offset(base, b.CreateMul(thread, stride));
}

llvm::Constant* KernelBuilder::cf32(float v) {
  return llvm::ConstantFP::get(f32(), static_cast<double>(v));
}

void KernelBuilder::loop(llvm::Value* start, llvm::Value* end, int64_t step,
                         const std::function<void(llvm::Value*)>& body) {
  loop_carried(start, end, step, {}, [&](llvm::Value* i, const std::vector<llvm::Value*>&) {
    body(i);
    return std::vector<llvm::Value*>{};
  });
}

std::vector<llvm::Value*> KernelBuilder::loop_carried(
    llvm::Value* start, llvm::Value* end, int64_t step, const std::vector<llvm::Value*>& init,
    const std::function<std::vector<llvm::Value*>(llvm::Value*, const std::vector<llvm::Value*>&)>& body) {
  llvm::BasicBlock* pre = b.GetInsertBlock();
  llvm::BasicBlock* header = llvm::BasicBlock::Create(ctx, "loop", fn);
  llvm::BasicBlock* body_block = llvm::BasicBlock::Create(ctx, "body", fn);
  llvm::BasicBlock* exit = llvm::BasicBlock::Create(ctx, "exit", fn);
  b.CreateBr(header);
  b.SetInsertPoint(header);
  llvm::PHINode* i = b.CreatePHI(start->getType(), 2, "i");
  i->addIncoming(start, pre);
  std::vector<llvm::PHINode*> phis;
  std::vector<llvm::Value*> current;
  for (llvm::Value* v : init) {
    llvm::PHINode* phi = b.CreatePHI(v->getType(), 2);
    phi->addIncoming(v, pre);
    phis.push_back(phi);
    current.push_back(phi);
  }
  b.CreateCondBr(b.CreateICmpSLT(i, end), body_block, exit);
  b.SetInsertPoint(body_block);
  std::vector<llvm::Value*> next = body(i, current);
  llvm::Value* i_next = b.CreateAdd(i, llvm::ConstantInt::get(start->getType(), static_cast<uint64_t>(step)), "i.next",
                                    /*HasNUW=*/false, /*HasNSW=*/true);
  llvm::BasicBlock* latch = b.GetInsertBlock();
  b.CreateBr(header);
  i->addIncoming(i_next, latch);
  for (size_t k = 0; k < phis.size(); ++k) phis[k]->addIncoming(next[k], latch);
  b.SetInsertPoint(exit);
  return current;
}

std::vector<llvm::Value*> KernelBuilder::if_else(llvm::Value* cond,
                                                 const std::function<std::vector<llvm::Value*>()>& then_body,
                                                 const std::function<std::vector<llvm::Value*>()>& else_body) {
  llvm::BasicBlock* then_block = llvm::BasicBlock::Create(ctx, "then", fn);
  llvm::BasicBlock* else_block = llvm::BasicBlock::Create(ctx, "else", fn);
  llvm::BasicBlock* merge = llvm::BasicBlock::Create(ctx, "endif", fn);
  b.CreateCondBr(cond, then_block, else_block);
  b.SetInsertPoint(then_block);
  const std::vector<llvm::Value*> then_values = then_body();
  llvm::BasicBlock* then_end = b.GetInsertBlock();
  b.CreateBr(merge);
  b.SetInsertPoint(else_block);
  const std::vector<llvm::Value*> else_values = else_body();
  llvm::BasicBlock* else_end = b.GetInsertBlock();
  b.CreateBr(merge);
  b.SetInsertPoint(merge);
  std::vector<llvm::Value*> out;
  for (size_t i = 0; i < then_values.size(); ++i) {
    llvm::PHINode* phi = b.CreatePHI(then_values[i]->getType(), 2);
    phi->addIncoming(then_values[i], then_end);
    phi->addIncoming(else_values[i], else_end);
    out.push_back(phi);
  }
  return out;
}

void KernelBuilder::if_then(llvm::Value* cond, const std::function<void()>& then_body) {
  llvm::BasicBlock* then_block = llvm::BasicBlock::Create(ctx, "then", fn);
  llvm::BasicBlock* merge = llvm::BasicBlock::Create(ctx, "endif", fn);
  b.CreateCondBr(cond, then_block, merge);
  b.SetInsertPoint(then_block);
  then_body();
  b.CreateBr(merge);
  b.SetInsertPoint(merge);
}

llvm::Value* KernelBuilder::element_ptr(llvm::Type* type, llvm::Value* base, llvm::Value* index) {
  return b.CreateInBoundsGEP(type, base, {index});
}

llvm::Value* KernelBuilder::load(llvm::Type* type, llvm::Value* base, llvm::Value* index, unsigned align) {
  return b.CreateAlignedLoad(type, element_ptr(type, base, index), llvm::MaybeAlign(align));
}

void KernelBuilder::store(llvm::Value* value, llvm::Value* base, llvm::Value* index, unsigned align) {
  b.CreateAlignedStore(value, element_ptr(value->getType(), base, index), llvm::MaybeAlign(align));
}

llvm::Value* KernelBuilder::byte_offset(llvm::Value* base, llvm::Value* bytes) {
  return b.CreateInBoundsGEP(i8(), base, {bytes});
}

llvm::Value* KernelBuilder::intrinsic(llvm::Intrinsic::ID id, llvm::ArrayRef<llvm::Type*> types,
                                      llvm::ArrayRef<llvm::Value*> args) {
  return b.CreateCall(llvm::Intrinsic::getDeclaration(&module, id, types), args);
}

llvm::Value* KernelBuilder::fma(llvm::Value* x, llvm::Value* y, llvm::Value* z) {
  return intrinsic(llvm::Intrinsic::fma, {x->getType()}, {x, y, z});
}

llvm::Value* KernelBuilder::reduce_fadd(llvm::Value* v) {
  llvm::Type* elem = llvm::cast<llvm::VectorType>(v->getType())->getElementType();
  llvm::CallInst* call = b.CreateFAddReduce(llvm::ConstantFP::get(elem, -0.0), v);
  llvm::FastMathFlags flags;
  flags.setAllowReassoc();
  call->setFastMathFlags(flags);
  return call;
}

llvm::Value* KernelBuilder::reduce_add(llvm::Value* v) {
  return b.CreateAddReduce(v);
}

llvm::Value* KernelBuilder::min_i64(llvm::Value* x, llvm::Value* y) {
  return b.CreateSelect(b.CreateICmpSLT(x, y), x, y);
}

llvm::Constant* KernelBuilder::like(llvm::Value* x, float v) {
  llvm::Type* t = x->getType();
  if (auto* vt = llvm::dyn_cast<llvm::FixedVectorType>(t)) return splat(vt->getNumElements(), cf32(v));
  return cf32(v);
}

llvm::Value* KernelBuilder::exp_f32(llvm::Value* x) {
  llvm::Type* t = x->getType();
  llvm::Type* int_type = b.getInt32Ty();
  if (auto* vt = llvm::dyn_cast<llvm::FixedVectorType>(t)) int_type = vec(b.getInt32Ty(), vt->getNumElements());
  auto c = [&](float v) { return like(x, v); };
  // Clamp so 2^n stays representable; the ends are fixed up below.
  llvm::Value* xc =
      intrinsic(llvm::Intrinsic::maxnum, {t}, {intrinsic(llvm::Intrinsic::minnum, {t}, {x, c(88.0f)}), c(-87.0f)});
  // n = round(x / ln2); r = x - n ln2 with ln2 split in two for precision (Cody-Waite).
  llvm::Value* n = intrinsic(llvm::Intrinsic::rint, {t}, {b.CreateFMul(xc, c(1.44269504088896341f))});
  llvm::Value* r = fma(n, c(-0.693359375f), xc);
  r = fma(n, c(2.12194440e-4f), r);
  // exp(r) on |r| <= ln2/2: Taylor-like minimax coefficients (Cephes expf).
  llvm::Value* p = c(1.9875691500e-4f);
  p = fma(p, r, c(1.3981999507e-3f));
  p = fma(p, r, c(8.3334519073e-3f));
  p = fma(p, r, c(4.1665795894e-2f));
  p = fma(p, r, c(1.6666665459e-1f));
  p = fma(p, r, c(5.0000001201e-1f));
  llvm::Value* r2 = b.CreateFMul(r, r);
  p = fma(p, r2, b.CreateFAdd(r, c(1.0f)));
  // Scale by 2^n through the exponent bits.
  llvm::Value* bits = b.CreateShl(b.CreateAdd(b.CreateFPToSI(n, int_type), llvm::ConstantInt::get(int_type, 127)),
                                  llvm::ConstantInt::get(int_type, 23));
  llvm::Value* y = b.CreateFMul(p, b.CreateBitCast(bits, t));
  y = b.CreateSelect(b.CreateFCmpOLT(x, c(-87.3f)), c(0.0f), y);
  y = b.CreateSelect(b.CreateFCmpOGT(x, c(88.7f)), c(INFINITY), y);
  return y;
}

bool KernelBuilder::finish(std::string* error) {
  b.CreateRetVoid();
  std::string message;
  llvm::raw_string_ostream os(message);
  if (llvm::verifyFunction(*fn, &os)) {
    if (error) *error = "kernel " + fn->getName().str() + " does not verify: " + os.str();
    return false;
  }
  return true;
}

}  // namespace bitnet::codegen

// What a kernel emitter works with: the LLVM module and IRBuilder of one kernel, its
// description and target, the KernelArgs fields as values, and small helpers (loops,
// typed loads/stores, intrinsics) that keep emitters readable. Internal to codegen_cpu.
#pragma once

#include "codegen_cpu/host_features.h"
#include "codegen_cpu/kernel_desc.h"

#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/Module.h>

#include <functional>
#include <vector>

namespace bitnet::codegen {

class KernelBuilder {
 public:
  KernelBuilder(llvm::Module& module, const KernelDesc& desc, const TargetFeatures& target, const std::string& symbol);

  llvm::LLVMContext& ctx;
  llvm::Module& module;
  llvm::IRBuilder<> b;
  const KernelDesc& desc;
  const TargetFeatures& target;
  llvm::Function* fn;  // void symbol(const KernelArgs*, i64 begin, i64 end)

  // ---- KernelArgs fields (loaded in the entry block) ----
  llvm::Value* in(int i);                  // ptr
  llvm::Value* out();                      // ptr
  llvm::Value* n_tokens();                 // i64
  llvm::Value* pos();                      // i64
  llvm::Value* decode_rows();              // i1: every row is a one-token sequence (abi.h)
  llvm::Value* kv_k();                     // ptr
  llvm::Value* kv_v();                     // ptr
  llvm::Value* kv_cells();                 // i64
  llvm::Value* scratch();                  // ptr: this thread's scratch area
  llvm::Value* begin() { return begin_; }  // i64
  llvm::Value* end() { return end_; }      // i64

  // ---- types and constants ----
  llvm::Type* i8() { return b.getInt8Ty(); }
  llvm::Type* i16() { return b.getInt16Ty(); }
  llvm::Type* i32() { return b.getInt32Ty(); }
  llvm::Type* i64() { return b.getInt64Ty(); }
  llvm::Type* f16() { return b.getHalfTy(); }
  llvm::Type* f32() { return b.getFloatTy(); }
  llvm::Type* f64() { return b.getDoubleTy(); }
  llvm::Type* ptr() { return b.getPtrTy(); }
  llvm::VectorType* vec(llvm::Type* elem, unsigned n) { return llvm::FixedVectorType::get(elem, n); }
  llvm::Constant* c64(int64_t v) { return b.getInt64(static_cast<uint64_t>(v)); }
  llvm::Constant* c32(int32_t v) { return b.getInt32(static_cast<uint32_t>(v)); }
  llvm::Constant* cf32(float v);
  llvm::Constant* splat(unsigned n, llvm::Constant* v) {
    return llvm::ConstantVector::getSplat(llvm::ElementCount::getFixed(n), v);
  }

  // ---- control flow ----
  // for (i = start; i < end; i += step) body(i). The body may create blocks of its own.
  void loop(llvm::Value* start, llvm::Value* end, int64_t step, const std::function<void(llvm::Value*)>& body);
  // The same with loop-carried values: body(i, current) returns the next values; the
  // final values are returned.
  std::vector<llvm::Value*> loop_carried(
      llvm::Value* start, llvm::Value* end, int64_t step, const std::vector<llvm::Value*>& init,
      const std::function<std::vector<llvm::Value*>(llvm::Value*, const std::vector<llvm::Value*>&)>& body);
  // if (cond) then_body()
  void if_then(llvm::Value* cond, const std::function<void()>& then_body);
  // cond ? then_body() : else_body(), each returning values of the same types.
  std::vector<llvm::Value*> if_else(llvm::Value* cond, const std::function<std::vector<llvm::Value*>()>& then_body,
                                    const std::function<std::vector<llvm::Value*>()>& else_body);

  // ---- memory: element `index` of an array of `type` at `base` ----
  llvm::Value* element_ptr(llvm::Type* type, llvm::Value* base, llvm::Value* index);
  llvm::Value* load(llvm::Type* type, llvm::Value* base, llvm::Value* index, unsigned align = 1);
  void store(llvm::Value* value, llvm::Value* base, llvm::Value* index, unsigned align = 1);
  llvm::Value* byte_offset(llvm::Value* base, llvm::Value* bytes);  // base + bytes (i8 GEP)

  // ---- arithmetic helpers ----
  llvm::Value* intrinsic(llvm::Intrinsic::ID id, llvm::ArrayRef<llvm::Type*> types, llvm::ArrayRef<llvm::Value*> args);
  llvm::Value* fma(llvm::Value* a, llvm::Value* b, llvm::Value* c);
  llvm::Value* reduce_fadd(llvm::Value* v);  // reassociating horizontal sum (float tolerance)
  llvm::Value* reduce_add(llvm::Value* v);   // integer horizontal sum
  llvm::Value* min_i64(llvm::Value* a, llvm::Value* c);
  // exp(x) for f32 scalars or vectors without a libm call (kernels stay self-contained for
  // plans): range reduction by ln 2 and a degree-6 polynomial, within 2 ulp on [-87, 88];
  // below -87.3 it returns 0, above 88.7 +inf.
  llvm::Value* exp_f32(llvm::Value* x);
  // A constant of x's type (scalar or splat vector).
  llvm::Constant* like(llvm::Value* x, float v);

  // Finishes the function (ret void) and verifies it; false with a message on failure.
  bool finish(std::string* error);

 private:
  llvm::Value* field(int index, llvm::Type* type);
  llvm::Value* args_;
  llvm::Value* begin_;
  llvm::Value* end_;
};

// An emitter writes the body of one kernel kind. Registered per op in emitters.cpp.
using Emitter = std::function<bool(KernelBuilder& kb, std::string* error)>;
const Emitter* find_emitter(ir::OpKind op);

}  // namespace bitnet::codegen

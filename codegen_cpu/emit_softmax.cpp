// Row softmax of x * scale over token rows [begin, end), as ggml_compute_forward_soft_max_f32
// without a mask: w = float(x * scale), max, e = expf_approx(w - max) in blocks of 16 whose
// tree sums are added in double, p = e * float(1 / sum).
#include "codegen_cpu/emit_math.h"
#include "codegen_cpu/emitters.h"

#include <cmath>

namespace bitnet::codegen {

bool emit_softmax(KernelBuilder& kb, std::string* error) {
  auto& b = kb.b;
  const KernelDesc& d = kb.desc;
  const int64_t n = d.operands[0].shape[1].size;
  if (n <= 0) {
    if (error) *error = "softmax: empty rows";
    return false;
  }
  const auto scale = static_cast<float>(d.attr_float("scale"));
  const int64_t vector_end = n - n % 16;
  llvm::Value* x = kb.in(0);
  llvm::Value* out = kb.out();
  kb.loop(kb.begin(), kb.end(), 1, [&](llvm::Value* t) {
    llvm::Value* row = b.CreateMul(t, kb.c64(n));
    llvm::Value* xr = kb.element_ptr(kb.f32(), x, row);
    llvm::Value* pr = kb.element_ptr(kb.f32(), out, row);
    // w = x * scale into the output row; the max of w (exact in any order).
    llvm::Value* max = kb.loop_carried(
        kb.c64(0), kb.c64(n), 1, {kb.cf32(-INFINITY)}, [&](llvm::Value* i, const std::vector<llvm::Value*>& m) {
          llvm::Value* w = b.CreateFMul(kb.load(kb.f32(), xr, i, 4), kb.cf32(scale));
          kb.store(w, pr, i, 4);
          return std::vector<llvm::Value*>{b.CreateSelect(b.CreateFCmpOGT(w, m[0]), w, m[0])};
        })[0];
    llvm::Value* sum = llvm::ConstantFP::get(kb.f64(), 0.0);
    if (vector_end > 0) {
      sum = kb.loop_carried(
          kb.c64(0), kb.c64(vector_end), 16, {sum}, [&](llvm::Value* i, const std::vector<llvm::Value*>& s) {
            llvm::Value* w = load_vec(kb, kb.f32(), 16, pr, i, 4);
            llvm::Value* e = ggml_expf(kb, b.CreateFSub(w, b.CreateVectorSplat(16, max)));
            b.CreateAlignedStore(e, kb.element_ptr(kb.f32(), pr, i), llvm::MaybeAlign(4));
            return std::vector<llvm::Value*>{b.CreateFAdd(s[0], b.CreateFPExt(tree_sum16(kb, e), kb.f64()))};
          })[0];
    }
    // The reference takes libm expf for the n % 16 leftovers; the builder's exp is within 2 ulp of it.
    for (int64_t i = vector_end; i < n; ++i) {
      llvm::Value* e = kb.exp_f32(b.CreateFSub(kb.load(kb.f32(), pr, kb.c64(i), 4), max));
      kb.store(e, pr, kb.c64(i), 4);
      sum = b.CreateFAdd(sum, b.CreateFPExt(e, kb.f64()));
    }
    llvm::Value* inv = b.CreateFPTrunc(b.CreateFDiv(llvm::ConstantFP::get(kb.f64(), 1.0), sum), kb.f32());
    kb.loop(kb.c64(0), kb.c64(n), 1,
            [&](llvm::Value* i) { kb.store(b.CreateFMul(kb.load(kb.f32(), pr, i, 4), inv), pr, i, 4); });
  });
  return true;
}

}  // namespace bitnet::codegen

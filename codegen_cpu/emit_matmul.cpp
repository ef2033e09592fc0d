// The matmul-family kernels (matmul, matmul_cat, matmul_add, gated_ffn): splits the work
// range of output features over the node's weight matrices, runs the product generator
// for the weight type on each piece and applies the op's epilogue to the results.
#include "codegen_cpu/emit_matmul.h"
#include "codegen_cpu/emitters.h"

namespace bitnet::codegen {

MatmulTuning& matmul_tuning() {
  static MatmulTuning tuning;
  return tuning;
}

namespace {

// ggml_v_expf lane for lane (runtime/reference/expf.cpp): the same float operations in
// the same order, so SiLU in gated_ffn is bit-identical to the interpreter's. ldexp(j, n)
// is one multiply by 2^n where 2^n is a normal float, and two exact-then-rounding
// multiplies at the ends of the range (subnormal results, overflow to inf).
llvm::Value* expf_ggml(KernelBuilder& kb, llvm::Value* x) {
  auto& b = kb.b;
  auto c = [&](float v) { return kb.like(x, v); };
  llvm::Type* t = x->getType();
  llvm::Type* int_type = b.getInt32Ty();
  if (auto* vt = llvm::dyn_cast<llvm::FixedVectorType>(t)) int_type = kb.vec(b.getInt32Ty(), vt->getNumElements());
  auto pow2 = [&](llvm::Value* e) {  // 2^e for integral e, clamped to the normal range
    llvm::Value* clamped = kb.intrinsic(llvm::Intrinsic::maxnum, {t},
                                        {kb.intrinsic(llvm::Intrinsic::minnum, {t}, {e, c(127.0f)}), c(-126.0f)});
    llvm::Value* bits =
        b.CreateShl(b.CreateAdd(b.CreateFPToSI(clamped, int_type), llvm::ConstantInt::get(int_type, 127)),
                    llvm::ConstantInt::get(int_type, 23));
    return b.CreateBitCast(bits, t);
  };
  llvm::Value* z = kb.fma(x, c(0x1.715476p+0f), c(0x1.8p23f));
  llvm::Value* n = b.CreateFSub(z, c(0x1.8p23f));
  llvm::Value* neg_n = b.CreateFNeg(n);
  llvm::Value* r = kb.fma(neg_n, c(0x1.7f7d1cp-20f), kb.fma(neg_n, c(0x1.62e4p-1f), x));
  llvm::Value* u = b.CreateFMul(r, r);
  llvm::Value* j = kb.fma(
      kb.fma(kb.fma(c(0x1.0e4020p-7f), r, c(0x1.573e2ep-5f)), u, kb.fma(c(0x1.555e66p-3f), r, c(0x1.fffdb6p-2f))), u,
      kb.fma(c(0x1.ffffecp-1f), r, c(1.0f)));
  llvm::Value* mid = b.CreateFMul(j, pow2(n));
  llvm::Value* high = b.CreateFMul(b.CreateFMul(j, pow2(b.CreateFSub(n, c(100.0f)))), c(0x1p100f));
  llvm::Value* low = b.CreateFMul(b.CreateFMul(j, pow2(b.CreateFAdd(n, c(100.0f)))), c(0x1p-100f));
  llvm::Value* e =
      b.CreateSelect(b.CreateFCmpOGT(n, c(127.0f)), high, b.CreateSelect(b.CreateFCmpOLT(n, c(-126.0f)), low, mid));
  llvm::Value* outside = b.CreateFCmpOGT(kb.intrinsic(llvm::Intrinsic::fabs, {t}, {n}), c(192.0f));
  llvm::Value* limit = b.CreateSelect(b.CreateFCmpOLE(n, c(0.0f)), c(0.0f), c(INFINITY));
  return b.CreateSelect(outside, limit, e);
}

// The interpreter's silu_row: ggml_v_silu for the lanes of whole 16-blocks of the row, and
// x / (1 + expf(-x)) for the last n % 16 (libm there; the builder's exp is within 2 ulp).
llvm::Value* silu(KernelBuilder& kb, llvm::Value* x, llvm::Value* first_feature, int64_t features) {
  auto& b = kb.b;
  llvm::Value* one = kb.like(x, 1.0f);
  llvm::Value* exact = b.CreateFDiv(x, b.CreateFAdd(one, expf_ggml(kb, b.CreateFSub(kb.like(x, 0.0f), x))));
  const int64_t vector_end = features - features % 16;
  if (vector_end == features) return exact;
  llvm::Value* tail = b.CreateFDiv(x, b.CreateFAdd(one, kb.exp_f32(b.CreateFNeg(x))));
  const unsigned n = llvm::cast<llvm::FixedVectorType>(x->getType())->getNumElements();
  std::vector<llvm::Constant*> lanes;
  for (unsigned i = 0; i < n; ++i) lanes.push_back(kb.c64(i));
  llvm::Value* index = b.CreateAdd(b.CreateVectorSplat(n, first_feature), llvm::ConstantVector::get(lanes));
  llvm::Value* in_blocks = b.CreateICmpSLT(index, b.CreateVectorSplat(n, kb.c64(vector_end)));
  return b.CreateSelect(in_blocks, exact, tail);
}

llvm::Value* relu2(KernelBuilder& kb, llvm::Value* x) {
  // As the interpreter: x > 0 ? x : 0 (so -0 and NaN become 0), then squared.
  llvm::Value* zero = kb.like(x, 0.0f);
  llvm::Value* r = kb.b.CreateSelect(kb.b.CreateFCmpOGT(x, zero), x, zero);
  return kb.b.CreateFMul(r, r);
}

llvm::Value* f32_ptr(KernelBuilder& kb, llvm::Value* base, llvm::Value* index) {
  return kb.element_ptr(kb.f32(), base, index);
}

llvm::Value* load_vec(KernelBuilder& kb, llvm::Value* base, llvm::Value* index, unsigned n) {
  return kb.b.CreateAlignedLoad(kb.vec(kb.f32(), n), f32_ptr(kb, base, index), llvm::Align(4));
}

void store_vec(KernelBuilder& kb, llvm::Value* v, llvm::Value* base, llvm::Value* index) {
  kb.b.CreateAlignedStore(v, f32_ptr(kb, base, index), llvm::Align(4));
}

unsigned lanes(llvm::Value* v) {
  return llvm::cast<llvm::FixedVectorType>(v->getType())->getNumElements();
}

bool fail(std::string* error, const std::string& message) {
  if (error) *error = message;
  return false;
}

}  // namespace

void emit_tiles(KernelBuilder& kb, const ProductArgs& p, int gemv_rows, int gemm_rows, int gemm_tokens,
                const MicroKernel& micro, const RowPrologue& prologue, int gemv_streams) {
  auto& b = kb.b;
  llvm::Value* lo = p.row_begin;
  llvm::Value* hi = p.row_end;
  llvm::Value* tokens = p.n_tokens;
  // Full tiles of `rows` over [from, hi), then single rows; body(rows, row).
  auto over_rows = [&](llvm::Value* from, int rows, const std::function<void(int, llvm::Value*)>& body) {
    llvm::Value* full_end = hi;
    if (rows > 1) {
      llvm::Value* count = b.CreateSub(hi, from);
      full_end = b.CreateAdd(from, b.CreateMul(b.CreateSDiv(count, kb.c64(rows)), kb.c64(rows)));
    }
    kb.loop(from, full_end, rows, [&](llvm::Value* r) { body(rows, r); });
    if (rows > 1) kb.loop(full_end, hi, 1, [&](llvm::Value* r) { body(1, r); });
  };
  auto decode = [&] {
    kb.loop(kb.c64(0), tokens, 1, [&](llvm::Value* t) {
      llvm::Value* from = lo;
      if (gemv_streams == 2 && gemv_rows >= 2 && p.weights.size() == 1) {
        // Tiles of gemv_rows / 2 rows from each half, then the leftover rows as usual.
        const int per = gemv_rows / 2;
        llvm::Value* half = b.CreateMul(b.CreateSDiv(b.CreateSub(hi, lo), kb.c64(2 * per)), kb.c64(per));
        kb.loop(lo, b.CreateAdd(lo, half), per,
                [&](llvm::Value* r) { micro(per, 1, false, r, t, b.CreateAdd(r, half)); });
        from = b.CreateAdd(lo, b.CreateMul(half, kb.c64(2)));
      }
      over_rows(from, gemv_rows, [&](int rows, llvm::Value* r) { micro(rows, 1, false, r, t, nullptr); });
    });
  };
  if (gemm_tokens <= 1) {
    decode();
    return;
  }
  llvm::Value* gemm = b.CreateICmpSGE(tokens, kb.c64(gemm_tokens));
  kb.if_then(gemm, [&] {
    llvm::Value* full_tokens = b.CreateMul(b.CreateSDiv(tokens, kb.c64(gemm_tokens)), kb.c64(gemm_tokens));
    over_rows(lo, gemm_rows, [&](int rows, llvm::Value* r) {
      if (prologue) prologue(rows, r);
      kb.loop(kb.c64(0), full_tokens, gemm_tokens,
              [&](llvm::Value* t) { micro(rows, gemm_tokens, true, r, t, nullptr); });
      kb.loop(full_tokens, tokens, 1, [&](llvm::Value* t) { micro(rows, 1, true, r, t, nullptr); });
    });
  });
  kb.if_then(b.CreateNot(gemm), decode);
}

bool emit_matmul_family(KernelBuilder& kb, std::string* error) {
  auto& b = kb.b;
  const KernelDesc& d = kb.desc;
  const ir::OpKind op = d.op;
  if (d.operands.size() < 2 || d.operands[0].rank() != 2 || d.result.rank() != 2)
    return fail(error, "bad operand ranks");
  const ir::DType act = d.operands[0].dtype;
  const int64_t cols = d.operands[0].shape[1].size;
  const int64_t total = d.result.shape[1].size;
  if (act != ir::DType::F32 && act != ir::DType::I8Q) return fail(error, "activations must be f32 or i8q");

  // Weight operands and where their outputs go.
  std::vector<int> weight_operands;
  if (op == ir::OpKind::MatMulCat) {
    for (size_t i = 1; i < d.operands.size(); ++i) weight_operands.push_back(static_cast<int>(i));
  } else {
    weight_operands.push_back(1);
    if (op == ir::OpKind::GatedFfn) weight_operands.push_back(2);
  }
  for (int i : weight_operands) {
    const ir::Type& w = d.operands[static_cast<size_t>(i)];
    if (w.rank() != 2 || w.shape[1].size != cols) return fail(error, "weight shape does not match the activations");
    if (act == ir::DType::I8Q && w.dtype != ir::DType::I2_S)
      return fail(error, "i8q activations multiply only i2_s weights");
    if (act == ir::DType::F32 && w.dtype == ir::DType::I2_S) {
      return fail(error, "i2_s weights need i8q activations (quantize_i8 before the product, as the lowering does)");
    }
  }
  if (op == ir::OpKind::GatedFfn && d.operands[1] != d.operands[2])
    return fail(error, "gate and up weights differ in type");
  const std::string& act_fn = d.attr_string("act");
  if (op == ir::OpKind::GatedFfn && act_fn != "silu" && act_fn != "relu2")
    return fail(error, "unknown act '" + act_fn + "'");

  llvm::Value* x = kb.in(0);
  llvm::Value* out = kb.out();
  llvm::Value* n_tokens = kb.n_tokens();
  llvm::Value* residual = op == ir::OpKind::MatMulAdd ? kb.in(2) : nullptr;

  // One product per weight (gated_ffn: one product of the gate and up weights together).
  struct Segment {
    std::vector<int> operands;
    int64_t offset;  // first output feature
    int64_t rows;
  };
  std::vector<Segment> segments;
  if (op == ir::OpKind::GatedFfn) {
    segments.push_back({weight_operands, 0, d.operands[1].shape[0].size});
  } else {
    int64_t offset = 0;
    for (int i : weight_operands) {
      const int64_t rows = d.operands[static_cast<size_t>(i)].shape[0].size;
      segments.push_back({{i}, offset, rows});
      offset += rows;
    }
  }
  if (segments.back().offset + segments.back().rows != total)
    return fail(error, "result width does not match the weights");

  for (const Segment& s : segments) {
    // Local rows [lo, hi) of this weight inside the work range [begin, end).
    auto clamp = [&](llvm::Value* v) {
      llvm::Value* local = b.CreateSub(v, kb.c64(s.offset));
      local = b.CreateSelect(b.CreateICmpSLT(local, kb.c64(0)), kb.c64(0), local);
      return kb.min_i64(local, kb.c64(s.rows));
    };
    llvm::Value* lo = clamp(kb.begin());
    llvm::Value* hi = clamp(kb.end());
    ProductArgs p;
    p.act = act;
    p.weight = d.operands[static_cast<size_t>(s.operands[0])].dtype;
    p.x = x;
    for (int i : s.operands) p.weights.push_back(kb.in(i));
    p.rows = s.rows;
    p.cols = cols;
    p.row_begin = lo;
    p.row_end = hi;
    p.n_tokens = n_tokens;
    const int64_t offset = s.offset;
    p.store = [&kb, out, residual, op, total, offset, &act_fn](llvm::Value* t, llvm::Value* row,
                                                               const std::vector<llvm::Value*>& y) {
      auto& bb = kb.b;
      llvm::Value* index = bb.CreateAdd(bb.CreateMul(t, kb.c64(total)), bb.CreateAdd(row, kb.c64(offset)));
      llvm::Value* value = y[0];
      if (op == ir::OpKind::MatMulAdd) {
        value = bb.CreateFAdd(load_vec(kb, residual, index, lanes(value)), value);  // r + x w^T, r first
      } else if (op == ir::OpKind::GatedFfn) {
        llvm::Value* gate = act_fn == "silu" ? silu(kb, y[0], row, total) : relu2(kb, y[0]);
        value = bb.CreateFMul(gate, y[1]);
      }
      store_vec(kb, value, out, index);
    };
    bool ok = true;
    kb.if_then(b.CreateICmpSLT(lo, hi),
               [&] { ok = act == ir::DType::I8Q ? emit_product_i2s(kb, p, error) : emit_product_float(kb, p, error); });
    if (!ok) return false;
  }
  return true;
}

}  // namespace bitnet::codegen

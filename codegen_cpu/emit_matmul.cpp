// The matmul-family kernels (matmul, matmul_cat, matmul_add, gated_ffn): splits the work
// range of output features over the node's weight matrices, runs the product generator
// for the weight type on each piece and applies the op's epilogue to the results.
#include "codegen_cpu/emit_matmul.h"
#include "codegen_cpu/emit_math.h"
#include "codegen_cpu/emitters.h"

namespace bitnet::codegen {

MatmulTuning& matmul_tuning() {
  static MatmulTuning tuning;
  return tuning;
}

namespace {

// The interpreter's silu_row: ggml_v_silu for the lanes of whole 16-blocks of the row, and
// x / (1 + expf(-x)) for the last n % 16 (libm there; the builder's exp is within 2 ulp).
llvm::Value* silu(KernelBuilder& kb, llvm::Value* x, llvm::Value* first_feature, int64_t features) {
  auto& b = kb.b;
  llvm::Value* one = kb.like(x, 1.0f);
  llvm::Value* exact = b.CreateFDiv(x, b.CreateFAdd(one, ggml_expf(kb, b.CreateFSub(kb.like(x, 0.0f), x))));
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

// Lanes [start, start + n) of v as an <n x T> vector (also for n == 1).
llvm::Value* lane_range(KernelBuilder& kb, llvm::Value* v, unsigned start, unsigned n) {
  std::vector<int> mask;
  for (unsigned i = 0; i < n; ++i) mask.push_back(static_cast<int>(start + i));
  return kb.b.CreateShuffleVector(v, mask);
}

bool fail(std::string* error, const std::string& message) {
  if (error) *error = message;
  return false;
}

}  // namespace

void emit_tiles(KernelBuilder& kb, const ProductArgs& p, int gemv_rows, int gemm_rows, int gemm_tokens,
                const MicroKernel& micro, const TileOptions& options) {
  auto& b = kb.b;
  llvm::Value* lo = p.row_begin;
  llvm::Value* hi = p.row_end;
  llvm::Value* tokens = p.n_tokens;
  // for (r = from; r < to; r += step) body(r), visiting the same r in descending order where
  // `backwards` (a runtime i1; nullptr: never). to - from is a multiple of step.
  auto loop = [&](llvm::Value* from, llvm::Value* to, int step, llvm::Value* backwards,
                  const std::function<void(llvm::Value*)>& body) {
    kb.loop(from, to, step, [&](llvm::Value* r) {
      if (backwards) r = b.CreateSelect(backwards, b.CreateSub(b.CreateSub(b.CreateAdd(from, to), kb.c64(step)), r), r);
      body(r);
    });
  };
  // The end of the whole tiles of `rows` in [from, hi).
  auto tiles_end = [&](llvm::Value* from, int64_t rows) {
    if (rows == 1) return hi;
    return b.CreateAdd(from, b.CreateMul(b.CreateSDiv(b.CreateSub(hi, from), kb.c64(rows)), kb.c64(rows)));
  };
  // Full tiles of `rows` over [from, hi), then single rows; body(rows, row).
  auto over_rows = [&](llvm::Value* from, int rows, llvm::Value* backwards,
                       const std::function<void(int, llvm::Value*)>& body) {
    llvm::Value* full_end = tiles_end(from, rows);
    loop(from, full_end, rows, backwards, [&](llvm::Value* r) { body(rows, r); });
    if (rows > 1) loop(full_end, hi, 1, backwards, [&](llvm::Value* r) { body(1, r); });
  };
  const int groups = options.batch ? options.batch_groups : 1;
  // The decode path with tiles of gemv_rows rows and k tokens per micro call.
  auto decode_with = [&](int gemv_rows, int k) {
    const bool two_streams = options.gemv_streams == 2 && gemv_rows >= 2 && p.weights.size() == 1;
    const int per = gemv_rows / 2;
    llvm::Value* half =
        two_streams ? b.CreateMul(b.CreateSDiv(b.CreateSub(hi, lo), kb.c64(2 * per * groups)), kb.c64(per * groups))
                    : nullptr;
    if (options.decode_start && !options.reverse) {
      options.decode_start(two_streams ? std::vector<llvm::Value*>{lo, b.CreateAdd(lo, half)}
                                       : std::vector<llvm::Value*>{lo});
    }
    // Tokens innermost: a tile's weights are read from memory once and stay in L1 for the
    // other tokens of a short prompt (below gemm_tokens). With decode_tokens > 1, micro gets
    // that many tokens at once where it can (the gemv arithmetic per token, weights decoded
    // once for them).
    llvm::Value* full_tokens = k > 1 ? b.CreateMul(b.CreateSDiv(tokens, kb.c64(k)), kb.c64(k)) : nullptr;
    auto each_token_tile = [&](const std::function<void(int, llvm::Value*)>& body) {
      if (k > 1) {
        kb.loop(kb.c64(0), full_tokens, k, [&](llvm::Value* t) { body(k, t); });
        kb.loop(full_tokens, tokens, 1, [&](llvm::Value* t) { body(1, t); });
      } else {
        kb.loop(kb.c64(0), tokens, 1, [&](llvm::Value* t) { body(1, t); });
      }
    };
    auto each_token = [&](const std::function<void(llvm::Value*)>& body) { kb.loop(kb.c64(0), tokens, 1, body); };
    llvm::Value* from = lo;
    if (two_streams) {
      // Tiles of gemv_rows / 2 rows from each half (batches of them where possible), then
      // the leftover rows as usual.
      loop(lo, b.CreateAdd(lo, half), per * groups, options.reverse, [&](llvm::Value* r) {
        if (groups > 1) {
          each_token([&](llvm::Value* t) { options.batch(groups, r, t, b.CreateAdd(r, half)); });
        } else {
          each_token_tile([&](int n, llvm::Value* t) { micro(per, n, false, r, t, b.CreateAdd(r, half)); });
        }
      });
      from = b.CreateAdd(lo, b.CreateMul(half, kb.c64(2)));
    } else if (groups > 1) {
      llvm::Value* batched_end = tiles_end(from, gemv_rows * groups);
      loop(from, batched_end, gemv_rows * groups, options.reverse,
           [&](llvm::Value* r) { each_token([&](llvm::Value* t) { options.batch(groups, r, t, nullptr); }); });
      from = batched_end;
    }
    over_rows(from, gemv_rows, options.reverse, [&](int rows, llvm::Value* r) {
      each_token_tile([&](int n, llvm::Value* t) { micro(rows, n, false, r, t, nullptr); });
    });
  };
  const int k = std::max(1, options.decode_tokens);
  auto decode = [&] {
    if (!options.force_decode || k == 1 || options.decode_rows_tile <= 0 || options.decode_rows_tile == gemv_rows) {
      decode_with(gemv_rows, k);
      return;
    }
    // Several one-token rows: their own tile shape (the weights are reused across the tokens
    // of a tile, so fewer rows and more tokens per tile than a short prompt gets).
    llvm::Value* several = b.CreateAnd(options.force_decode, b.CreateICmpSGT(tokens, kb.c64(1)));
    kb.if_then(several, [&] { decode_with(options.decode_rows_tile, k); });
    kb.if_then(b.CreateNot(several), [&] { decode_with(gemv_rows, k); });
  };
  if (gemm_tokens <= 1) {
    decode();
    return;
  }
  llvm::Value* gemm = b.CreateICmpSGE(tokens, kb.c64(gemm_tokens));
  if (options.force_decode) gemm = b.CreateAnd(gemm, b.CreateNot(options.force_decode));
  kb.if_then(gemm, [&] {
    llvm::Value* full_tokens = b.CreateMul(b.CreateSDiv(tokens, kb.c64(gemm_tokens)), kb.c64(gemm_tokens));
    over_rows(lo, gemm_rows, nullptr, [&](int rows, llvm::Value* r) {
      if (options.gemm_tile) {
        options.gemm_tile(rows, r);
        return;
      }
      if (options.prologue) options.prologue(rows, r);
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
    if (act == ir::DType::I8Q && w.dtype != ir::DType::I2_S && w.dtype != ir::DType::TQ1_0 &&
        w.dtype != ir::DType::TQ2_0)
      return fail(error, "i8q activations multiply only ternary (i2_s, tq1_0, tq2_0) weights");
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
    // The result element of token t and this weight's local row `row`.
    auto out_index = [&kb, total, offset](llvm::Value* t, llvm::Value* row) {
      return kb.b.CreateAdd(kb.b.CreateMul(t, kb.c64(total)), kb.b.CreateAdd(row, kb.c64(offset)));
    };
    p.store = [&kb, out, residual, op, total, out_index, &act_fn](llvm::Value* t, llvm::Value* row,
                                                                  const std::vector<llvm::Value*>& y) {
      auto& bb = kb.b;
      llvm::Value* index = out_index(t, row);
      llvm::Value* value = y[0];
      if (op == ir::OpKind::MatMulAdd) {
        value = bb.CreateFAdd(load_vec(kb, residual, index, lanes(value)), value);  // r + x w^T, r first
      } else if (op == ir::OpKind::GatedFfn) {
        llvm::Value* gate = act_fn == "silu" ? silu(kb, y[0], row, total) : relu2(kb, y[0]);
        value = bb.CreateFMul(gate, y[1]);
      }
      store_vec(kb, value, out, index);
    };
    // silu once over a tile's tokens: its exp is a long dependent chain per vector, which on
    // AVX2's 2-row tiles cost more than the products (relu2 is two operations: the shuffles of
    // the wide path would cost more than they save). A silu whose last n % 16 features take
    // libm's exp needs each lane's feature index, so it keeps the per-token path.
    if (op == ir::OpKind::GatedFfn && act_fn == "silu" && total % 16 == 0) {
      p.store_tokens = [&kb, out, total, out_index](const std::vector<llvm::Value*>& ts, llvm::Value* row,
                                                    const std::vector<llvm::Value*>& y) {
        llvm::Value* value = kb.b.CreateFMul(silu(kb, y[0], row, total), y[1]);
        const unsigned count = lanes(value) / static_cast<unsigned>(ts.size());
        for (size_t n = 0; n < ts.size(); ++n)
          store_vec(kb, lane_range(kb, value, static_cast<unsigned>(n) * count, count), out, out_index(ts[n], row));
      };
    }
    bool ok = true;
    kb.if_then(b.CreateICmpSLT(lo, hi), [&] {
      if (act != ir::DType::I8Q) {
        ok = emit_product_float(kb, p, error);
      } else {
        ok = p.weight == ir::DType::I2_S ? emit_product_i2s(kb, p, error) : emit_product_tq(kb, p, error);
      }
    });
    if (!ok) return false;
  }
  return true;
}

}  // namespace bitnet::codegen

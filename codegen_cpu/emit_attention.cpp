// Causal attention over query heads [begin, end) for all tokens of the call (attention, and
// rope_attention which first rotates q and k): KV append, then the scores, softmax and
// weighted sum of V per (token, head), reproducing ref::kv_store + ref::attention bit for bit.
//
// Why two passes and not an online softmax: the reference rounds the normalised probabilities
// to F16 before the V sum in decode mode, so p needs the final max and sum first (a single
// pass would differ by up to 2^-11 relative). The second pass re-reads only the score row
// (scratch, L1/L2); K and V are each streamed once per query block.
//
// The query heads of one KV head run together (up to 4, or 2 without AVX-512): each K row is
// converted from F16 once for all of them and each V chunk is loaded once, which halves the
// conversion work that bounds these loops.
//
// KV cache layout (see schema/abi.h): K [n_head_kv][kv_cells][head_dim] and V transposed in
// tiles of 32 cells, [n_head_kv][kv_cells / 32][head_dim][32], both F16.
#include "codegen_cpu/emit_attention.h"
#include "codegen_cpu/emitters.h"

#include <algorithm>
#include <cmath>

namespace bitnet::codegen {

void AttentionEmitter::emit() {
  q_in_ = kb_.in(0);
  k_in_ = s_.rope ? kb_.in(0) : kb_.in(1);
  v_in_ = s_.rope ? kb_.in(0) : kb_.in(2);
  out_ = kb_.out();
  k_cache_ = kb_.kv_k();
  v_cache_ = kb_.kv_v();
  cells_ = kb_.kv_cells();
  pos0_ = kb_.pos();
  tokens_ = kb_.n_tokens();
  scratch_ = kb_.scratch();
  // The window the reference attends: max(32, end rounded up to 32) cells, capped at the cache.
  llvm::Value* end_pos = b_.CreateAdd(pos0_, tokens_);
  llvm::Value* padded = b_.CreateMul(b_.CreateSDiv(b_.CreateAdd(end_pos, kb_.c64(31)), kb_.c64(32)), kb_.c64(32));
  padded = b_.CreateSelect(b_.CreateICmpSLT(padded, kb_.c64(32)), kb_.c64(32), padded);
  n_kv_ = kb_.min_i64(cells_, padded);
  append();
  // A call with one token is decode mode in the reference (F16 probabilities, vec_dot_f16).
  attend(b_.CreateICmpEQ(tokens_, kb_.c64(1)));
}

llvm::Value* AttentionEmitter::k_row(llvm::Value* g, llvm::Value* cell) {  // K[g][cell][0]
  return kb_.element_ptr(kb_.f16(), k_cache_,
                         b_.CreateMul(b_.CreateAdd(b_.CreateMul(g, cells_), cell), kb_.c64(s_.dim)));
}

// V is stored transposed in tiles of 32 cells: V[g][cell / 32][d][cell % 32]. Row (g, d) of a
// tile is 32 contiguous cells (a 16-cell load never crosses a tile), and the tiles of one KV
// head follow each other, so a window is one contiguous stream whatever kv_cells is.
llvm::Value* AttentionEmitter::v_row(llvm::Value* g, llvm::Value* d) {  // V[g][0][d][0]
  return kb_.element_ptr(
      kb_.f16(), v_cache_,
      b_.CreateAdd(b_.CreateMul(g, b_.CreateMul(cells_, kb_.c64(s_.dim))), b_.CreateMul(d, kb_.c64(32))));
}

llvm::Value* AttentionEmitter::v_at(llvm::Value* row, llvm::Value* cell) {  // V[g][cell / 32][d][cell % 32]
  llvm::Value* tile = b_.CreateMul(b_.CreateLShr(cell, 5), kb_.c64(32 * s_.dim));
  return kb_.element_ptr(kb_.f16(), row, b_.CreateAdd(tile, b_.CreateAnd(cell, kb_.c64(31))));
}

// q of token t, head h: rotated when fused, then rounded to F16 as the reference does before
// its F16 dot products.
llvm::Value* AttentionEmitter::query_vector(llvm::Value* t, llvm::Value* h, const RopeTable& table) {
  llvm::Value* src = kb_.element_ptr(
      kb_.f32(), q_in_, b_.CreateAdd(b_.CreateMul(t, kb_.c64(s_.q_stride)), b_.CreateMul(h, kb_.c64(s_.dim))));
  llvm::Value* q = s_.rope ? rope_head(kb_, s_.rope_params, table, src)
                           : load_vec(kb_, kb_.f32(), static_cast<unsigned>(s_.dim), src, kb_.c64(0), 4);
  return round_to_f16(kb_, q);
}

llvm::Value* AttentionEmitter::out_row(llvm::Value* t, llvm::Value* h) {
  return kb_.element_ptr(kb_.f32(), out_,
                         b_.CreateAdd(b_.CreateMul(t, kb_.c64(s_.heads * s_.dim)), b_.CreateMul(h, kb_.c64(s_.dim))));
}

// Stores k and v of every token for the KV heads the query heads [begin, end) use. The
// executor splits heads on whole groups, so each KV head is written by one thread; a
// sequential caller with other splits writes the same bytes twice, which is harmless.
void AttentionEmitter::append() {
  const auto dim = static_cast<unsigned>(s_.dim);
  llvm::Value* g0 = b_.CreateSDiv(kb_.begin(), kb_.c64(s_.group));
  llvm::Value* g1 = b_.CreateAdd(b_.CreateSDiv(b_.CreateSub(kb_.end(), kb_.c64(1)), kb_.c64(s_.group)), kb_.c64(1));
  g1 = b_.CreateSelect(b_.CreateICmpSLT(kb_.begin(), kb_.end()), g1, g0);
  kb_.loop(kb_.c64(0), tokens_, 1, [&](llvm::Value* t) {
    llvm::Value* cell = b_.CreateAdd(pos0_, t);
    RopeTable table;
    if (s_.rope) table = rope_table(kb_, s_.rope_params, cell);
    kb_.loop(g0, g1, 1, [&](llvm::Value* g) {
      llvm::Value* col = b_.CreateMul(g, kb_.c64(s_.dim));
      llvm::Value* row = b_.CreateMul(t, kb_.c64(s_.kv_stride));
      llvm::Value* k_src =
          kb_.element_ptr(kb_.f32(), k_in_, b_.CreateAdd(row, b_.CreateAdd(col, kb_.c64(s_.k_offset))));
      llvm::Value* k =
          s_.rope ? rope_head(kb_, s_.rope_params, table, k_src) : load_vec(kb_, kb_.f32(), dim, k_src, kb_.c64(0), 4);
      b_.CreateAlignedStore(b_.CreateFPTrunc(k, kb_.vec(kb_.f16(), dim)), k_row(g, cell), llvm::MaybeAlign(2));
      llvm::Value* v_src =
          kb_.element_ptr(kb_.f32(), v_in_, b_.CreateAdd(row, b_.CreateAdd(col, kb_.c64(s_.v_offset))));
      kb_.loop(kb_.c64(0), kb_.c64(s_.dim), 1, [&](llvm::Value* d) {
        llvm::Value* v = b_.CreateFPTrunc(kb_.load(kb_.f32(), v_src, d, 4), kb_.f16());
        kb_.store(v, v_at(v_row(g, d), cell), kb_.c64(0), 2);
      });
    });
  });
}

// Per token, the query heads of each KV head in blocks of up to 4 (2 without AVX-512).
void AttentionEmitter::attend(llvm::Value* decode) {
  const unsigned block = s_.dim % 8 != 0 ? 1u : kb_.target.vector_bits() >= 512 ? kMaxBlock : 2u;
  const auto per_block = static_cast<unsigned>(std::min<int64_t>(s_.group, block));
  const int64_t full_blocks = s_.group / per_block;
  const auto rest = static_cast<unsigned>(s_.group % per_block);
  llvm::Value* g0 = b_.CreateSDiv(kb_.begin(), kb_.c64(s_.group));
  llvm::Value* g1 = b_.CreateAdd(b_.CreateSDiv(b_.CreateSub(kb_.end(), kb_.c64(1)), kb_.c64(s_.group)), kb_.c64(1));
  g1 = b_.CreateSelect(b_.CreateICmpSLT(kb_.begin(), kb_.end()), g1, g0);
  kb_.loop(kb_.c64(0), tokens_, 1, [&](llvm::Value* t) {
    Token token{t, b_.CreateAdd(pos0_, t), nullptr, decode, {}};
    if (s_.rope) token.table = rope_table(kb_, s_.rope_params, token.pos);
    // Decode covers the whole window (vec_dot_f16's 64-cell chunks need the zero lanes past
    // the position); prompt mode stops at the 16-cell block holding the position: later
    // cells have p = 0 exactly and add exact zeros to the reference's sums.
    llvm::Value* block_end =
        b_.CreateMul(b_.CreateSDiv(b_.CreateAdd(token.pos, kb_.c64(16)), kb_.c64(16)), kb_.c64(16));
    token.window = b_.CreateSelect(decode, n_kv_, kb_.min_i64(block_end, n_kv_));
    // A block partly outside [begin, end) still runs whole (an unaligned split only costs
    // time); the outputs of its outside heads go to scratch, never to another thread's rows.
    auto run_block = [&](llvm::Value* g, llvm::Value* first, unsigned n) {
      llvm::Value* overlaps = b_.CreateAnd(b_.CreateICmpSLT(first, kb_.end()),
                                           b_.CreateICmpSGT(b_.CreateAdd(first, kb_.c64(n)), kb_.begin()));
      kb_.if_then(overlaps, [&] { query_block(token, g, first, n); });
    };
    kb_.loop(g0, g1, 1, [&](llvm::Value* g) {
      llvm::Value* group_first = b_.CreateMul(g, kb_.c64(s_.group));
      kb_.loop(kb_.c64(0), kb_.c64(full_blocks), 1, [&](llvm::Value* k) {
        run_block(g, b_.CreateAdd(group_first, b_.CreateMul(k, kb_.c64(per_block))), per_block);
      });
      if (rest > 0) run_block(g, b_.CreateAdd(group_first, kb_.c64(full_blocks * per_block)), rest);
    });
  });
}

// Query heads [first, first + n) of KV head g for one token. Sharing the KV head, they share
// each K row's conversion from F16 and each V chunk's load.
void AttentionEmitter::query_block(const Token& token, llvm::Value* g, llvm::Value* first, unsigned n) {
  std::vector<Query> queries(n);
  for (unsigned i = 0; i < n; ++i) {
    llvm::Value* h = b_.CreateAdd(first, kb_.c64(i));
    llvm::Value* probs = kb_.element_ptr(kb_.f32(), scratch_, b_.CreateMul(cells_, kb_.c64(i)));
    llvm::Value* out = out_row(token.t, h);
    if (n > 1) {
      llvm::Value* mine = b_.CreateAnd(b_.CreateICmpSLE(kb_.begin(), h), b_.CreateICmpSLT(h, kb_.end()));
      llvm::Value* spare = kb_.element_ptr(kb_.f32(), scratch_,
                                           b_.CreateAdd(b_.CreateMul(cells_, kb_.c64(kMaxBlock)), kb_.c64(i * s_.dim)));
      out = b_.CreateSelect(mine, out, spare);
    }
    queries[i] = Query{query_vector(token.t, h, token.table), probs, out};
  }
  llvm::Value* visible = b_.CreateAdd(token.pos, kb_.c64(1));
  const std::vector<llvm::Value*> max = scores(g, queries, visible);
  for (unsigned i = 0; i < n; ++i) normalise(queries[i].probs, max[i], visible, token.window, token.decode);
  kb_.if_then(token.decode, [&] { weighted_sum_decode(g, queries); });
  kb_.if_then(b_.CreateNot(token.decode), [&] { weighted_sum_prompt(g, queries, token.window); });
}

// probs[j] = float(q . k_j * scale) + 0 for cells j < visible (ref::vec_dot_f16 on F16 q and
// K; adding the zero mask is what turns -0 into +0 in the reference). Returns each row's max.
// Each K row is converted from F16 once for all queries. Whole chunks of 16 cells go together:
// head dims that are a multiple of 64 (no double tail) do their 16 tree sums at once
// (TreeSum16x16), other dims go through scores_by_cell16; the scale, store and max then run on
// whole vectors.
std::vector<llvm::Value*> AttentionEmitter::scores(llvm::Value* g, const std::vector<Query>& queries,
                                                   llvm::Value* visible) {
  const auto dim = static_cast<unsigned>(s_.dim);
  auto k_at = [&](llvm::Value* j) {
    return b_.CreateFPExt(load_vec(kb_, kb_.f16(), dim, k_row(g, j), kb_.c64(0), 2), kb_.vec(kb_.f32(), dim));
  };
  // The unscaled scores of cells j .. j + 15, one vector per query.
  auto dots16 = [&](llvm::Value* j) {
    if (s_.dim % 64 != 0) return scores_by_cell16(g, j, queries);
    std::vector<TreeSum16x16> sums(queries.size(), TreeSum16x16(kb_));
    for (int c = 0; c < 16; ++c) {
      llvm::Value* k = k_at(b_.CreateAdd(j, kb_.c64(c)));
      for (size_t i = 0; i < queries.size(); ++i) sums[i].push(dot_lanes(kb_, k, queries[i].q, s_.dim));
    }
    std::vector<llvm::Value*> dots;
    for (TreeSum16x16& sum : sums) dots.push_back(sum.finish());
    return dots;
  };
  llvm::Value* start = b_.CreateAnd(visible, kb_.c64(~int64_t{15}));
  std::vector<llvm::Value*> init(queries.size(), kb_.splat(16, kb_.cf32(-INFINITY)));
  std::vector<llvm::Value*> lanes =
      kb_.loop_carried(kb_.c64(0), start, 16, init, [&](llvm::Value* j, const std::vector<llvm::Value*>& m) {
        const std::vector<llvm::Value*> dots = dots16(j);
        std::vector<llvm::Value*> next(queries.size());
        for (size_t i = 0; i < queries.size(); ++i) {
          llvm::Value* w =
              b_.CreateFAdd(b_.CreateFMul(dots[i], kb_.splat(16, kb_.cf32(s_.scale))), kb_.splat(16, kb_.cf32(0.0f)));
          b_.CreateAlignedStore(w, kb_.element_ptr(kb_.f32(), queries[i].probs, j), llvm::MaybeAlign(4));
          next[i] = b_.CreateSelect(b_.CreateFCmpOGT(w, m[i]), w, m[i]);
        }
        return next;
      });
  // The running max over the lanes: the same select, so NaN scores are skipped as before.
  std::vector<llvm::Value*> max(queries.size(), kb_.cf32(-INFINITY));
  for (size_t i = 0; i < queries.size(); ++i) {
    for (unsigned l = 0; l < 16; ++l) {
      llvm::Value* w = b_.CreateExtractElement(lanes[i], static_cast<uint64_t>(l));
      max[i] = b_.CreateSelect(b_.CreateFCmpOGT(w, max[i]), w, max[i]);
    }
  }
  // The cells of the last, partial chunk one by one.
  return kb_.loop_carried(start, visible, 1, max, [&](llvm::Value* j, const std::vector<llvm::Value*>& m) {
    llvm::Value* k = k_at(j);
    std::vector<llvm::Value*> next(queries.size());
    for (size_t i = 0; i < queries.size(); ++i) {
      llvm::Value* w =
          b_.CreateFAdd(b_.CreateFMul(dot_exact(kb_, k, queries[i].q, s_.dim), kb_.cf32(s_.scale)), kb_.cf32(0.0f));
      kb_.store(w, queries[i].probs, j, 4);
      next[i] = b_.CreateSelect(b_.CreateFCmpOGT(w, m[i]), w, m[i]);
    }
    return next;
  });
}

// Head dims that are not a multiple of 64, where vec_dot_f16 ends in a double tail: per cell,
// the float tree sum of the whole 64-chunks (none below 64) widened to double, then the tail's
// products k[d] * q[d] (exact in float: both are F16 values) added in d order, then rounded to
// float, exactly as dot_exact does, but for cells j .. j + 15 at once with the cells in the
// lanes (16 double sums per query). K[cell][d] and K[cell][d + 1] of the 16 cells are one 32-bit
// gather (consecutive cells' rows are head_dim * 2 bytes apart), shared by the queries. The
// per-cell path spent most of its time on dependent scalar double adds (32 per cell at dim 32).
std::vector<llvm::Value*> AttentionEmitter::scores_by_cell16(llvm::Value* g, llvm::Value* j,
                                                             const std::vector<Query>& queries) {
  llvm::VectorType* f64x16 = kb_.vec(kb_.f64(), 16);
  std::vector<llvm::Constant*> offsets;
  for (int64_t c = 0; c < 16; ++c) offsets.push_back(kb_.c64(c * s_.dim * 2));
  llvm::Value* rows = b_.CreateGEP(b_.getInt8Ty(), k_row(g, j), llvm::ConstantVector::get(offsets));
  std::vector<llvm::Value*> sums(queries.size(), llvm::ConstantFP::get(f64x16, 0.0));
  const int64_t vector_end = s_.dim - s_.dim % 64;
  if (vector_end > 0) {
    std::vector<TreeSum16x16> trees(queries.size(), TreeSum16x16(kb_));
    for (int64_t c = 0; c < 16; ++c) {
      llvm::Value* k = b_.CreateFPExt(
          load_vec(kb_, kb_.f16(), static_cast<unsigned>(s_.dim), k_row(g, b_.CreateAdd(j, kb_.c64(c))), kb_.c64(0), 2),
          kb_.vec(kb_.f32(), static_cast<unsigned>(s_.dim)));
      for (size_t i = 0; i < queries.size(); ++i) trees[i].push(dot_lanes(kb_, k, queries[i].q, s_.dim));
    }
    for (size_t i = 0; i < queries.size(); ++i) sums[i] = b_.CreateFPExt(trees[i].finish(), f64x16);
  }
  // k * q is exact in float (two F16 values), so double(k * q) + sum rounds once, exactly as
  // fma(double(k), double(q), sum) does: one double FMA per lane instead of a float multiply, a
  // widening and a double add, with k widened once for all the queries (where the target has
  // FMA; elsewhere llvm.fma would be a libm call per lane).
  const bool fused = kb_.target.fma;
  auto add = [&](llvm::Value* k, int64_t d) {  // k: <16 x float>, K[j + c][d] in lane c
    llvm::Value* k_wide = fused ? b_.CreateFPExt(k, f64x16) : nullptr;
    for (size_t i = 0; i < queries.size(); ++i) {
      llvm::Value* q_elem = b_.CreateExtractElement(queries[i].q, static_cast<uint64_t>(d));
      if (fused) {
        llvm::Value* q = b_.CreateVectorSplat(16, b_.CreateFPExt(q_elem, kb_.f64()));
        sums[i] = kb_.fma(k_wide, q, sums[i]);
      } else {
        sums[i] = b_.CreateFAdd(sums[i], b_.CreateFPExt(b_.CreateFMul(k, b_.CreateVectorSplat(16, q_elem)), f64x16));
      }
    }
  };
  llvm::VectorType* i16x16 = kb_.vec(b_.getInt16Ty(), 16);
  llvm::VectorType* f32x16 = kb_.vec(kb_.f32(), 16);
  auto to_float = [&](llvm::Value* halves) {
    return b_.CreateFPExt(b_.CreateBitCast(halves, kb_.vec(kb_.f16(), 16)), f32x16);
  };
  for (int64_t d = vector_end; d < s_.dim; d += 2) {
    llvm::Value* at = b_.CreateGEP(b_.getInt8Ty(), rows, kb_.c64(d * 2));
    llvm::Value* pair = b_.CreateMaskedGather(kb_.vec(b_.getInt32Ty(), 16), at, llvm::Align(2));
    add(to_float(b_.CreateTrunc(pair, i16x16)), d);
    add(to_float(b_.CreateTrunc(b_.CreateLShr(pair, 16), i16x16)), d + 1);
  }
  std::vector<llvm::Value*> out;
  for (llvm::Value* sum : sums) out.push_back(b_.CreateFPTrunc(sum, f32x16));
  return out;
}

// probs[0, window) = softmax of the scores with cells from `visible` on masked (-inf), as
// ref::softmax: e = expf_approx(w - max), 16-lane tree sums added in double, p = e * float(1 / sum);
// then rounded to F16 in decode mode. window is a multiple of 16.
void AttentionEmitter::normalise(llvm::Value* probs, llvm::Value* max, llvm::Value* visible, llvm::Value* window,
                                 llvm::Value* round_to_half) {
  kb_.loop(visible, window, 1, [&](llvm::Value* j) { kb_.store(kb_.cf32(-INFINITY), probs, j, 4); });
  llvm::Value* max_v = b_.CreateVectorSplat(16, max);
  llvm::Value* sum = kb_.loop_carried(
      kb_.c64(0), window, 16, {llvm::ConstantFP::get(kb_.f64(), 0.0)},
      [&](llvm::Value* i, const std::vector<llvm::Value*>& s) {
        llvm::Value* e = ggml_expf(kb_, b_.CreateFSub(load_vec(kb_, kb_.f32(), 16, probs, i, 4), max_v));
        b_.CreateAlignedStore(e, kb_.element_ptr(kb_.f32(), probs, i), llvm::MaybeAlign(4));
        return std::vector<llvm::Value*>{b_.CreateFAdd(s[0], b_.CreateFPExt(tree_sum16(kb_, e), kb_.f64()))};
      })[0];
  llvm::Value* inv = b_.CreateVectorSplat(
      16, b_.CreateFPExt(b_.CreateFPTrunc(b_.CreateFDiv(llvm::ConstantFP::get(kb_.f64(), 1.0), sum), kb_.f32()),
                         kb_.f64()));
  llvm::VectorType* f64x16 = kb_.vec(kb_.f64(), 16);
  kb_.loop(kb_.c64(0), window, 16, [&](llvm::Value* i) {
    // float(e * inv), computed in double (exact) and rounded once, which is the float product:
    // a float multiply with a subnormal e (wide score ranges give many) would cost a microcode
    // assist per vector. The fence keeps LLVM from folding this back into a float multiply.
    llvm::Value* wide = b_.CreateFMul(b_.CreateFPExt(load_vec(kb_, kb_.f32(), 16, probs, i, 4), f64x16), inv);
    llvm::Value* p =
        b_.CreateFPTrunc(kb_.intrinsic(llvm::Intrinsic::arithmetic_fence, {f64x16}, {wide}), kb_.vec(kb_.f32(), 16));
    p = b_.CreateSelect(round_to_half, round_to_f16(kb_, p), p);
    b_.CreateAlignedStore(p, kb_.element_ptr(kb_.f32(), probs, i), llvm::MaybeAlign(4));
  });
}

bool emit_attention(KernelBuilder& kb, std::string* error) {
  const KernelDesc& d = kb.desc;
  AttentionShape s;
  s.heads = d.attr_int("n_head");
  s.kv_heads = d.attr_int("n_head_kv");
  s.dim = d.attr_int("head_dim");
  if (s.heads <= 0 || s.kv_heads <= 0 || s.dim <= 0 || s.heads % s.kv_heads != 0 || s.dim % 2 != 0) {
    if (error) *error = "attention: bad head counts";
    return false;
  }
  s.group = s.heads / s.kv_heads;
  s.rope = d.op == ir::OpKind::RopeAttention;
  if (s.rope) {
    s.rope_params = rope_params(d);
    s.q_stride = s.kv_stride = (s.heads + 2 * s.kv_heads) * s.dim;
    s.k_offset = s.heads * s.dim;
    s.v_offset = (s.heads + s.kv_heads) * s.dim;
  } else {
    s.q_stride = s.heads * s.dim;
    s.kv_stride = s.kv_heads * s.dim;
  }
  s.scale = 1.0f / std::sqrt(static_cast<float>(s.dim));
  AttentionEmitter(kb, s).emit();
  return true;
}

}  // namespace bitnet::codegen

// Causal attention over query heads [begin, end) for all tokens of the call (attention, and
// rope_attention which first rotates q and k): KV append, then per head and token the scores,
// softmax and weighted sum of V, reproducing ref::kv_store + ref::attention bit for bit.
//
// Why two passes and not an online softmax: the reference rounds the normalised probabilities
// to F16 before the V sum in decode mode, so p needs the final max and sum first (a single
// pass would differ by up to 2^-11 relative). The second pass re-reads only the score row
// (scratch, L1/L2); K and V are each streamed once.
//
// KV cache layout (kernel_abi.h): K [n_head_kv][kv_cells][head_dim] F16 (each KV head's rows
// contiguous, so a thread streams its own heads sequentially), V [n_head_kv][head_dim][kv_cells]
// F16 (transposed as in the reference: each output element is a dot over contiguous cells).
#include "codegen_cpu/emit_math.h"
#include "codegen_cpu/emitters.h"

#include <cmath>

namespace bitnet::codegen {
namespace {

struct Shape {
  int64_t heads = 0, kv_heads = 0, dim = 0, group = 0;
  bool rope = false;
  RopeParams rope_params;
  // Row strides (floats) and column offsets of q, k and v in their inputs.
  int64_t q_stride = 0, kv_stride = 0, k_offset = 0, v_offset = 0;
  float scale = 0;
};

class AttentionEmitter {
 public:
  AttentionEmitter(KernelBuilder& kb, const Shape& s) : kb_(kb), b_(kb.b), s_(s) {}

  void emit() {
    const bool fused = s_.rope;
    q_in_ = kb_.in(0);
    k_in_ = fused ? kb_.in(0) : kb_.in(1);
    v_in_ = fused ? kb_.in(0) : kb_.in(2);
    out_ = kb_.out();
    k_cache_ = kb_.kv_k();
    v_cache_ = kb_.kv_v();
    cells_ = kb_.kv_cells();
    pos0_ = kb_.pos();
    tokens_ = kb_.n_tokens();
    probs_ = kb_.scratch();
    // The window the reference attends: max(32, end rounded up to 32) cells, capped at the cache.
    llvm::Value* end_pos = b_.CreateAdd(pos0_, tokens_);
    llvm::Value* padded = b_.CreateMul(b_.CreateSDiv(b_.CreateAdd(end_pos, kb_.c64(31)), kb_.c64(32)), kb_.c64(32));
    padded = b_.CreateSelect(b_.CreateICmpSLT(padded, kb_.c64(32)), kb_.c64(32), padded);
    n_kv_ = kb_.min_i64(cells_, padded);
    append();
    attend();
  }

 private:
  llvm::Value* k_row(llvm::Value* g, llvm::Value* cell) {  // K[g][cell][0]
    return kb_.element_ptr(kb_.f16(), k_cache_, b_.CreateMul(b_.CreateAdd(b_.CreateMul(g, cells_), cell), kb_.c64(s_.dim)));
  }
  llvm::Value* v_row(llvm::Value* g, llvm::Value* d) {  // V[g][d][0]
    return kb_.element_ptr(kb_.f16(), v_cache_, b_.CreateMul(b_.CreateAdd(b_.CreateMul(g, kb_.c64(s_.dim)), d), cells_));
  }
  llvm::Type* f16_vec(unsigned n) { return kb_.vec(kb_.f16(), n); }
  llvm::Value* fext(llvm::Value* halves) {
    return b_.CreateFPExt(halves, kb_.vec(kb_.f32(), llvm::cast<llvm::FixedVectorType>(halves->getType())->getNumElements()));
  }

  // Stores k and v of every token for the KV heads the query heads [begin, end) use. The
  // executor splits heads on whole groups, so each KV head is written by one thread; a
  // sequential caller with other splits writes the same bytes twice, which is harmless.
  void append() {
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
        llvm::Value* k_src = kb_.element_ptr(kb_.f32(), k_in_, b_.CreateAdd(b_.CreateMul(t, kb_.c64(s_.kv_stride)), b_.CreateAdd(col, kb_.c64(s_.k_offset))));
        llvm::Value* k = s_.rope ? rope_head(kb_, s_.rope_params, table, k_src) : load_vec(kb_, kb_.f32(), dim, k_src, kb_.c64(0), 4);
        b_.CreateAlignedStore(b_.CreateFPTrunc(k, f16_vec(dim)), k_row(g, cell), llvm::MaybeAlign(2));
        llvm::Value* v_src = kb_.element_ptr(kb_.f32(), v_in_, b_.CreateAdd(b_.CreateMul(t, kb_.c64(s_.kv_stride)), b_.CreateAdd(col, kb_.c64(s_.v_offset))));
        kb_.loop(kb_.c64(0), kb_.c64(s_.dim), 1, [&](llvm::Value* d) {
          llvm::Value* v = b_.CreateFPTrunc(kb_.load(kb_.f32(), v_src, d, 4), kb_.f16());
          kb_.store(v, v_row(g, d), cell, 2);
        });
      });
    });
  }

  void attend() {
    llvm::Value* decode = b_.CreateICmpEQ(tokens_, kb_.c64(1));
    kb_.loop(kb_.c64(0), tokens_, 1, [&](llvm::Value* t) {
      llvm::Value* pos = b_.CreateAdd(pos0_, t);
      RopeTable table;
      if (s_.rope) table = rope_table(kb_, s_.rope_params, pos);
      // Cells the softmax and V sum cover: the whole window in decode (vec_dot_f16 chunks of
      // 64 need the zero lanes), else up to the 16-cell block holding pos: later cells have
      // p = 0 exactly and add exact zeros to the reference's sums.
      llvm::Value* block_end = b_.CreateMul(b_.CreateSDiv(b_.CreateAdd(pos, kb_.c64(16)), kb_.c64(16)), kb_.c64(16));
      llvm::Value* window = b_.CreateSelect(decode, n_kv_, kb_.min_i64(block_end, n_kv_));
      kb_.loop(kb_.begin(), kb_.end(), 1, [&](llvm::Value* h) {
        llvm::Value* g = b_.CreateSDiv(h, kb_.c64(s_.group));
        llvm::Value* q_src = kb_.element_ptr(kb_.f32(), q_in_, b_.CreateAdd(b_.CreateMul(t, kb_.c64(s_.q_stride)), b_.CreateMul(h, kb_.c64(s_.dim))));
        llvm::Value* q = s_.rope ? rope_head(kb_, s_.rope_params, table, q_src)
                                 : load_vec(kb_, kb_.f32(), static_cast<unsigned>(s_.dim), q_src, kb_.c64(0), 4);
        // The reference converts q to F16 before the F16 dot products.
        q = round_to_f16(kb_, q);
        softmax_row(g, q, pos, window, decode);
        llvm::Value* out = kb_.element_ptr(kb_.f32(), out_, b_.CreateAdd(b_.CreateMul(t, kb_.c64(s_.heads * s_.dim)), b_.CreateMul(h, kb_.c64(s_.dim))));
        kb_.if_then(decode, [&] { weighted_sum_decode(g, out); });
        kb_.if_then(b_.CreateNot(decode), [&] { weighted_sum_prompt(g, out, window); });
      });
    });
  }

  // probs[0, window) = softmax(scores * scale + causal mask), F16-rounded in decode mode.
  void softmax_row(llvm::Value* g, llvm::Value* q, llvm::Value* pos, llvm::Value* window, llvm::Value* decode) {
    llvm::Value* visible = b_.CreateAdd(pos, kb_.c64(1));
    llvm::Value* max = kb_.loop_carried(kb_.c64(0), visible, 1, {kb_.cf32(-INFINITY)}, [&](llvm::Value* j, const std::vector<llvm::Value*>& m) {
      llvm::Value* score = dot_f16_static(kb_, k_row(g, j), q, s_.dim);
      // w = float(s * scale) + mask (0 here; adding it is what turns -0 into +0 in the reference).
      llvm::Value* w = b_.CreateFAdd(b_.CreateFMul(score, kb_.cf32(s_.scale)), kb_.cf32(0.0f));
      kb_.store(w, probs_, j, 4);
      return std::vector<llvm::Value*>{b_.CreateSelect(b_.CreateFCmpOGT(w, m[0]), w, m[0])};
    })[0];
    kb_.loop(visible, window, 1, [&](llvm::Value* j) { kb_.store(kb_.cf32(-INFINITY), probs_, j, 4); });
    llvm::Value* max_v = b_.CreateVectorSplat(16, max);
    llvm::Value* sum = kb_.loop_carried(kb_.c64(0), window, 16, {llvm::ConstantFP::get(kb_.f64(), 0.0)}, [&](llvm::Value* i, const std::vector<llvm::Value*>& s) {
      llvm::Value* e = ggml_expf(kb_, b_.CreateFSub(load_vec(kb_, kb_.f32(), 16, probs_, i, 4), max_v));
      b_.CreateAlignedStore(e, kb_.element_ptr(kb_.f32(), probs_, i), llvm::MaybeAlign(4));
      return std::vector<llvm::Value*>{b_.CreateFAdd(s[0], b_.CreateFPExt(tree_sum16(kb_, e), kb_.f64()))};
    })[0];
    llvm::Value* inv = b_.CreateVectorSplat(16, b_.CreateFPTrunc(b_.CreateFDiv(llvm::ConstantFP::get(kb_.f64(), 1.0), sum), kb_.f32()));
    kb_.loop(kb_.c64(0), window, 16, [&](llvm::Value* i) {
      llvm::Value* p = b_.CreateFMul(load_vec(kb_, kb_.f32(), 16, probs_, i, 4), inv);
      p = b_.CreateSelect(decode, round_to_f16(kb_, p), p);
      b_.CreateAlignedStore(p, kb_.element_ptr(kb_.f32(), probs_, i), llvm::MaybeAlign(4));
    });
  }

  // Rows of V handled together: independent FMA chains hide the FMA latency.
  unsigned rows_per_step(unsigned wanted) const {
    unsigned u = wanted;
    while (u > 1 && s_.dim % u != 0) u /= 2;
    return u;
  }

  // Decode: ref::vec_dot_f16(V row, f16(p), n_kv) per output element.
  void weighted_sum_decode(llvm::Value* g, llvm::Value* out) {
    const unsigned rows = rows_per_step(kb_.target.vector_bits() >= 512 ? 4 : 2);
    llvm::Value* vector_end = b_.CreateSub(n_kv_, b_.CreateSRem(n_kv_, kb_.c64(64)));
    kb_.loop(kb_.c64(0), kb_.c64(s_.dim), rows, [&](llvm::Value* d) {
      std::vector<llvm::Value*> v(rows);
      for (unsigned u = 0; u < rows; ++u) v[u] = v_row(g, b_.CreateAdd(d, kb_.c64(u)));
      std::vector<llvm::Value*> init(4 * rows, kb_.splat(16, kb_.cf32(0.0f)));
      std::vector<llvm::Value*> acc = kb_.loop_carried(kb_.c64(0), vector_end, 64, init, [&](llvm::Value* i, const std::vector<llvm::Value*>& a) {
        std::vector<llvm::Value*> next(a.size());
        for (unsigned r = 0; r < 4; ++r) {
          llvm::Value* at = b_.CreateAdd(i, kb_.c64(16 * r));
          llvm::Value* p = load_vec(kb_, kb_.f32(), 16, probs_, at, 4);
          for (unsigned u = 0; u < rows; ++u) next[4 * u + r] = kb_.fma(fext(load_vec(kb_, kb_.f16(), 16, v[u], at, 2)), p, a[4 * u + r]);
        }
        return next;
      });
      std::vector<llvm::Value*> sums(rows);
      for (unsigned u = 0; u < rows; ++u) {
        llvm::Value* a0 = b_.CreateFAdd(acc[4 * u], acc[4 * u + 2]);
        llvm::Value* a1 = b_.CreateFAdd(acc[4 * u + 1], acc[4 * u + 3]);
        sums[u] = b_.CreateFPExt(tree_sum16(kb_, b_.CreateFAdd(a0, a1)), kb_.f64());
      }
      // The n_kv % 64 leftovers: float products added in double, in order.
      sums = kb_.loop_carried(vector_end, n_kv_, 1, sums, [&](llvm::Value* j, const std::vector<llvm::Value*>& s) {
        llvm::Value* p = kb_.load(kb_.f32(), probs_, j, 4);
        std::vector<llvm::Value*> next(rows);
        for (unsigned u = 0; u < rows; ++u) {
          llvm::Value* product = b_.CreateFMul(b_.CreateFPExt(kb_.load(kb_.f16(), v[u], j, 2), kb_.f32()), p);
          next[u] = b_.CreateFAdd(s[u], b_.CreateFPExt(product, kb_.f64()));
        }
        return next;
      });
      for (unsigned u = 0; u < rows; ++u) kb_.store(b_.CreateFPTrunc(sums[u], kb_.f32()), out, b_.CreateAdd(d, kb_.c64(u)), 4);
    });
  }

  // Prompt: llamafile tinyBLAS, one 16-lane FMA chain over the cells with F32 p, tree-summed.
  void weighted_sum_prompt(llvm::Value* g, llvm::Value* out, llvm::Value* window) {
    const unsigned rows = rows_per_step(kb_.target.vector_bits() >= 512 ? 8 : 4);
    kb_.loop(kb_.c64(0), kb_.c64(s_.dim), rows, [&](llvm::Value* d) {
      std::vector<llvm::Value*> v(rows);
      for (unsigned u = 0; u < rows; ++u) v[u] = v_row(g, b_.CreateAdd(d, kb_.c64(u)));
      std::vector<llvm::Value*> init(rows, kb_.splat(16, kb_.cf32(0.0f)));
      std::vector<llvm::Value*> acc = kb_.loop_carried(kb_.c64(0), window, 16, init, [&](llvm::Value* i, const std::vector<llvm::Value*>& a) {
        llvm::Value* p = load_vec(kb_, kb_.f32(), 16, probs_, i, 4);
        std::vector<llvm::Value*> next(rows);
        for (unsigned u = 0; u < rows; ++u) next[u] = kb_.fma(fext(load_vec(kb_, kb_.f16(), 16, v[u], i, 2)), p, a[u]);
        return next;
      });
      for (unsigned u = 0; u < rows; ++u) kb_.store(tree_sum16(kb_, acc[u]), out, b_.CreateAdd(d, kb_.c64(u)), 4);
    });
  }

  KernelBuilder& kb_;
  llvm::IRBuilder<>& b_;
  const Shape& s_;
  llvm::Value *q_in_ = nullptr, *k_in_ = nullptr, *v_in_ = nullptr, *out_ = nullptr;
  llvm::Value *k_cache_ = nullptr, *v_cache_ = nullptr, *cells_ = nullptr, *pos0_ = nullptr, *tokens_ = nullptr;
  llvm::Value *probs_ = nullptr, *n_kv_ = nullptr;
};

}  // namespace

bool emit_attention(KernelBuilder& kb, std::string* error) {
  const KernelDesc& d = kb.desc;
  Shape s;
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

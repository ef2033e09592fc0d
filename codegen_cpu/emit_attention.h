// The attention emitter's state, shared by its two translation units: emit_attention.cpp (KV
// append, query loops, scores and softmax) and emit_attention_sum.cpp (the weighted sums of
// V). Internal to codegen_cpu.
#pragma once

#include "codegen_cpu/emit_rope.h"

#include <vector>

namespace bitnet::codegen {

struct AttentionShape {
  int64_t heads = 0, kv_heads = 0, dim = 0, group = 0;  // group = query heads per KV head
  bool rope = false;
  RopeParams rope_params;
  // Row strides (floats) of the q and k/v inputs, and the column offsets of k and v.
  int64_t q_stride = 0, kv_stride = 0, k_offset = 0, v_offset = 0;
  float scale = 0;  // 1 / sqrtf(head_dim)
};

// Query heads of one KV head processed together (AVX-512; 2 with 256-bit vectors). The
// scratch of a thread holds, for a block: kMaxBlock probability rows (float[kv_cells]),
// kMaxBlock spare output rows (float[head_dim], for heads outside the call's range) and
// kMaxBlock rows of double sums (double[head_dim]): 16 * kv_cells + 48 * head_dim bytes.
inline constexpr unsigned kMaxBlock = 4;

// One row of attention: a (token, head) pair.
struct Query {
  llvm::Value* q = nullptr;      // <head_dim x float>, values already rounded to F16
  llvm::Value* probs = nullptr;  // its row of scores, then probabilities (scratch, float[kv_cells])
  llvm::Value* out = nullptr;    // its output (float[head_dim])
};

// The token a block of queries belongs to.
struct Token {
  llvm::Value* t = nullptr;       // row in the call
  llvm::Value* pos = nullptr;     // its position
  llvm::Value* window = nullptr;  // cells its softmax and V sum cover (a multiple of 16)
  llvm::Value* decode = nullptr;  // i1: a one-token call (the reference's decode numerics)
  RopeTable table;                // fused rope: the angles of pos
};

class AttentionEmitter {
 public:
  AttentionEmitter(KernelBuilder& kb, const AttentionShape& s) : kb_(kb), b_(kb.b), s_(s) {}
  void emit();

 private:
  // ---- emit_attention.cpp ----
  llvm::Value* k_row(llvm::Value* g, llvm::Value* cell);
  llvm::Value* v_row(llvm::Value* g, llvm::Value* d);
  llvm::Value* v_at(llvm::Value* row, llvm::Value* cell);
  llvm::Value* query_vector(llvm::Value* t, llvm::Value* h, const RopeTable& table);
  llvm::Value* out_row(llvm::Value* t, llvm::Value* h);
  void append();
  void attend(llvm::Value* decode);
  void query_block(const Token& token, llvm::Value* g, llvm::Value* first_head, unsigned n);
  std::vector<llvm::Value*> scores(llvm::Value* g, const std::vector<Query>& queries, llvm::Value* visible);
  // For head dims that are not a multiple of 64: <16 x float> per query, the unscaled dot
  // products of cells j .. j + 15.
  std::vector<llvm::Value*> scores_by_cell16(llvm::Value* g, llvm::Value* j, const std::vector<Query>& queries);
  void normalise(llvm::Value* probs, llvm::Value* max, llvm::Value* visible, llvm::Value* window,
                 llvm::Value* round_to_half);

  // ---- emit_attention_sum.cpp ----
  void weighted_sum_decode(llvm::Value* g, const std::vector<Query>& queries);
  void weighted_sum_decode_rows(llvm::Value* g, const Query& query);
  std::vector<llvm::Value*> chunk_sums(const std::vector<llvm::Value*>& rows, const std::vector<Query>& queries,
                                       llvm::Value* vector_end);
  std::vector<std::vector<llvm::Value*>> tail_32(const std::vector<llvm::Value*>& rows,
                                                 const std::vector<Query>& queries, llvm::Value* start,
                                                 std::vector<std::vector<llvm::Value*>> acc);
  std::vector<llvm::Value*> transpose8(const std::vector<llvm::Value*>& r);
  void weighted_sum_prompt(llvm::Value* g, const std::vector<Query>& queries, llvm::Value* window);
  llvm::Value* fext(llvm::Value* halves);
  llvm::Value* sums_area();

  KernelBuilder& kb_;
  llvm::IRBuilder<>& b_;
  const AttentionShape& s_;
  llvm::Value *q_in_ = nullptr, *k_in_ = nullptr, *v_in_ = nullptr, *out_ = nullptr;
  llvm::Value *k_cache_ = nullptr, *v_cache_ = nullptr, *cells_ = nullptr, *pos0_ = nullptr, *tokens_ = nullptr;
  llvm::Value *scratch_ = nullptr, *n_kv_ = nullptr;
};

}  // namespace bitnet::codegen

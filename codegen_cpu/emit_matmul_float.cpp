// Float-accumulating products: F32, F16 (the tied LM head), BF16 and the block-quantized
// formats times f32 activations. Each weight block is decoded into float registers (never
// into memory) and multiplied into f32 FMA accumulators; the decode path keeps a few rows
// and two accumulators per row in flight (FMA latency), the prefill path reuses every
// decoded block for a tile of tokens, and several one-token rows (batched decode) reuse it
// for a group of them, each keeping its one-token arithmetic. Summation order differs from
// the reference, so results agree to float rounding (about 1e-6 relative), not bit for bit;
// F16 activations are rounded to F16 exactly where the reference rounds them (one token, or
// K % 16 != 0).
#include "codegen_cpu/emit_matmul.h"

#include <algorithm>

namespace bitnet::codegen {

// ---- helpers (emit_matmul.h) ----

llvm::Value* half_to_float(KernelBuilder& kb, llvm::Value* bits) {
  auto& b = kb.b;
  const unsigned n = llvm::cast<llvm::FixedVectorType>(bits->getType())->getNumElements();
  if ((kb.target.f16c || kb.target.avx512fp16) && !matmul_tuning().portable_only)
    return b.CreateFPExt(b.CreateBitCast(bits, kb.vec(kb.f16(), n)), kb.vec(kb.f32(), n));
  // Exponent and mantissa moved into float position and rescaled by 2^112 (exact, also for
  // subnormal halves); inf/NaN get the all-ones float exponent; the sign goes back on last.
  llvm::VectorType* i32 = kb.vec(kb.i32(), n);
  auto c = [&](uint32_t v) { return kb.splat(n, b.getInt32(v)); };
  llvm::Value* h = b.CreateZExt(bits, i32);
  llvm::Value* magnitude = b.CreateShl(b.CreateAnd(h, c(0x7fff)), c(13));
  llvm::Value* scaled = b.CreateBitCast(
      b.CreateFMul(b.CreateBitCast(magnitude, kb.vec(kb.f32(), n)), kb.splat(n, kb.cf32(0x1p112f))), i32);
  llvm::Value* special = b.CreateICmpUGE(b.CreateAnd(h, c(0x7fff)), c(0x7c00));
  llvm::Value* value = b.CreateSelect(special, b.CreateOr(magnitude, c(0x7f800000)), scaled);
  llvm::Value* sign = b.CreateShl(b.CreateAnd(h, c(0x8000)), c(16));
  return b.CreateBitCast(b.CreateOr(value, sign), kb.vec(kb.f32(), n));
}

llvm::Value* round_to_half(KernelBuilder& kb, llvm::Value* x) {
  auto& b = kb.b;
  const unsigned n = llvm::cast<llvm::FixedVectorType>(x->getType())->getNumElements();
  if ((kb.target.f16c || kb.target.avx512fp16) && !matmul_tuning().portable_only) {
    return b.CreateFPExt(b.CreateFPTrunc(x, kb.vec(kb.f16(), n)), x->getType());
  }
  // Round to nearest even in integer arithmetic (no runtime conversion routine): normal
  // halves drop 13 mantissa bits; below 2^-14 the float grid of (|x| + 0.5) is the
  // half-subnormal grid; from 65520 up it is inf; NaN stays NaN.
  llvm::VectorType* i32 = kb.vec(kb.i32(), n);
  auto c = [&](uint32_t v) { return kb.splat(n, b.getInt32(v)); };
  llvm::Value* bits = b.CreateBitCast(x, i32);
  llvm::Value* sign = b.CreateAnd(b.CreateLShr(bits, c(16)), c(0x8000));
  llvm::Value* abs = b.CreateAnd(bits, c(0x7fffffff));
  llvm::Value* rounded = b.CreateAdd(b.CreateAdd(abs, c(0xfff)), b.CreateAnd(b.CreateLShr(abs, c(13)), c(1)));
  llvm::Value* normal = b.CreateLShr(b.CreateSub(rounded, c(0x38000000)), c(13));
  llvm::Value* shifted =
      b.CreateBitCast(b.CreateFAdd(b.CreateBitCast(abs, x->getType()), kb.splat(n, kb.cf32(0.5f))), i32);
  llvm::Value* subnormal = b.CreateSub(shifted, c(0x3f000000));
  llvm::Value* h = b.CreateSelect(b.CreateICmpULT(abs, c(0x38800000)), subnormal, normal);
  h = b.CreateSelect(b.CreateICmpUGE(abs, c(0x477ff000)), c(0x7c00), h);
  h = b.CreateSelect(b.CreateICmpUGT(abs, c(0x7f800000)), c(0x7e00), h);
  return half_to_float(kb, b.CreateTrunc(b.CreateOr(h, sign), kb.vec(kb.i16(), n)));
}

namespace {

unsigned lanes_of(llvm::Value* v) {
  return llvm::cast<llvm::FixedVectorType>(v->getType())->getNumElements();
}

llvm::Value* extract(KernelBuilder& kb, llvm::Value* v, unsigned start, unsigned count) {
  if (start == 0 && count == lanes_of(v)) return v;
  std::vector<int> mask;
  for (unsigned i = 0; i < count; ++i) mask.push_back(static_cast<int>(start + i));
  return kb.b.CreateShuffleVector(v, mask);
}

llvm::Value* concat(KernelBuilder& kb, llvm::Value* a, llvm::Value* c) {
  const unsigned na = lanes_of(a);
  const unsigned nc = lanes_of(c);
  const unsigned m = std::max(na, nc);
  auto pad = [&](llvm::Value* v) {
    const unsigned n = lanes_of(v);
    if (n == m) return v;
    std::vector<int> mask;
    for (unsigned i = 0; i < m; ++i) mask.push_back(i < n ? static_cast<int>(i) : -1);
    return kb.b.CreateShuffleVector(v, mask);
  };
  std::vector<int> mask;
  for (unsigned i = 0; i < na; ++i) mask.push_back(static_cast<int>(i));
  for (unsigned i = 0; i < nc; ++i) mask.push_back(static_cast<int>(m + i));
  return kb.b.CreateShuffleVector(pad(a), pad(c), mask);
}

}  // namespace

std::vector<llvm::Value*> regroup(KernelBuilder& kb, const std::vector<llvm::Value*>& pieces, unsigned width) {
  std::vector<llvm::Value*> out;
  llvm::Value* partial = nullptr;
  for (llvm::Value* piece : pieces) {
    unsigned at = 0;
    const unsigned n = lanes_of(piece);
    while (at < n) {
      const unsigned have = partial ? lanes_of(partial) : 0;
      const unsigned take = std::min(width - have, n - at);
      llvm::Value* part = extract(kb, piece, at, take);
      partial = partial ? concat(kb, partial, part) : part;
      at += take;
      if (lanes_of(partial) == width) {
        out.push_back(partial);
        partial = nullptr;
      }
    }
  }
  return out;
}

void prefetch(KernelBuilder& kb, llvm::Value* address) {
  // llvm.prefetch(address, read, locality 3 (keep in all levels), data)
  kb.intrinsic(llvm::Intrinsic::prefetch, {kb.ptr()}, {address, kb.c32(0), kb.c32(3), kb.c32(1)});
}

llvm::Value* gather_scalars(KernelBuilder& kb, const std::vector<llvm::Value*>& scalars) {
  llvm::Value* v = llvm::PoisonValue::get(kb.vec(scalars[0]->getType(), static_cast<unsigned>(scalars.size())));
  for (size_t i = 0; i < scalars.size(); ++i)
    v = kb.b.CreateInsertElement(v, scalars[i], kb.c64(static_cast<int64_t>(i)));
  return v;
}

namespace {

int64_t float_elem_bytes(ir::DType t) {
  return t == ir::DType::F32 ? 4 : 2;
}

// `count` consecutive F32 / F16 / BF16 weights at `address` as <count x float>.
llvm::Value* load_float_weights(KernelBuilder& kb, ir::DType type, llvm::Value* address, unsigned count) {
  auto& b = kb.b;
  if (type == ir::DType::F32) return b.CreateAlignedLoad(kb.vec(kb.f32(), count), address, llvm::Align(1));
  llvm::Value* bits = b.CreateAlignedLoad(kb.vec(kb.i16(), count), address, llvm::Align(1));
  if (type == ir::DType::F16) return half_to_float(kb, bits);
  // BF16: the upper half of a float.
  llvm::Value* wide = b.CreateShl(b.CreateZExt(bits, kb.vec(kb.i32(), count)), kb.splat(count, kb.c32(16)));
  return b.CreateBitCast(wide, kb.vec(kb.f32(), count));
}

class FloatGenerator {
 public:
  FloatGenerator(KernelBuilder& kb, const ProductArgs& p) : kb_(kb), b_(kb.b), p_(p), tune_(matmul_tuning()) {
    const TargetFeatures& t = kb.target;
    width_ = tune_.portable_only                               ? 4u
             : t.avx512f && tune_.float_max_vector_bits >= 512 ? 16u
             : t.avx2 || t.avx512f                             ? 8u
                                                               : 4u;
  }

  bool emit(std::string* error) {
    const ir::DType type = p_.weight;
    if (type == ir::DType::F32 || type == ir::DType::F16 || type == ir::DType::BF16) {
      const int64_t es = float_elem_bytes(type);
      decoder_.block_elems = 2 * width_;
      decoder_.block_bytes = decoder_.block_elems * es;
      decoder_.decode = [type, es](KernelBuilder& kb, llvm::Value* row, llvm::Value* index, unsigned width) {
        std::vector<llvm::Value*> out;
        llvm::Value* base = kb.b.CreateMul(index, kb.c64(2 * width * es));
        for (unsigned v = 0; v < 2; ++v) {
          llvm::Value* at = kb.byte_offset(row, kb.b.CreateAdd(base, kb.c64(v * width * es)));
          out.push_back(load_float_weights(kb, type, at, width));
        }
        return out;
      };
      row_bytes_ = p_.cols * es;
      blocks_ = p_.cols / decoder_.block_elems;
      tail_begin_ = blocks_ * decoder_.block_elems;
      float_type_ = true;
    } else {
      if (!quantized_block_decoder(type, decoder_, error)) return false;
      if (p_.cols % decoder_.block_elems != 0) {
        if (error) *error = "K is not a multiple of the weight block size";
        return false;
      }
      blocks_ = p_.cols / decoder_.block_elems;
      row_bytes_ = blocks_ * decoder_.block_bytes;
      tail_begin_ = p_.cols;
    }
    x_ = p_.x;
    if (type == ir::DType::F16) prepare_f16_activations();
    // Zigzag: a weight that the caches can hold between two decode steps (the F16 LM head of a
    // small model: 16-25 MB, read from L3 at ~29 GB/s per core) is walked forwards at even
    // positions and backwards at odd ones, so each step starts on the rows the previous one
    // ended with, which are still in L2 (~6 % of the reads on the 16 MB head at one thread, more
    // per core at two). A weight that streams from DRAM gains nothing from it.
    const int64_t weight_bytes = p_.rows * row_bytes_ * static_cast<int64_t>(p_.weights.size());
    if (tune_.float_zigzag_max_bytes > 0 && weight_bytes <= tune_.float_zigzag_max_bytes) {
      reverse_ = b_.CreateICmpNE(b_.CreateAnd(kb_.pos(), kb_.c64(1)), kb_.c64(0));
    }
    const int per_weight = static_cast<int>(p_.weights.size());
    if (rows_chunked_applies()) {
      llvm::Value* several = b_.CreateAnd(kb_.decode_rows(), b_.CreateICmpSGT(p_.n_tokens, kb_.c64(1)));
      kb_.if_then(several, [&] { emit_decode_rows_chunked(); });
      kb_.if_then(b_.CreateNot(several), [&] { emit_generic_tiles(per_weight); });
    } else {
      emit_generic_tiles(per_weight);
    }
    return true;
  }

 private:
  void emit_generic_tiles(int per_weight) {
    emit_tiles(
        kb_, p_, std::max(1, tune_.float_gemv_rows / per_weight), std::max(1, tune_.float_gemm_rows / per_weight),
        tune_.float_gemm_tokens,
        [&](int rows, int tokens, bool gemm, llvm::Value* row, llvm::Value* token, llvm::Value* row2) {
          micro(rows, tokens, gemm, row, token, row2);
        },
        TileOptions{.gemv_streams = tune_.float_gemv_streams,
                    .reverse = reverse_,
                    .force_decode = kb_.decode_rows(),
                    .decode_tokens = tune_.float_decode_tokens,
                    .decode_rows_tile = tune_.float_decode_rows_tile});
  }

  // The loop nest for several decode rows (MatmulTuning::float_rows_chunked) is for long rows
  // (float_rows_min_k) and needs blocks of one or two vectors (the register tile's accumulators
  // and weights fit), no scalar tail and no rounded loads.
  bool rows_chunked_applies() const {
    return tune_.float_rows_chunked && p_.cols >= tune_.float_rows_min_k && decoder_.block_elems / width_ <= 2 &&
           tail_begin_ == p_.cols && !round_loads_;
  }

  // Several one-token rows (KernelArgs::decode_rows, n_tokens > 1). Each (row, token) gets
  // exactly micro()'s one-token arithmetic: the same accumulator per vector, the blocks in
  // order, the same final sum; only the loop nest differs. Tiles of weight rows; per group of
  // tokens and chunk of K (the group's activations stay in L1), register tiles of a few rows x
  // the group's tokens decode each weight block once for the whole group. A (row, token)'s
  // accumulators wait in a stack buffer from one chunk to the next.
  void emit_decode_rows_chunked() {
    const int n_weights = static_cast<int>(p_.weights.size());
    // 32 vector registers (AVX-512): 3 rows x 8 tokens x 1 accumulator (x 4 tokens x 2); 16:
    // 2 x 6 x 1 (2 x 3 x 2). The accumulators per (row, token) are the one-token arithmetic's.
    const bool wide = width_ >= 16;
    const int per_block = static_cast<int>(decoder_.block_elems / width_);
    const int n_accs = std::clamp(tune_.float_gemv_accs, 1, per_block);
    const int reg_rows = tune_.float_rows_reg_rows > 0 ? tune_.float_rows_reg_rows : (wide ? 3 : 2);
    const int tile_rows = std::max(1, tune_.float_rows_tile / reg_rows) * reg_rows;
    const int group = tune_.float_rows_group > 0 ? tune_.float_rows_group : (wide ? 8 : 6) / n_accs;
    const int64_t chunk_blocks =
        std::max<int64_t>(1, tune_.float_rows_chunk_bytes / (int64_t{group} * 4 * decoder_.block_elems));
    const int64_t n_chunks = (blocks_ + chunk_blocks - 1) / chunk_blocks;
    const int64_t slots = int64_t{tile_rows} * n_weights;  // (weight, row) pairs of a tile

    llvm::BasicBlock& entry = kb_.fn->getEntryBlock();
    llvm::IRBuilder<> at_entry(&entry, entry.begin());
    llvm::VectorType* vt = kb_.vec(kb_.f32(), width_);
    auto* accs_buffer = at_entry.CreateAlloca(llvm::ArrayType::get(vt, static_cast<uint64_t>(slots * group * n_accs)),
                                              nullptr, "rows.accs");
    accs_buffer->setAlignment(llvm::Align(64));
    auto* sums_buffer = at_entry.CreateAlloca(llvm::ArrayType::get(kb_.f32(), static_cast<uint64_t>(slots * group)),
                                              nullptr, "rows.sums");
    sums_buffer->setAlignment(llvm::Align(64));
    const llvm::Align vector_align(width_ * 4);
    // Accumulator a of token n of tile slot `slot` (an i64).
    auto acc_ptr = [&](llvm::Value* slot, int n, int a) {
      llvm::Value* index = b_.CreateAdd(b_.CreateMul(slot, kb_.c64(int64_t{group} * n_accs)), kb_.c64(n * n_accs + a));
      return kb_.element_ptr(vt, accs_buffer, index);
    };

    // Rows [r0, r0 + rows) of every weight times tokens [t0, t0 + tokens).
    auto run_group = [&](int rows, int tokens, llvm::Value* r0, llvm::Value* t0) {
      const int rr = std::min(reg_rows, rows);  // rows is a multiple of rr
      std::vector<llvm::Value*> x_rows;
      for (int n = 0; n < tokens; ++n) {
        x_rows.push_back(kb_.element_ptr(kb_.f32(), x_, b_.CreateMul(b_.CreateAdd(t0, kb_.c64(n)), kb_.c64(p_.cols))));
      }
      kb_.loop(kb_.c64(0), kb_.c64(n_chunks), 1, [&](llvm::Value* chunk) {
        llvm::Value* first_chunk = b_.CreateICmpEQ(chunk, kb_.c64(0));
        llvm::Value* blk_begin = b_.CreateMul(chunk, kb_.c64(chunk_blocks));
        llvm::Value* blk_end = kb_.min_i64(b_.CreateAdd(blk_begin, kb_.c64(chunk_blocks)), kb_.c64(blocks_));
        for (int j = 0; j < n_weights; ++j) {
          kb_.loop(kb_.c64(0), kb_.c64(rows), rr, [&](llvm::Value* i) {
            std::vector<llvm::Value*> row_ptrs;
            std::vector<llvm::Value*> slot_of;
            for (int r = 0; r < rr; ++r) {
              llvm::Value* row = b_.CreateAdd(b_.CreateAdd(r0, i), kb_.c64(r));
              row_ptrs.push_back(
                  kb_.byte_offset(p_.weights[static_cast<size_t>(j)], b_.CreateMul(row, kb_.c64(row_bytes_))));
              slot_of.push_back(b_.CreateAdd(i, kb_.c64(int64_t{j} * rows + r)));
            }
            auto at = [&](int r, int n, int a) { return static_cast<size_t>((r * tokens + n) * n_accs + a); };
            std::vector<llvm::Value*> init(static_cast<size_t>(rr * tokens * n_accs));
            for (int r = 0; r < rr; ++r) {
              for (int n = 0; n < tokens; ++n) {
                for (int a = 0; a < n_accs; ++a) {
                  llvm::Value* kept =
                      b_.CreateAlignedLoad(vt, acc_ptr(slot_of[static_cast<size_t>(r)], n, a), vector_align);
                  init[at(r, n, a)] = b_.CreateSelect(first_chunk, llvm::Constant::getNullValue(vt), kept);
                }
              }
            }
            const std::vector<llvm::Value*> accs = kb_.loop_carried(
                blk_begin, blk_end, 1, init, [&](llvm::Value* blk, const std::vector<llvm::Value*>& current) {
                  std::vector<llvm::Value*> next = current;
                  // The same blocks of the next tile's rows (read after this tile's).
                  llvm::Value* ahead = b_.CreateAdd(b_.CreateMul(blk, kb_.c64(decoder_.block_bytes)),
                                                    kb_.c64(int64_t{rows} * row_bytes_));
                  std::vector<std::vector<llvm::Value*>> w;
                  for (llvm::Value* row : row_ptrs) {
                    for (int64_t line = 0; line < decoder_.block_bytes; line += 64) {
                      prefetch(kb_, kb_.byte_offset(row, b_.CreateAdd(ahead, kb_.c64(line))));
                    }
                    w.push_back(decoder_.decode(kb_, row, blk, width_));
                  }
                  llvm::Value* first = b_.CreateMul(blk, kb_.c64(decoder_.block_elems));
                  for (int n = 0; n < tokens; ++n) {
                    for (int v = 0; v < per_block; ++v) {
                      llvm::Value* x = load_x(vt, kb_.element_ptr(kb_.f32(), x_rows[static_cast<size_t>(n)],
                                                                  b_.CreateAdd(first, kb_.c64(int64_t{v} * width_))));
                      for (int r = 0; r < rr; ++r) {
                        llvm::Value*& acc = next[at(r, n, v % n_accs)];
                        acc = kb_.fma(w[static_cast<size_t>(r)][static_cast<size_t>(v)], x, acc);
                      }
                    }
                  }
                  return next;
                });
            for (int r = 0; r < rr; ++r) {
              for (int n = 0; n < tokens; ++n) {
                for (int a = 0; a < n_accs; ++a) {
                  b_.CreateAlignedStore(accs[at(r, n, a)], acc_ptr(slot_of[static_cast<size_t>(r)], n, a),
                                        vector_align);
                }
              }
            }
          });
        }
      });
      // The one-token epilogue: the accumulators added in order, then one horizontal sum.
      kb_.loop(kb_.c64(0), kb_.c64(int64_t{rows} * n_weights), 1, [&](llvm::Value* slot) {
        for (int n = 0; n < tokens; ++n) {
          llvm::Value* v = b_.CreateAlignedLoad(vt, acc_ptr(slot, n, 0), vector_align);
          for (int a = 1; a < n_accs; ++a) {
            v = b_.CreateFAdd(v, b_.CreateAlignedLoad(vt, acc_ptr(slot, n, a), vector_align));
          }
          b_.CreateStore(kb_.reduce_fadd(v),
                         kb_.element_ptr(kb_.f32(), sums_buffer, b_.CreateAdd(slot, kb_.c64(int64_t{n} * slots))));
        }
      });
      llvm::VectorType* out_type = kb_.vec(kb_.f32(), static_cast<unsigned>(rows));
      for (int n = 0; n < tokens; ++n) {
        std::vector<llvm::Value*> ys;
        for (int j = 0; j < n_weights; ++j) {
          llvm::Value* at = kb_.element_ptr(kb_.f32(), sums_buffer, kb_.c64(int64_t{n} * slots + int64_t{j} * rows));
          ys.push_back(b_.CreateAlignedLoad(out_type, at, llvm::Align(4)));
        }
        p_.store_tile(b_.CreateAdd(t0, kb_.c64(n)), r0, nullptr, ys);
      }
    };

    // Every token of a tile: whole groups, then the rest (< group) as power-of-two groups,
    // largest first.
    auto run_tile = [&](int rows, llvm::Value* r0) {
      llvm::Value* tokens = p_.n_tokens;
      llvm::Value* whole = b_.CreateMul(b_.CreateSDiv(tokens, kb_.c64(group)), kb_.c64(group));
      kb_.loop(kb_.c64(0), whole, group, [&](llvm::Value* t0) { run_group(rows, group, r0, t0); });
      llvm::Value* rest = b_.CreateSub(tokens, whole);
      int g = 1;
      while (g * 2 < group) g *= 2;
      for (; group > 1 && g >= 1; g /= 2) {
        kb_.if_then(b_.CreateICmpNE(b_.CreateAnd(rest, kb_.c64(g)), kb_.c64(0)), [&] {
          run_group(rows, g, r0, b_.CreateAdd(whole, b_.CreateAnd(rest, kb_.c64(~int64_t{2 * g - 1}))));
        });
      }
    };
    llvm::Value* lo = p_.row_begin;
    llvm::Value* hi = p_.row_end;
    llvm::Value* tiles_end =
        b_.CreateAdd(lo, b_.CreateMul(b_.CreateSDiv(b_.CreateSub(hi, lo), kb_.c64(tile_rows)), kb_.c64(tile_rows)));
    kb_.loop(lo, tiles_end, tile_rows, [&](llvm::Value* r0) { run_tile(tile_rows, r0); });
    if (tile_rows > 1) kb_.loop(tiles_end, hi, 1, [&](llvm::Value* r0) { run_tile(1, r0); });
  }

  // The reference multiplies F16 weights by activations rounded to F16 whenever it uses
  // ggml_vec_dot_f16: for one token (decode) and for any K % 16 != 0 (spec 8.6; what
  // ref::matmul_rows and the interpreter do). Products of two halves are exact in f32, so
  // the results then differ from the reference only by summation order. For one token the
  // row is rounded once into a stack copy; for the odd K every load is rounded.
  void prepare_f16_activations() {
    if (p_.cols % 16 != 0) {
      round_loads_ = true;
      return;
    }
    llvm::BasicBlock& entry = kb_.fn->getEntryBlock();
    llvm::IRBuilder<> at_entry(&entry, entry.begin());
    llvm::AllocaInst* copy = at_entry.CreateAlloca(llvm::ArrayType::get(kb_.f32(), static_cast<uint64_t>(p_.cols)));
    copy->setAlignment(llvm::Align(64));
    llvm::Value* decode = b_.CreateICmpEQ(p_.n_tokens, kb_.c64(1));
    kb_.if_then(decode, [&] {
      llvm::VectorType* vt = kb_.vec(kb_.f32(), width_);
      kb_.loop(kb_.c64(0), kb_.c64(p_.cols), width_, [&](llvm::Value* k) {  // cols % 16 == 0
        llvm::Value* v = b_.CreateAlignedLoad(vt, kb_.element_ptr(kb_.f32(), p_.x, k), llvm::Align(4));
        b_.CreateAlignedStore(round_to_half(kb_, v), kb_.element_ptr(kb_.f32(), copy, k), llvm::Align(4));
      });
    });
    // Several one-token rows (KernelArgs::decode_rows): every row rounded into this thread's
    // scratch (the plan sizes it: GraphPlan.kernel_scratch_bytes), the same values per row as
    // the one-token copy.
    llvm::Value* rows = b_.CreateAnd(kb_.decode_rows(), b_.CreateNot(decode));
    llvm::Value* scratch = kb_.scratch();
    kb_.if_then(rows, [&] {
      llvm::VectorType* vt = kb_.vec(kb_.f32(), width_);
      const int64_t n = p_.cols;
      kb_.loop(kb_.c64(0), b_.CreateMul(p_.n_tokens, kb_.c64(n)), width_, [&](llvm::Value* k) {
        llvm::Value* v = b_.CreateAlignedLoad(vt, kb_.element_ptr(kb_.f32(), p_.x, k), llvm::Align(4));
        b_.CreateAlignedStore(round_to_half(kb_, v), kb_.element_ptr(kb_.f32(), scratch, k), llvm::Align(4));
      });
    });
    x_ = b_.CreateSelect(decode, copy, b_.CreateSelect(rows, scratch, p_.x));
  }

  llvm::Value* load_x(llvm::Type* type, llvm::Value* address) {
    llvm::Value* v = b_.CreateAlignedLoad(type, address, llvm::Align(4));
    return round_loads_ ? round_to_half(kb_, v) : v;
  }

  // Rows r0 .. r0 + rows - 1 of every weight (or of the one weight from r0 and from r1) times
  // tokens t0 .. t0 + tokens - 1.
  void micro(int rows, int tokens, bool gemm, llvm::Value* r0, llvm::Value* t0, llvm::Value* r1) {
    const auto per_block = static_cast<int>(decoder_.block_elems / width_);
    const int accs_per = std::clamp(gemm ? 1 : tune_.float_gemv_accs, 1, per_block);
    // The tile's row ranges: (weight, first row) pairs of `rows` rows each.
    std::vector<std::pair<llvm::Value*, llvm::Value*>> from;
    if (r1) {
      from = {{p_.weights[0], r0}, {p_.weights[0], r1}};
    } else {
      for (llvm::Value* w : p_.weights) from.emplace_back(w, r0);
    }
    std::vector<llvm::Value*> row_ptrs;
    for (const auto& [w, first] : from) {
      for (int i = 0; i < rows; ++i)
        row_ptrs.push_back(kb_.byte_offset(w, b_.CreateMul(b_.CreateAdd(first, kb_.c64(i)), kb_.c64(row_bytes_))));
    }
    std::vector<llvm::Value*> x_rows;
    for (int n = 0; n < tokens; ++n) {
      x_rows.push_back(kb_.element_ptr(kb_.f32(), x_, b_.CreateMul(b_.CreateAdd(t0, kb_.c64(n)), kb_.c64(p_.cols))));
    }
    const size_t n_rows = row_ptrs.size();
    const auto n_tokens = static_cast<size_t>(tokens);
    const auto n_accs = static_cast<size_t>(accs_per);
    auto at = [&](size_t r, size_t n, size_t a) { return (r * n_tokens + n) * n_accs + a; };
    llvm::VectorType* vt = kb_.vec(kb_.f32(), width_);
    std::vector<llvm::Value*> init(n_rows * n_tokens * n_accs, llvm::Constant::getNullValue(vt));
    std::vector<llvm::Value*> accs = kb_.loop_carried(
        kb_.c64(0), kb_.c64(blocks_), 1, init, [&](llvm::Value* blk, const std::vector<llvm::Value*>& current) {
          std::vector<llvm::Value*> next = current;
          if (tune_.float_prefetch_bytes > 0) {
            // Backwards (zigzag), the rows read next are the ones below.
            llvm::Value* distance = kb_.c64(tune_.float_prefetch_bytes);
            if (reverse_ && !gemm) distance = b_.CreateSelect(reverse_, kb_.c64(-tune_.float_prefetch_bytes), distance);
            llvm::Value* ahead = b_.CreateAdd(b_.CreateMul(blk, kb_.c64(decoder_.block_bytes)), distance);
            for (llvm::Value* row : row_ptrs) {
              for (int64_t line = 0; line < decoder_.block_bytes; line += 64) {
                prefetch(kb_, kb_.byte_offset(row, b_.CreateAdd(ahead, kb_.c64(line))));
              }
            }
          }
          llvm::Value* first = b_.CreateMul(blk, kb_.c64(decoder_.block_elems));
          std::vector<std::vector<llvm::Value*>> xs(n_tokens);
          for (size_t n = 0; n < n_tokens; ++n) {
            for (int v = 0; v < per_block; ++v) {
              llvm::Value* address = kb_.element_ptr(kb_.f32(), x_rows[n], b_.CreateAdd(first, kb_.c64(v * width_)));
              xs[n].push_back(load_x(vt, address));
            }
          }
          for (size_t r = 0; r < n_rows; ++r) {
            const std::vector<llvm::Value*> w = decoder_.decode(kb_, row_ptrs[r], blk, width_);
            for (size_t n = 0; n < n_tokens; ++n) {
              for (size_t v = 0; v < w.size(); ++v) {
                llvm::Value*& acc = next[at(r, n, v % n_accs)];
                acc = kb_.fma(w[v], xs[n][v], acc);
              }
            }
          }
          return next;
        });
    std::vector<llvm::Value*> sums;
    for (size_t r = 0; r < n_rows; ++r) {
      for (size_t n = 0; n < n_tokens; ++n) {
        llvm::Value* v = accs[at(r, n, 0)];
        for (size_t a = 1; a < n_accs; ++a) v = b_.CreateFAdd(v, accs[at(r, n, a)]);
        sums.push_back(kb_.reduce_fadd(v));
      }
    }
    if (float_type_ && tail_begin_ < p_.cols) {
      // K not a multiple of the block: the last elements one at a time.
      sums = kb_.loop_carried(
          kb_.c64(tail_begin_), kb_.c64(p_.cols), 1, sums,
          [&](llvm::Value* k, const std::vector<llvm::Value*>& current) {
            std::vector<llvm::Value*> next = current;
            std::vector<llvm::Value*> xk;
            for (size_t n = 0; n < n_tokens; ++n)
              xk.push_back(b_.CreateExtractElement(
                  load_x(kb_.vec(kb_.f32(), 1), kb_.element_ptr(kb_.f32(), x_rows[n], k)), kb_.c64(0)));
            const int64_t es = float_elem_bytes(p_.weight);
            for (size_t r = 0; r < n_rows; ++r) {
              llvm::Value* address = kb_.byte_offset(row_ptrs[r], b_.CreateMul(k, kb_.c64(es)));
              llvm::Value* w = b_.CreateExtractElement(load_float_weights(kb_, p_.weight, address, 1), kb_.c64(0));
              for (size_t n = 0; n < n_tokens; ++n) next[r * n_tokens + n] = kb_.fma(w, xk[n], next[r * n_tokens + n]);
            }
            return next;
          });
    }
    for (size_t n = 0; n < n_tokens; ++n) {
      std::vector<llvm::Value*> ys;
      for (size_t w = 0; w < from.size(); ++w) {
        std::vector<llvm::Value*> values;
        for (int i = 0; i < rows; ++i)
          values.push_back(sums[(w * static_cast<size_t>(rows) + static_cast<size_t>(i)) * n_tokens + n]);
        ys.push_back(gather_scalars(kb_, values));
      }
      llvm::Value* t = b_.CreateAdd(t0, kb_.c64(static_cast<int64_t>(n)));
      p_.store_tile(t, r0, r1, ys);
    }
  }

  KernelBuilder& kb_;
  llvm::IRBuilder<>& b_;
  const ProductArgs& p_;
  const MatmulTuning& tune_;
  unsigned width_ = 8;
  BlockDecoder decoder_;
  llvm::Value* x_ = nullptr;        // the activations the tiles read (F16 decode: the rounded copy)
  bool round_loads_ = false;        // F16 with K % 16 != 0: every activation load rounded to F16
  llvm::Value* reverse_ = nullptr;  // i1: decode walks the rows backwards (zigzag), or nullptr
  bool float_type_ = false;
  int64_t row_bytes_ = 0;
  int64_t blocks_ = 0;
  int64_t tail_begin_ = 0;
};

}  // namespace

bool emit_product_float(KernelBuilder& kb, const ProductArgs& p, std::string* error) {
  if (p.act != ir::DType::F32) {
    if (error) *error = "float weights need f32 activations";
    return false;
  }
  return FloatGenerator(kb, p).emit(error);
}

}  // namespace bitnet::codegen

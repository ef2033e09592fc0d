// TQ1_0 / TQ2_0 ternary weights times int8 activations, bit-exact with ref::matmul_i8q_rows_tq
// (semantics in docs/ternary-formats.md): the integer sum D = sum(code * q) - S over the row,
// as for I2_S, and per row the f16 scale of its blocks. A row whose blocks all carry the same
// scale d (every row of a file converted from I2_S) gets I2_S's epilogue with scale d; a tile
// holding any other row recomputes those rows block by block (D_b * d_b summed in float), a
// portable path that only files quantized with per-block scales take.
//
// Why this shape: both formats decode, per 256-weight block, into eight vectors of 32 codes
// {0, 1, 2} (value + 1) whose activations are one contiguous 32-byte load each, which is the
// operand shape of vpdpbusd (VNNI) and vpmaddubsw + vpmaddwd (AVX2; exact: a pair sums to at
// most 2 * 2 * 128). TQ2_0 group g is field g % 4 of the 32 bytes at (g / 4) * 32 (one shift
// and one mask); TQ1_0 keeps five base-3 digits per byte, read as (byte * 3^n mod 256) * 3 >> 8
// (groups 0-4 from the first 32 bytes; groups 5-7 join the 16-byte and the 4-byte parts). Each
// row's codes are decoded once per block and used for every token of the tile; each token's
// activations are loaded once per block for every row.
#include "codegen_cpu/emit_matmul.h"

#include <llvm/IR/IntrinsicsX86.h>

namespace bitnet::codegen {
namespace {

enum class Isa { kVnni256, kMaddubs256, kGeneric };

Isa pick_isa(const TargetFeatures& t, const MatmulTuning& tune) {
  if (tune.portable_only) return Isa::kGeneric;
  if (tune.i2s_allow_vnni && (t.avxvnni || (t.avx512vnni && t.avx512vl))) return Isa::kVnni256;
  if (t.avx2) return Isa::kMaddubs256;
  return Isa::kGeneric;
}

class TqGenerator {
 public:
  TqGenerator(KernelBuilder& kb, const ProductArgs& p) : kb_(kb), b_(kb.b), p_(p), tune_(matmul_tuning()) {
    isa_ = pick_isa(kb.target, tune_);
    tq2_ = p.weight == ir::DType::TQ2_0;
    block_bytes_ = tq2_ ? 66 : 54;
    blocks_ = p.cols / 256;
    row_bytes_ = blocks_ * block_bytes_;
  }

  bool emit(std::string* error) {
    if (p_.weight != ir::DType::TQ1_0 && p_.weight != ir::DType::TQ2_0) {
      if (error) *error = "the tq product takes tq1_0 or tq2_0 weights";
      return false;
    }
    if (p_.cols % 256 != 0 || p_.cols == 0) {
      if (error) *error = "tq1_0/tq2_0 need K % 256 == 0";
      return false;
    }
    // i8q buffer: int8 [T][K], then T f32 scales, then T i32 sums (schema/abi.h).
    scales_ = kb_.byte_offset(p_.x, b_.CreateMul(p_.n_tokens, kb_.c64(p_.cols)));
    sums_ = kb_.byte_offset(scales_, b_.CreateMul(p_.n_tokens, kb_.c64(4)));
    const int per_weight = static_cast<int>(p_.weights.size());
    // Tiles that keep rows x tokens accumulators plus the operands in 16 (AVX2) or 32 vector
    // registers; the portable path's accumulators are four times wider.
    const bool vnni = isa_ == Isa::kVnni256;
    const int gemv_rows = std::max(1, (isa_ == Isa::kGeneric ? 2 : 4) / per_weight);
    const int gemm_rows = std::max(1, (isa_ == Isa::kGeneric ? 2 : 4) / per_weight);
    const int gemm_tokens = vnni ? 4 : 2;
    emit_tiles(kb_, p_, gemv_rows, gemm_rows, gemm_tokens,
               [&](int rows, int tokens, bool gemm, llvm::Value* row, llvm::Value* token, llvm::Value*) {
                 micro(rows, tokens, gemm, row, token);
               });
    return true;
  }

 private:
  llvm::VectorType* bytes(unsigned n) { return kb_.vec(kb_.i8(), n); }
  llvm::VectorType* acc_type() { return isa_ == Isa::kGeneric ? kb_.vec(kb_.i32(), 32) : kb_.vec(kb_.i32(), 8); }
  llvm::Value* load_bytes(llvm::Value* at, unsigned n) { return b_.CreateAlignedLoad(bytes(n), at, llvm::Align(1)); }
  llvm::Value* concat(llvm::Value* a, llvm::Value* c) {
    const unsigned n = llvm::cast<llvm::FixedVectorType>(a->getType())->getNumElements();
    std::vector<int> mask;
    for (unsigned i = 0; i < 2 * n; ++i) mask.push_back(static_cast<int>(i));
    return b_.CreateShuffleVector(a, c, mask);
  }

  // Base-3 digit n (0 = most significant) of every byte of v: q = v * 3^n mod 256 brings the
  // digit to the top, and (q * 3) >> 8 = [q >= 86] + [q >= 171] reads it without widening.
  // q is built as x + x + x steps (bytes have no multiply on x86), which the digits of one
  // byte vector share after CSE.
  llvm::Value* digit(llvm::Value* v, int n) {
    const unsigned lanes = llvm::cast<llvm::FixedVectorType>(v->getType())->getNumElements();
    llvm::Value* q = v;
    for (int i = 0; i < n; ++i) q = b_.CreateAdd(b_.CreateAdd(q, q), q);
    auto at_least = [&](uint8_t bound) {
      return b_.CreateZExt(b_.CreateICmpUGE(q, kb_.splat(lanes, b_.getInt8(bound))), bytes(lanes));
    };
    return b_.CreateAdd(at_least(86), at_least(171));
  }

  // The 32 codes {0, 1, 2} of weights 32g .. 32g + 31 of the block at `block`.
  llvm::Value* group_codes(llvm::Value* block, int g) {
    if (tq2_) {
      llvm::Value* v = load_bytes(kb_.byte_offset(block, kb_.c64(32 * (g / 4))), 32);
      if (g % 4) v = b_.CreateLShr(v, kb_.splat(32, b_.getInt8(static_cast<uint8_t>(2 * (g % 4)))));
      return b_.CreateAnd(v, kb_.splat(32, b_.getInt8(3)));
    }
    if (g < 5) return digit(load_bytes(block, 32), g);
    llvm::Value* mid = load_bytes(kb_.byte_offset(block, kb_.c64(32)), 16);
    if (g == 5) return concat(digit(mid, 0), digit(mid, 1));
    if (g == 6) return concat(digit(mid, 2), digit(mid, 3));
    llvm::Value* high = load_bytes(kb_.byte_offset(block, kb_.c64(48)), 4);
    llvm::Value* tail = concat(concat(digit(high, 0), digit(high, 1)), concat(digit(high, 2), digit(high, 3)));
    return concat(digit(mid, 4), tail);
  }

  llvm::Value* dot(llvm::Value* acc, llvm::Value* codes, llvm::Value* act) {
    llvm::Type* t = acc->getType();
    switch (isa_) {
      case Isa::kVnni256:
        return kb_.intrinsic(llvm::Intrinsic::x86_avx512_vpdpbusd_256, {},
                             {acc, b_.CreateBitCast(codes, t), b_.CreateBitCast(act, t)});
      case Isa::kMaddubs256: {
        llvm::Value* words = kb_.intrinsic(llvm::Intrinsic::x86_avx2_pmadd_ub_sw, {}, {codes, act});
        llvm::Value* dwords =
            kb_.intrinsic(llvm::Intrinsic::x86_avx2_pmadd_wd, {}, {words, kb_.splat(16, b_.getInt16(1))});
        return b_.CreateAdd(acc, dwords);
      }
      case Isa::kGeneric:
        break;
    }
    return b_.CreateAdd(acc, b_.CreateMul(b_.CreateZExt(codes, t), b_.CreateSExt(act, t)));
  }

  llvm::Value* row_ptr(size_t weight, llvm::Value* r0, int r) {
    return kb_.byte_offset(p_.weights[weight], b_.CreateMul(b_.CreateAdd(r0, kb_.c64(r)), kb_.c64(row_bytes_)));
  }
  llvm::Value* block_ptr(llvm::Value* row, llvm::Value* block) {
    return kb_.byte_offset(row, b_.CreateMul(block, kb_.c64(block_bytes_)));
  }
  llvm::Value* scale_bits(llvm::Value* row, llvm::Value* block) {
    return b_.CreateAlignedLoad(kb_.i16(), kb_.byte_offset(block_ptr(row, block), kb_.c64(block_bytes_ - 2)),
                                llvm::Align(1));
  }
  llvm::Value* act_row(llvm::Value* t) { return kb_.byte_offset(p_.x, b_.CreateMul(t, kb_.c64(p_.cols))); }
  llvm::Value* act_scale(llvm::Value* t) {
    return b_.CreateAlignedLoad(kb_.f32(), kb_.element_ptr(kb_.f32(), scales_, t), llvm::Align(1));
  }

  // The slow path for one row and token: acc = float(acc + float(float(D_b) * d_b)) over the
  // blocks, then acc / s (the reference's rule for rows with different block scales).
  llvm::Value* per_block_y(llvm::Value* row, llvm::Value* t) {
    llvm::Value* x = act_row(t);
    llvm::VectorType* wide = kb_.vec(kb_.i32(), 32);
    const auto acc = kb_.loop_carried(
        kb_.c64(0), kb_.c64(blocks_), 1, {kb_.cf32(0.0f)},
        [&](llvm::Value* j, const std::vector<llvm::Value*>& cur) -> std::vector<llvm::Value*> {
          llvm::Value* block = block_ptr(row, j);
          llvm::Value* d = llvm::Constant::getNullValue(wide);
          for (int g = 0; g < 8; ++g) {
            llvm::Value* act =
                load_bytes(kb_.byte_offset(x, b_.CreateAdd(b_.CreateMul(j, kb_.c64(256)), kb_.c64(32 * g))), 32);
            llvm::Value* w = b_.CreateSub(b_.CreateZExt(group_codes(block, g), wide), kb_.splat(32, kb_.c32(1)));
            d = b_.CreateAdd(d, b_.CreateMul(w, b_.CreateSExt(act, wide)));
          }
          llvm::Value* bits = gather_scalars(kb_, {scale_bits(row, j)});
          llvm::Value* scale = b_.CreateExtractElement(half_to_float(kb_, bits), uint64_t{0});
          llvm::Value* term = b_.CreateFMul(b_.CreateSIToFP(kb_.reduce_add(d), kb_.f32()), scale);
          return {b_.CreateFAdd(cur[0], term)};
        });
    return b_.CreateFDiv(acc[0], act_scale(t));
  }

  void micro(int rows, int tokens, bool gemm, llvm::Value* r0, llvm::Value* t0) {
    const size_t n_weights = p_.weights.size();
    const size_t n_rows = n_weights * static_cast<size_t>(rows);
    const size_t n_tokens = static_cast<size_t>(tokens);
    std::vector<llvm::Value*> rows_at;     // [weight * rows + r]
    std::vector<llvm::Value*> first_bits;  // the f16 scale of each row's first block
    for (size_t w = 0; w < n_weights; ++w) {
      for (int r = 0; r < rows; ++r) {
        rows_at.push_back(row_ptr(w, r0, r));
        first_bits.push_back(scale_bits(rows_at.back(), kb_.c64(0)));
      }
    }
    std::vector<llvm::Value*> act_rows;
    for (size_t n = 0; n < n_tokens; ++n)
      act_rows.push_back(act_row(b_.CreateAdd(t0, kb_.c64(static_cast<int64_t>(n)))));

    // Carried: accumulators [row * tokens + token], then one "scales differ" word per row.
    std::vector<llvm::Value*> init(n_rows * n_tokens, llvm::Constant::getNullValue(acc_type()));
    for (size_t i = 0; i < n_rows; ++i) init.push_back(b_.getInt16(0));
    const auto done = kb_.loop_carried(
        kb_.c64(0), kb_.c64(blocks_), 1, init, [&](llvm::Value* j, const std::vector<llvm::Value*>& cur) {
          std::vector<llvm::Value*> next = cur;
          std::vector<llvm::Value*> blocks;
          for (size_t i = 0; i < n_rows; ++i) {
            blocks.push_back(block_ptr(rows_at[i], j));
            if (!gemm && tune_.i2s_prefetch_bytes > 0) {
              prefetch(kb_, kb_.byte_offset(blocks.back(), kb_.c64(tune_.i2s_prefetch_bytes)));
            }
            llvm::Value*& differ = next[n_rows * n_tokens + i];
            differ = b_.CreateOr(differ, b_.CreateXor(scale_bits(rows_at[i], j), first_bits[i]));
          }
          llvm::Value* base = b_.CreateMul(j, kb_.c64(256));
          for (int g = 0; g < 8; ++g) {
            std::vector<llvm::Value*> acts;
            for (size_t n = 0; n < n_tokens; ++n)
              acts.push_back(load_bytes(kb_.byte_offset(act_rows[n], b_.CreateAdd(base, kb_.c64(32 * g))), 32));
            for (size_t i = 0; i < n_rows; ++i) {
              llvm::Value* codes = group_codes(blocks[i], g);
              for (size_t n = 0; n < n_tokens; ++n)
                next[i * n_tokens + n] = dot(next[i * n_tokens + n], codes, acts[n]);
            }
          }
          return next;
        });

    // The fast epilogue of every (token, row) into a stack array [token][weight * rows + r],
    // then, only when some row's blocks differ in scale, those rows recomputed block by block
    // (one copy of the slow path per tile shape: runtime loops over its rows and tokens).
    llvm::Value* ys = stack_array(kb_.f32(), 4 * 16);  // rows * weights * tokens <= 64 (see emit)
    llvm::Value* any = b_.getFalse();
    std::vector<llvm::Value*> differ;
    for (size_t i = 0; i < n_rows; ++i) {
      differ.push_back(b_.CreateICmpNE(done[n_rows * n_tokens + i], b_.getInt16(0)));
      any = b_.CreateOr(any, differ.back());
    }
    for (size_t n = 0; n < n_tokens; ++n) {
      llvm::Value* t = b_.CreateAdd(t0, kb_.c64(static_cast<int64_t>(n)));
      llvm::Value* s = act_scale(t);
      llvm::Value* sum = b_.CreateAlignedLoad(kb_.i32(), kb_.element_ptr(kb_.i32(), sums_, t), llvm::Align(1));
      std::vector<llvm::Value*> d_rows;
      for (size_t i = 0; i < n_rows; ++i) d_rows.push_back(b_.CreateSub(kb_.reduce_add(done[i * n_tokens + n]), sum));
      // float(float(float(D) / s) * d), each step rounded, as I2_S with the row's scale.
      const auto count = static_cast<unsigned>(n_rows);
      llvm::Value* centered = b_.CreateSIToFP(gather_scalars(kb_, d_rows), kb_.vec(kb_.f32(), count));
      llvm::Value* y = b_.CreateFMul(b_.CreateFDiv(centered, b_.CreateVectorSplat(count, s)),
                                     half_to_float(kb_, gather_scalars(kb_, first_bits)));
      b_.CreateAlignedStore(y, kb_.element_ptr(kb_.f32(), ys, kb_.c64(static_cast<int64_t>(n * n_rows))),
                            llvm::Align(4));
    }
    kb_.if_then(any, [&] {
      llvm::Value* flags = gather_scalars(kb_, differ);
      kb_.loop(kb_.c64(0), kb_.c64(static_cast<int64_t>(n_rows)), 1, [&](llvm::Value* i) {
        kb_.if_then(b_.CreateExtractElement(flags, i), [&] {
          // Row i of the tile: weight i / rows, row r0 + i % rows.
          llvm::Value* w_index = b_.CreateSDiv(i, kb_.c64(rows));
          llvm::Value* weight = p_.weights[0];
          for (size_t w = 1; w < n_weights; ++w)
            weight = b_.CreateSelect(b_.CreateICmpEQ(w_index, kb_.c64(static_cast<int64_t>(w))), p_.weights[w], weight);
          llvm::Value* r = b_.CreateAdd(r0, b_.CreateSRem(i, kb_.c64(rows)));
          llvm::Value* row = kb_.byte_offset(weight, b_.CreateMul(r, kb_.c64(row_bytes_)));
          kb_.loop(kb_.c64(0), kb_.c64(tokens), 1, [&](llvm::Value* n) {
            llvm::Value* at = b_.CreateAdd(b_.CreateMul(n, kb_.c64(static_cast<int64_t>(n_rows))), i);
            b_.CreateAlignedStore(per_block_y(row, b_.CreateAdd(t0, n)), kb_.element_ptr(kb_.f32(), ys, at),
                                  llvm::Align(4));
          });
        });
      });
    });
    for (size_t n = 0; n < n_tokens; ++n) {
      llvm::Value* t = b_.CreateAdd(t0, kb_.c64(static_cast<int64_t>(n)));
      std::vector<llvm::Value*> out;
      for (size_t w = 0; w < n_weights; ++w) {
        const auto at = static_cast<int64_t>(n * n_rows + w * static_cast<size_t>(rows));
        out.push_back(b_.CreateAlignedLoad(kb_.vec(kb_.f32(), static_cast<unsigned>(rows)),
                                           kb_.element_ptr(kb_.f32(), ys, kb_.c64(at)), llvm::Align(4)));
      }
      p_.store_tile(t, r0, nullptr, out);
    }
  }

  // A stack array of `count` elements in the entry block (allocas elsewhere would grow the stack
  // on every loop iteration), shared by the tiles of the kernel.
  llvm::Value* stack_array(llvm::Type* type, uint64_t count) {
    if (stack_) return stack_;
    llvm::BasicBlock& entry = kb_.fn->getEntryBlock();
    llvm::IRBuilder<> at_entry(&entry, entry.begin());
    auto* alloca = at_entry.CreateAlloca(llvm::ArrayType::get(type, count), nullptr, "tq.ys");
    alloca->setAlignment(llvm::Align(64));
    stack_ = alloca;
    return stack_;
  }

  KernelBuilder& kb_;
  llvm::IRBuilder<>& b_;
  const ProductArgs& p_;
  const MatmulTuning& tune_;
  Isa isa_ = Isa::kGeneric;
  bool tq2_ = false;
  int64_t block_bytes_ = 0;
  int64_t blocks_ = 0;
  int64_t row_bytes_ = 0;
  llvm::Value* scales_ = nullptr;
  llvm::Value* sums_ = nullptr;
  llvm::Value* stack_ = nullptr;
};

}  // namespace

bool emit_product_tq(KernelBuilder& kb, const ProductArgs& p, std::string* error) {
  return TqGenerator(kb, p).emit(error);
}

}  // namespace bitnet::codegen

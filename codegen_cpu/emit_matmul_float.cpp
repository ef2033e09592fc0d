// Float-accumulating products: F32, F16 (the tied LM head), BF16 and the block-quantized
// formats times f32 activations. Each weight block is decoded into float registers (never
// into memory) and multiplied into f32 FMA accumulators; the decode path keeps a few rows
// and two accumulators per row in flight (FMA latency), the prefill path reuses every
// decoded block for a tile of tokens. Summation order differs from the reference, so
// results agree to float rounding (about 1e-6 relative), not bit for bit.
#include "codegen_cpu/emit_matmul.h"

#include <algorithm>

namespace bitnet::codegen {

// ---- helpers (emit_matmul.h) ----

llvm::Value* half_to_float(KernelBuilder& kb, llvm::Value* bits) {
  auto& b = kb.b;
  const unsigned n = llvm::cast<llvm::FixedVectorType>(bits->getType())->getNumElements();
  if (kb.target.f16c || kb.target.avx512fp16) return b.CreateFPExt(b.CreateBitCast(bits, kb.vec(kb.f16(), n)), kb.vec(kb.f32(), n));
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

namespace {

unsigned lanes_of(llvm::Value* v) { return llvm::cast<llvm::FixedVectorType>(v->getType())->getNumElements(); }

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
  for (size_t i = 0; i < scalars.size(); ++i) v = kb.b.CreateInsertElement(v, scalars[i], kb.c64(static_cast<int64_t>(i)));
  return v;
}

namespace {

int64_t float_elem_bytes(ir::DType t) { return t == ir::DType::F32 ? 4 : 2; }

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
    width_ = t.avx512f && tune_.float_max_vector_bits >= 512 ? 16u : (t.avx2 || t.avx512f) ? 8u : 4u;
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
    const int per_weight = static_cast<int>(p_.weights.size());
    emit_tiles(kb_, p_, std::max(1, tune_.float_gemv_rows / per_weight), std::max(1, tune_.float_gemm_rows / per_weight),
               tune_.float_gemm_tokens,
               [&](int rows, int tokens, bool gemm, llvm::Value* row, llvm::Value* token) { micro(rows, tokens, gemm, row, token); });
    return true;
  }

 private:
  void micro(int rows, int tokens, bool gemm, llvm::Value* r0, llvm::Value* t0) {
    const auto per_block = static_cast<int>(decoder_.block_elems / width_);
    const int accs_per = std::clamp(gemm ? 1 : tune_.float_gemv_accs, 1, per_block);
    std::vector<llvm::Value*> row_ptrs;
    for (llvm::Value* w : p_.weights) {
      for (int i = 0; i < rows; ++i) row_ptrs.push_back(kb_.byte_offset(w, b_.CreateMul(b_.CreateAdd(r0, kb_.c64(i)), kb_.c64(row_bytes_))));
    }
    std::vector<llvm::Value*> x_rows;
    for (int n = 0; n < tokens; ++n) {
      x_rows.push_back(kb_.element_ptr(kb_.f32(), p_.x, b_.CreateMul(b_.CreateAdd(t0, kb_.c64(n)), kb_.c64(p_.cols))));
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
            llvm::Value* ahead = b_.CreateAdd(b_.CreateMul(blk, kb_.c64(decoder_.block_bytes)), kb_.c64(tune_.float_prefetch_bytes));
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
              xs[n].push_back(b_.CreateAlignedLoad(vt, address, llvm::Align(4)));
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
      sums = kb_.loop_carried(kb_.c64(tail_begin_), kb_.c64(p_.cols), 1, sums,
                              [&](llvm::Value* k, const std::vector<llvm::Value*>& current) {
                                std::vector<llvm::Value*> next = current;
                                std::vector<llvm::Value*> xk;
                                for (size_t n = 0; n < n_tokens; ++n) xk.push_back(kb_.load(kb_.f32(), x_rows[n], k, 4));
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
      for (size_t w = 0; w < p_.weights.size(); ++w) {
        std::vector<llvm::Value*> values;
        for (int i = 0; i < rows; ++i) values.push_back(sums[(w * static_cast<size_t>(rows) + static_cast<size_t>(i)) * n_tokens + n]);
        ys.push_back(gather_scalars(kb_, values));
      }
      p_.store(b_.CreateAdd(t0, kb_.c64(static_cast<int64_t>(n))), r0, ys);
    }
  }

  KernelBuilder& kb_;
  llvm::IRBuilder<>& b_;
  const ProductArgs& p_;
  const MatmulTuning& tune_;
  unsigned width_ = 8;
  BlockDecoder decoder_;
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

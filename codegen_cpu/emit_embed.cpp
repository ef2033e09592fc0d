// Embedding lookup over token rows [begin, end): row ids[t] of the mapped token_embd table,
// dequantized to f32 exactly as ref::dequantize_row does for every weight type.
#include "codegen_cpu/emit_math.h"
#include "codegen_cpu/emitters.h"

namespace bitnet::codegen {
namespace {

// Bytes of one table row of `cols` elements, or -1 for a type without a row layout here.
int64_t row_bytes(ir::DType type, int64_t cols) {
  const ir::DTypeInfo& info = ir::dtype_info(type);
  if (type == ir::DType::I2_S) return cols / 4;  // 4 codes per byte; the scale follows the whole tensor
  if (cols % info.block_size != 0) return -1;
  return cols / info.block_size * info.block_bytes;
}

struct Dequant {
  KernelBuilder& kb;
  llvm::IRBuilder<>& b;
  llvm::Value* src;  // the row's first byte
  llvm::Value* dst;  // float[cols]
  int64_t cols;

  llvm::Value* byte(llvm::Value* base, llvm::Value* at) { return kb.load(kb.i8(), base, at); }
  llvm::Value* f16_at(llvm::Value* base, int64_t offset) {  // unaligned F16 field -> float
    return b.CreateFPExt(b.CreateAlignedLoad(kb.f16(), kb.byte_offset(base, kb.c64(offset)), llvm::MaybeAlign(1)),
                         kb.f32());
  }
  void put(llvm::Value* index, llvm::Value* v) { kb.store(v, dst, index, 4); }
  llvm::Value* to_f32(llvm::Value* int_value) { return b.CreateSIToFP(int_value, kb.f32()); }
  // Every block of `block_bytes` bytes / `block_size` weights: body(block base ptr, first weight index).
  void blocks(int64_t block_size, int64_t block_bytes, const std::function<void(llvm::Value*, llvm::Value*)>& body) {
    kb.loop(kb.c64(0), kb.c64(cols / block_size), 1, [&](llvm::Value* blk) {
      body(kb.byte_offset(src, b.CreateMul(blk, kb.c64(block_bytes))), b.CreateMul(blk, kb.c64(block_size)));
    });
  }

  void f32() {
    kb.loop(kb.c64(0), kb.c64(cols), 1, [&](llvm::Value* i) { put(i, kb.load(kb.f32(), src, i, 1)); });
  }
  void f16() {
    kb.loop(kb.c64(0), kb.c64(cols), 1,
            [&](llvm::Value* i) { put(i, b.CreateFPExt(kb.load(kb.f16(), src, i, 1), kb.f32())); });
  }
  void bf16() {
    kb.loop(kb.c64(0), kb.c64(cols), 1, [&](llvm::Value* i) {
      llvm::Value* bits = b.CreateShl(b.CreateZExt(kb.load(kb.i16(), src, i, 1), kb.i32()), 16);
      put(i, b.CreateBitCast(bits, kb.f32()));
    });
  }
  // Q8_0: f16 d + 32 int8; w = q * d.
  void q8_0() {
    blocks(32, 34, [&](llvm::Value* blk, llvm::Value* first) {
      llvm::Value* d = f16_at(blk, 0);
      kb.loop(kb.c64(0), kb.c64(32), 1, [&](llvm::Value* j) {
        put(b.CreateAdd(first, j), b.CreateFMul(to_f32(byte(kb.byte_offset(blk, kb.c64(2)), j)), d));
      });
    });
  }
  // Q4_0: f16 d + 16 bytes; weight j is the low nibble of byte j, weight j + 16 the high one, minus 8.
  void q4_0() {
    blocks(32, 18, [&](llvm::Value* blk, llvm::Value* first) {
      llvm::Value* d = f16_at(blk, 0);
      kb.loop(kb.c64(0), kb.c64(16), 1, [&](llvm::Value* j) {
        llvm::Value* q = b.CreateZExt(byte(kb.byte_offset(blk, kb.c64(2)), j), kb.i32());
        put(b.CreateAdd(first, j), b.CreateFMul(to_f32(b.CreateSub(b.CreateAnd(q, 15), kb.c32(8))), d));
        put(b.CreateAdd(first, b.CreateAdd(j, kb.c64(16))),
            b.CreateFMul(to_f32(b.CreateSub(b.CreateLShr(q, 4), kb.c32(8))), d));
      });
    });
  }
  // Q6_K: ql[128] + qh[64] + int8 scales[16] + f16 d per 256; two halves of 128 (see quant.cpp).
  void q6_k() {
    blocks(256, 210, [&](llvm::Value* blk, llvm::Value* first) {
      llvm::Value* d = f16_at(blk, 208);
      for (int half = 0; half < 2; ++half) {
        llvm::Value* ql = kb.byte_offset(blk, kb.c64(64 * half));
        llvm::Value* qh = kb.byte_offset(blk, kb.c64(128 + 32 * half));
        llvm::Value* sc = kb.byte_offset(blk, kb.c64(192 + 8 * half));
        llvm::Value* y = b.CreateAdd(first, kb.c64(128 * half));
        kb.loop(kb.c64(0), kb.c64(32), 1, [&](llvm::Value* l) {
          llvm::Value* is = b.CreateUDiv(l, kb.c64(16));
          llvm::Value* lo0 = b.CreateZExt(byte(ql, l), kb.i32());
          llvm::Value* lo1 = b.CreateZExt(byte(ql, b.CreateAdd(l, kb.c64(32))), kb.i32());
          llvm::Value* hi = b.CreateZExt(byte(qh, l), kb.i32());
          llvm::Value* nib[4] = {b.CreateAnd(lo0, 15), b.CreateAnd(lo1, 15), b.CreateLShr(lo0, 4),
                                 b.CreateLShr(lo1, 4)};
          for (int k = 0; k < 4; ++k) {
            llvm::Value* q = b.CreateOr(nib[k], b.CreateShl(b.CreateAnd(b.CreateLShr(hi, 2 * k), 3), 4));
            q = b.CreateSub(q, kb.c32(32));
            llvm::Value* s = to_f32(byte(sc, b.CreateAdd(is, kb.c64(2 * k))));
            // (d * scale) * q, each product rounded, in ggml's order.
            put(b.CreateAdd(y, b.CreateAdd(l, kb.c64(32 * k))), b.CreateFMul(b.CreateFMul(d, s), to_f32(q)));
          }
        });
      }
    });
  }
  // Base-3 digit n of a TQ1_0 byte: ((byte * 3^n mod 256) * 3) >> 8.
  llvm::Value* trit(llvm::Value* byte_value, int n) {
    static constexpr int kPow3[6] = {1, 3, 9, 27, 81, 243};
    llvm::Value* q = b.CreateAnd(b.CreateMul(b.CreateZExt(byte_value, kb.i32()), kb.c32(kPow3[n])), 255);
    return b.CreateLShr(b.CreateMul(q, kb.c32(3)), 8);
  }
  // TQ1_0: qs[48] (5 trits per byte) + qh[4] (4 trits) + f16 d per 256; w = (t - 1) * d.
  void tq1_0() {
    blocks(256, 54, [&](llvm::Value* blk, llvm::Value* first) {
      llvm::Value* d = f16_at(blk, 52);
      struct Part {
        int64_t offset, count, digits, base;  // bytes at blk + offset; weight base + count * n + m
      };
      for (const Part& p : {Part{0, 32, 5, 0}, Part{32, 16, 5, 160}, Part{48, 4, 4, 240}}) {
        kb.loop(kb.c64(0), kb.c64(p.count), 1, [&](llvm::Value* m) {
          llvm::Value* v = byte(kb.byte_offset(blk, kb.c64(p.offset)), m);
          for (int n = 0; n < p.digits; ++n) {
            llvm::Value* w = b.CreateFMul(to_f32(b.CreateSub(trit(v, n), kb.c32(1))), d);
            put(b.CreateAdd(first, b.CreateAdd(m, kb.c64(p.base + p.count * n))), w);
          }
        });
      }
    });
  }
  // TQ2_0: qs[64] of 2-bit codes (q + 1) + f16 d per 256; bits 2l of byte m of each 32-byte
  // group are weight 32 l + m of that group's 128.
  void tq2_0() {
    blocks(256, 66, [&](llvm::Value* blk, llvm::Value* first) {
      llvm::Value* d = f16_at(blk, 64);
      for (int group = 0; group < 2; ++group) {
        kb.loop(kb.c64(0), kb.c64(32), 1, [&](llvm::Value* m) {
          llvm::Value* v = b.CreateZExt(byte(kb.byte_offset(blk, kb.c64(32 * group)), m), kb.i32());
          for (int l = 0; l < 4; ++l) {
            llvm::Value* code = b.CreateAnd(b.CreateLShr(v, 2 * l), 3);
            put(b.CreateAdd(first, b.CreateAdd(m, kb.c64(128 * group + 32 * l))),
                b.CreateFMul(to_f32(b.CreateSub(code, kb.c32(1))), d));
          }
        });
      }
    });
  }
  // I2_S: 128 weights per 32 bytes, byte i holding weights i, 32+i, 64+i, 96+i in bits 7-6,
  // 5-4, 3-2, 1-0; codes {0, 1, 2} mean {-1, 0, 1} (3 reads as 0) times the tensor scale.
  void i2_s(llvm::Value* scale) {
    blocks(128, 32, [&](llvm::Value* blk, llvm::Value* first) {
      kb.loop(kb.c64(0), kb.c64(32), 1, [&](llvm::Value* i) {
        llvm::Value* v = b.CreateZExt(byte(blk, i), kb.i32());
        for (int part = 0; part < 4; ++part) {
          llvm::Value* code = b.CreateAnd(b.CreateLShr(v, 6 - 2 * part), 3);
          llvm::Value* w =
              b.CreateSelect(b.CreateICmpEQ(code, kb.c32(0)), kb.cf32(-1.0f),
                             b.CreateSelect(b.CreateICmpEQ(code, kb.c32(2)), kb.cf32(1.0f), kb.cf32(0.0f)));
          put(b.CreateAdd(first, b.CreateAdd(i, kb.c64(32 * part))), b.CreateFMul(w, scale));
        }
      });
    });
  }
};

}  // namespace

bool emit_embed(KernelBuilder& kb, std::string* error) {
  auto& b = kb.b;
  const KernelDesc& d = kb.desc;
  const ir::Type& table = d.operands[0];
  const int64_t vocab = table.shape[0].size;
  const int64_t cols = table.shape[1].size;
  const int64_t stride = row_bytes(table.dtype, cols);
  if (stride < 0 || table.dtype == ir::DType::I32 || table.dtype == ir::DType::I8 || table.dtype == ir::DType::I8Q) {
    if (error)
      *error = "embed: no row dequantizer for " + std::string(ir::dtype_name(table.dtype)) + " with " +
               std::to_string(cols) + " columns";
    return false;
  }
  llvm::Value* data = kb.in(0);
  llvm::Value* ids = kb.in(1);
  llvm::Value* out = kb.out();
  // I2_S keeps one float scale after the packed codes of the whole tensor.
  llvm::Value* i2s_scale = nullptr;
  if (table.dtype == ir::DType::I2_S) {
    i2s_scale = b.CreateAlignedLoad(kb.f32(), kb.byte_offset(data, kb.c64(vocab * cols / 4)), llvm::MaybeAlign(1));
  }
  kb.loop(kb.begin(), kb.end(), 1, [&](llvm::Value* t) {
    llvm::Value* dst = kb.element_ptr(kb.f32(), out, b.CreateMul(t, kb.c64(cols)));
    llvm::Value* id = b.CreateSExt(kb.load(kb.i32(), ids, t, 4), kb.i64());
    // An id outside the table would read past the mapping: such a row becomes zeros (the
    // executor rejects bad ids before a call; this keeps a kernel from ever faulting on one).
    llvm::Value* valid = b.CreateICmpULT(id, kb.c64(vocab));
    llvm::BasicBlock* bad = llvm::BasicBlock::Create(kb.ctx, "bad_id", kb.fn);
    llvm::BasicBlock* good = llvm::BasicBlock::Create(kb.ctx, "row", kb.fn);
    llvm::BasicBlock* done = llvm::BasicBlock::Create(kb.ctx, "row_done", kb.fn);
    b.CreateCondBr(valid, good, bad);
    b.SetInsertPoint(bad);
    kb.loop(kb.c64(0), kb.c64(cols), 1, [&](llvm::Value* i) { kb.store(kb.cf32(0.0f), dst, i, 4); });
    b.CreateBr(done);
    b.SetInsertPoint(good);
    Dequant dq{kb, b, kb.byte_offset(data, b.CreateMul(id, kb.c64(stride))), dst, cols};
    switch (table.dtype) {
      case ir::DType::F32:
        dq.f32();
        break;
      case ir::DType::F16:
        dq.f16();
        break;
      case ir::DType::BF16:
        dq.bf16();
        break;
      case ir::DType::Q8_0:
        dq.q8_0();
        break;
      case ir::DType::Q4_0:
        dq.q4_0();
        break;
      case ir::DType::Q6_K:
        dq.q6_k();
        break;
      case ir::DType::TQ1_0:
        dq.tq1_0();
        break;
      case ir::DType::TQ2_0:
        dq.tq2_0();
        break;
      case ir::DType::I2_S:
        dq.i2_s(i2s_scale);
        break;
      default:
        break;
    }
    b.CreateBr(done);
    b.SetInsertPoint(done);
  });
  return true;
}

}  // namespace bitnet::codegen

// RMSNorm (rms_norm, norm with gain) and int8 activation quantization (quantize_i8, and
// norm_quantize, the two fused) over token rows [begin, end), with the reference's roundings.
#include "codegen_cpu/emit_math.h"
#include "codegen_cpu/emitters.h"

namespace bitnet::codegen {
namespace {

constexpr unsigned kLanes = 16;

// The i8q layout of the result (schema/abi.h): int8 q[rows][K], then float scale[rows] at
// byte rows * K, then int32 sum[rows] at byte rows * K + 4 * rows.
struct I8qLayout {
  llvm::Value* q;
  llvm::Value* scales;
  llvm::Value* sums;
};

I8qLayout i8q_layout(KernelBuilder& kb, llvm::Value* out, llvm::Value* rows, int64_t k) {
  auto& b = kb.b;
  llvm::Value* q_bytes = b.CreateMul(rows, kb.c64(k));
  llvm::Value* scales = kb.byte_offset(out, q_bytes);
  return {out, scales, kb.byte_offset(scales, b.CreateMul(rows, kb.c64(4)))};
}

// Applies f(index, vector of `n` lanes) over [0, k) in chunks of 16 and a scalar tail, with
// loop-carried values. Keeps the three passes of the quantizer readable.
using ChunkBody =
    std::function<std::vector<llvm::Value*>(llvm::Value* i, unsigned n, const std::vector<llvm::Value*>&)>;
std::vector<llvm::Value*> over_row(
    KernelBuilder& kb, int64_t k, const std::vector<llvm::Value*>& vec_init,
    const std::function<std::vector<llvm::Value*>(const std::vector<llvm::Value*>&)>& to_scalar,
    const ChunkBody& body) {
  const int64_t vector_end = k - k % kLanes;
  std::vector<llvm::Value*> state = vec_init;
  if (vector_end > 0) {
    state = kb.loop_carried(kb.c64(0), kb.c64(vector_end), kLanes, state,
                            [&](llvm::Value* i, const std::vector<llvm::Value*>& cur) { return body(i, kLanes, cur); });
  }
  state = to_scalar(state);
  if (vector_end < k) {
    state = kb.loop_carried(kb.c64(vector_end), kb.c64(k), 1, state,
                            [&](llvm::Value* i, const std::vector<llvm::Value*>& cur) { return body(i, 1, cur); });
  }
  return state;
}

}  // namespace

bool emit_norm(KernelBuilder& kb, std::string* error) {
  auto& b = kb.b;
  const KernelDesc& d = kb.desc;
  const ir::OpKind op = d.op;
  const bool normalise = op != ir::OpKind::QuantizeI8;
  const bool has_gain = op == ir::OpKind::Norm || op == ir::OpKind::NormQuantize;
  const bool quantize = op == ir::OpKind::NormQuantize || op == ir::OpKind::QuantizeI8;
  if (d.operands.empty() || d.operands[0].rank() != 2 || d.operands[0].dtype != ir::DType::F32) {
    if (error) *error = "norm/quantize kernels take f32[T, K]";
    return false;
  }
  const int64_t k = d.operands[0].shape[1].size;
  const auto eps = static_cast<float>(d.attr_float("eps"));
  llvm::Value* x = kb.in(0);
  llvm::Value* gain = has_gain ? kb.in(1) : nullptr;
  llvm::Value* out = kb.out();
  // Rows of this call: T (or R after select_rows), or a static count.
  llvm::Value* rows = d.result.shape[0].is_symbolic() ? kb.n_tokens() : kb.c64(d.result.shape[0].size);
  const I8qLayout layout = quantize ? i8q_layout(kb, out, rows, k) : I8qLayout{};
  llvm::Type* f64v = kb.vec(kb.f64(), kLanes);
  llvm::Type* i32v = kb.vec(kb.i32(), kLanes);

  kb.loop(kb.begin(), kb.end(), 1, [&](llvm::Value* t) {
    llvm::Value* row = b.CreateMul(t, kb.c64(k));
    llvm::Value* xrow = kb.element_ptr(kb.f32(), x, row);
    auto load_x = [&](llvm::Value* i, unsigned n) { return load_vec(kb, kb.f32(), n, xrow, i, 4); };
    auto splat = [&](llvm::Value* s, unsigned n) { return n > 1 ? b.CreateVectorSplat(n, s) : s; };

    // Spec 8.1: squares in float, summed in double (in 16 lanes here: the rounding of the
    // float mean hides the different order except within ~1e-16 of a tie), mean rounded to
    // float, 1 / sqrtf(mean + eps) in float.
    llvm::Value* scale = nullptr;
    if (normalise) {
      auto sum = over_row(
          kb, k, {llvm::Constant::getNullValue(f64v)},
          [&](const std::vector<llvm::Value*>& s) { return std::vector<llvm::Value*>{kb.reduce_fadd(s[0])}; },
          [&](llvm::Value* i, unsigned n, const std::vector<llvm::Value*>& s) {
            llvm::Value* v = load_x(i, n);
            llvm::Value* sq = b.CreateFMul(v, v);
            return std::vector<llvm::Value*>{b.CreateFAdd(s[0], b.CreateFPExt(sq, n > 1 ? f64v : kb.f64()))};
          });
      llvm::Value* mean =
          b.CreateFPTrunc(b.CreateFDiv(sum[0], llvm::ConstantFP::get(kb.f64(), static_cast<double>(k))), kb.f32());
      llvm::Value* root = kb.intrinsic(llvm::Intrinsic::sqrt, {kb.f32()}, {b.CreateFAdd(mean, kb.cf32(eps))});
      scale = b.CreateFDiv(kb.cf32(1.0f), root);
    }
    // The row value the op works on: x, or float(float(x * scale) * gain).
    auto value = [&](llvm::Value* i, unsigned n) {
      llvm::Value* v = load_x(i, n);
      if (!normalise) return v;
      v = b.CreateFMul(v, splat(scale, n));
      if (has_gain) v = b.CreateFMul(v, load_vec(kb, kb.f32(), n, gain, i, 4));
      return v;
    };

    if (!quantize) {
      over_row(
          kb, k, {}, [](const std::vector<llvm::Value*>& s) { return s; },
          [&](llvm::Value* i, unsigned n, const std::vector<llvm::Value*>&) {
            b.CreateAlignedStore(value(i, n), kb.element_ptr(kb.f32(), kb.element_ptr(kb.f32(), out, row), i),
                                 llvm::MaybeAlign(4));
            return std::vector<llvm::Value*>{};
          });
      return;
    }

    // Spec 8.2: amax = max(1e-5, max |v|) in double (a max is exact in any order), the scale
    // rounded once to float, q = round-half-even(float(v * s)) by the 1.5 * 2^23 trick of
    // ggml's nearest_int (bit for bit, NaN included), clamped to int8; S = sum q.
    auto amax = over_row(
        kb, k, {kb.splat(kLanes, kb.cf32(0.0f))},
        [&](const std::vector<llvm::Value*>& s) { return std::vector<llvm::Value*>{b.CreateFPMaxReduce(s[0])}; },
        [&](llvm::Value* i, unsigned n, const std::vector<llvm::Value*>& s) {
          llvm::Value* a = kb.intrinsic(llvm::Intrinsic::fabs, {s[0]->getType()}, {value(i, n)});
          return std::vector<llvm::Value*>{kb.intrinsic(llvm::Intrinsic::maxnum, {a->getType()}, {s[0], a})};
        });
    llvm::Value* amax_d = b.CreateFPExt(amax[0], kb.f64());
    llvm::Value* floor = llvm::ConstantFP::get(kb.f64(), 0.00001);
    amax_d = b.CreateSelect(b.CreateFCmpOGT(amax_d, floor), amax_d, floor);
    llvm::Value* s = b.CreateFPTrunc(b.CreateFDiv(llvm::ConstantFP::get(kb.f64(), 127.0), amax_d), kb.f32());
    llvm::Value* qrow = kb.element_ptr(kb.i8(), layout.q, row);
    auto sum = over_row(
        kb, k, {llvm::Constant::getNullValue(i32v)},
        [&](const std::vector<llvm::Value*>& st) { return std::vector<llvm::Value*>{kb.reduce_add(st[0])}; },
        [&](llvm::Value* i, unsigned n, const std::vector<llvm::Value*>& st) {
          llvm::Type* it = n > 1 ? static_cast<llvm::Type*>(i32v) : kb.i32();
          auto ci = [&](int32_t v) { return n > 1 ? kb.splat(n, kb.c32(v)) : static_cast<llvm::Constant*>(kb.c32(v)); };
          llvm::Value* v = b.CreateFMul(value(i, n), splat(s, n));
          llvm::Value* shifted = b.CreateFAdd(v, n > 1 ? kb.splat(n, kb.cf32(12582912.0f)) : kb.cf32(12582912.0f));
          llvm::Value* r = b.CreateSub(b.CreateAnd(b.CreateBitCast(shifted, it), ci(0x007fffff)), ci(0x00400000));
          r = kb.intrinsic(llvm::Intrinsic::smax, {it},
                           {kb.intrinsic(llvm::Intrinsic::smin, {it}, {r, ci(127)}), ci(-128)});
          llvm::Type* qt = n > 1 ? static_cast<llvm::Type*>(kb.vec(kb.i8(), n)) : kb.i8();
          b.CreateAlignedStore(b.CreateTrunc(r, qt), kb.element_ptr(kb.i8(), qrow, i), llvm::MaybeAlign(1));
          return std::vector<llvm::Value*>{b.CreateAdd(st[0], r)};
        });
    kb.store(s, layout.scales, t, 1);
    kb.store(sum[0], layout.sums, t, 1);
  });
  return true;
}

}  // namespace bitnet::codegen

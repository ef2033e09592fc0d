// I2_S ternary weights times int8 activations (spec 6 and 8.2): exact int32 dot products of
// the 2-bit codes {0,1,2} with the int8 values, then (D - S) / s * scale in float, bit-for-bit
// as ref::matmul_i8q_rows.
//
// Why this shape: byte i of a 32-byte block holds the codes of weights i, 32+i, 64+i, 96+i
// in bits 7-6, 5-4, 3-2, 1-0, so masking (or shifting and masking) a whole block gives the
// codes of 32 contiguous weights whose activations are one contiguous 32-byte load. The
// codes are unsigned and the activations signed, which is exactly vpdpbusd (VNNI) or
// vpmaddubsw + vpmaddwd (exact here: a pair sums to at most 2 * 2 * 128). With 512-bit
// vectors the two 256-bit halves hold the same block of two different rows and the
// activations are broadcast to both halves (a plain load, no shuffle on the hot path); the
// weights stay in their native layout (a compile-time repack would save nothing measurable:
// decode runs at memory speed, and prefill already decodes each weight tile only once).
// Decode masks the four code fields in place (codes * 1, 4, 16, 64, one AND each) into four
// accumulators that are scaled back with exact arithmetic shifts at the end, reads two
// distant row ranges at once and prefetches 4 KiB ahead: that is what reaches DRAM speed.
// Prefill shifts the fields of a tile of 8 rows down once into a stack buffer and then spends
// its vector slots on vpdpbusd only, for every tile of 4 tokens; rows too long for that buffer
// to stay in L1 (the FFN down projection, K = 6912) go in K chunks, the exact int32 partial
// sums of each (row, token) kept in a stack buffer between chunks. Calls of a few tokens (up to
// MatmulTuning::i2s_direct_max_tokens: a batch of decode tokens) skip the buffer, which costs as
// much as their dot products: VNNI tiles of 4 rows x 8 tokens extract the fields in registers and
// lane-sum their 16 accumulators with two 16 x 16 trees. AVX2 without VNNI has 16
// vector registers and no accumulating byte product: its tiles are smaller (4 rows x 2 tokens)
// and sum vpmaddubsw results in int16 over 16 blocks before one vpmaddwd widens them (madd_gemm),
// so that the K loop is vpmaddubsw and vpaddw on registers (at its vpmaddubsw throughput).
// Its decode (madd_gemv) extracts the fields with one shift (codes * 1 and * 4 in two int16
// sums over 8 blocks) instead of three, and widens them once per 8 blocks.
#include "codegen_cpu/emit_math.h"
#include "codegen_cpu/emit_matmul.h"

#include <llvm/IR/IntrinsicsX86.h>

#include <functional>

namespace bitnet::codegen {
namespace {

enum class Isa { kVnni512, kVnni256, kMaddubs512, kMaddubs256, kGeneric };

Isa pick_isa(const TargetFeatures& t, const MatmulTuning& tune) {
  if (tune.portable_only) return Isa::kGeneric;
  const bool wide = tune.i2s_max_vector_bits >= 512;
  if (tune.i2s_allow_vnni && wide && t.avx512vnni && t.avx512bw) return Isa::kVnni512;
  if (tune.i2s_allow_vnni && (t.avxvnni || (t.avx512vnni && t.avx512vl))) return Isa::kVnni256;
  if (wide && t.avx512bw) return Isa::kMaddubs512;
  if (t.avx2) return Isa::kMaddubs256;
  return Isa::kGeneric;
}

class I2sGenerator {
 public:
  I2sGenerator(KernelBuilder& kb, const ProductArgs& p) : kb_(kb), b_(kb.b), p_(p), tune_(matmul_tuning()) {
    isa_ = pick_isa(kb.target, tune_);
    halves_ = isa_ == Isa::kVnni512 || isa_ == Isa::kMaddubs512 ? 2 : 1;
    vector_bytes_ = 32 * halves_;
    blocks_ = p.cols / 128;
    row_bytes_ = p.cols / 4;
  }

  bool emit(std::string* error) {
    if (p_.cols % 128 != 0) {
      if (error) *error = "i2_s needs K % 128 == 0";
      return false;
    }
    // i8q buffer: int8 [T][K], then T f32 scales, then T i32 sums.
    llvm::Value* values = b_.CreateMul(p_.n_tokens, kb_.c64(p_.cols));
    scales_ = kb_.byte_offset(p_.x, values);
    sums_ = kb_.byte_offset(scales_, b_.CreateMul(p_.n_tokens, kb_.c64(4)));
    for (llvm::Value* w : p_.weights) {
      tensor_scales_.push_back(
          b_.CreateAlignedLoad(kb_.f32(), kb_.byte_offset(w, kb_.c64(p_.rows * row_bytes_)), llvm::Align(1)));
    }
    const int per_weight = static_cast<int>(p_.weights.size());
    const int gemv_rows = std::max(1, tune_.i2s_gemv_rows / per_weight);
    const bool avx2 = isa_ == Isa::kMaddubs256;
    const int gemm_rows = std::max(1, (avx2 ? tune_.i2s_gemm_rows_avx2 : tune_.i2s_gemm_rows) / per_weight);
    const int gemm_tokens = avx2 ? tune_.i2s_gemm_tokens_avx2 : tune_.i2s_gemm_tokens;
    // Prefill: each row tile's fields are extracted once into a stack buffer, so the token
    // tiles spend their vector ALU slots on dot products only.
    const int64_t max_slots = static_cast<int64_t>(p_.weights.size()) * ((gemm_rows + halves_ - 1) / halves_);
    const int64_t block_code_bytes = max_slots * 4 * vector_bytes_;
    chunk_end_ = blocks_;
    int64_t chunk_blocks = blocks_;
    if (gemm_tokens > 1 && !avx2 && tune_.i2s_gemm_chunk_bytes > 0 &&
        blocks_ * block_code_bytes > tune_.i2s_gemm_chunk_bytes) {
      const int64_t most = std::max<int64_t>(1, tune_.i2s_gemm_chunk_bytes / block_code_bytes);
      const int64_t chunks = (blocks_ + most - 1) / most;
      chunk_blocks = (blocks_ + chunks - 1) / chunks;  // equal chunks, the last maybe shorter
    }
    if (gemm_tokens > 1) codes_ = code_buffer(static_cast<uint64_t>(chunk_blocks * block_code_bytes));
    TileOptions options;
    options.prologue = [&](int rows, llvm::Value* row) { extract_codes(rows, row); };
    if (chunk_blocks < blocks_) {
      llvm::BasicBlock& entry = kb_.fn->getEntryBlock();
      llvm::IRBuilder<> at_entry(&entry, entry.begin());
      partials_ = at_entry.CreateAlloca(acc_type(), kb_.c64(kPartialTokens * max_slots), "i2s.partials");
      partials_->setAlignment(llvm::Align(64));
      partial_slots_ = max_slots;
    }
    // A row tile of the prefill path through the code buffer (in K chunks where the rows are
    // long), as emit_tiles does it without a gemm_tile.
    auto buffered_tile = [&, chunk_blocks, gemm_tokens](int rows, llvm::Value* row) {
      if (chunk_blocks < blocks_) {
        gemm_tile_chunked(rows, row, gemm_tokens, chunk_blocks);
        return;
      }
      extract_codes(rows, row);
      token_tiles({gemm_tokens, 1}, [&](int n, llvm::Value* t) { micro(rows, n, true, row, t, nullptr); });
    };
    const int direct_rows = std::max(1, tune_.i2s_direct_rows / per_weight);
    // Tiles of the tuned size, then at most one of half that, then single tokens.
    const int direct_tokens = std::max(1, tune_.i2s_direct_tokens);
    std::vector<int> direct_sizes = {direct_tokens};
    if (direct_tokens / 2 > 1) direct_sizes.push_back(direct_tokens / 2);
    if (direct_tokens > 1) direct_sizes.push_back(1);
    const bool direct = gemm_tokens > 1 && vnni() && tune_.i2s_direct_max_tokens >= gemm_tokens;
    if (direct) {
      // Few tokens (a batch of decode tokens): each row tile's fields are extracted in registers
      // for every tile of tokens, which costs less than writing and reading the code buffer
      // once when there are too few tokens to spread that over.
      options.gemm_tile = [&, buffered_tile, direct_rows, direct_sizes](int rows, llvm::Value* row) {
        llvm::Value* few = b_.CreateICmpSLE(p_.n_tokens, kb_.c64(tune_.i2s_direct_max_tokens));
        kb_.if_then(few, [&] {
          // Sub-tiles of direct_rows in a loop (one copy of their code), then the rest.
          const int whole = rows / direct_rows * direct_rows;
          kb_.loop(kb_.c64(0), kb_.c64(whole), direct_rows, [&](llvm::Value* i) {
            llvm::Value* r = b_.CreateAdd(row, i);
            token_tiles(direct_sizes, [&](int n, llvm::Value* t) { direct_micro(direct_rows, n, r, t); });
          });
          if (whole < rows) {
            llvm::Value* r = b_.CreateAdd(row, kb_.c64(whole));
            token_tiles(direct_sizes, [&](int n, llvm::Value* t) { direct_micro(rows - whole, n, r, t); });
          }
        });
        kb_.if_then(b_.CreateNot(few), [&] { buffered_tile(rows, row); });
      };
    } else if (chunk_blocks < blocks_) {
      options.gemm_tile = buffered_tile;
    }
    if (tune_.i2s_start_prefetch_bytes > 0) {
      options.decode_start = [&](const std::vector<llvm::Value*>& stream_rows) {
        start_prefetch(stream_rows, row_bytes_, tune_.i2s_start_prefetch_bytes);
      };
    }
    options.gemv_streams = tune_.i2s_gemv_streams;
    // Batched decode epilogues: 512-bit vectors (two rows per vector) and tiles of 2 rows per
    // weight (or per stream), as the default tuning gives.
    const bool two_streams = tune_.i2s_gemv_streams == 2 && p_.weights.size() == 1;
    if (tune_.i2s_gemv_batch && halves_ == 2 && decode_split() > 0 && (two_streams ? gemv_rows / 2 : gemv_rows) == 2) {
      options.batch_groups = 8;
      options.batch = [&](int groups, llvm::Value* row, llvm::Value* token, llvm::Value* row2) {
        micro_batch(groups, row, token, row2);
      };
    }
    emit_tiles(
        kb_, p_, gemv_rows, gemm_rows, gemm_tokens,
        [&](int rows, int tokens, bool gemm, llvm::Value* row, llvm::Value* token, llvm::Value* row2) {
          micro(rows, tokens, gemm, row, token, row2);
        },
        options);
    return true;
  }

 private:
  // The first `bytes` of each stream (its rows are contiguous), before the first tile: a decode
  // kernel otherwise starts with nothing in flight but what the hardware prefetcher guesses.
  void start_prefetch(const std::vector<llvm::Value*>& stream_rows, int64_t row_bytes, int64_t bytes) {
    for (llvm::Value* w : p_.weights) {
      std::vector<llvm::Value*> starts;
      for (llvm::Value* r : stream_rows) starts.push_back(kb_.byte_offset(w, b_.CreateMul(r, kb_.c64(row_bytes))));
      kb_.loop(kb_.c64(0), kb_.c64(bytes), 64, [&](llvm::Value* at) {
        for (llvm::Value* s : starts) prefetch(kb_, kb_.byte_offset(s, at));
      });
    }
  }

  bool vnni() const { return isa_ == Isa::kVnni512 || isa_ == Isa::kVnni256; }

  // Tokens whose partial sums one K chunk leaves for the next (the partials buffer's size); a
  // row tile's chunks are extracted again for each such block of tokens.
  static constexpr int64_t kPartialTokens = 32;
  // All n_tokens tokens in tiles of the given sizes, largest first, as many of each as fit in
  // what the larger ones left (the last size must be 1): body(tokens, first token). Each size
  // is another copy of the tile's code, so few sizes (compile time).
  void token_tiles(const std::vector<int>& sizes, const std::function<void(int, llvm::Value*)>& body) {
    llvm::Value* tokens = p_.n_tokens;
    llvm::Value* at = kb_.c64(0);
    for (int size : sizes) {
      llvm::Value* from = at;
      llvm::Value* whole = b_.CreateMul(b_.CreateSDiv(b_.CreateSub(tokens, from), kb_.c64(size)), kb_.c64(size));
      at = b_.CreateAdd(from, whole);
      kb_.loop(from, at, size, [&](llvm::Value* t) { body(size, t); });
    }
  }

  // A prefill row tile whose code buffer would outgrow L1 (MatmulTuning::i2s_gemm_chunk_bytes):
  // per block of kPartialTokens tokens, chunk by chunk of K, the chunk's fields are extracted
  // and every token tile adds its dot products over the chunk to the partial sums; the last
  // chunk finishes the tile as micro() always does.
  void gemm_tile_chunked(int rows, llvm::Value* r0, int tile_tokens, int64_t chunk_blocks) {
    llvm::Value* tokens = p_.n_tokens;
    kb_.loop(kb_.c64(0), tokens, kPartialTokens, [&](llvm::Value* first) {
      token_block_ = first;
      llvm::Value* end = kb_.min_i64(b_.CreateAdd(first, kb_.c64(kPartialTokens)), tokens);
      llvm::Value* whole_end = b_.CreateAdd(
          first, b_.CreateMul(b_.CreateSDiv(b_.CreateSub(end, first), kb_.c64(tile_tokens)), kb_.c64(tile_tokens)));
      for (chunk_begin_ = 0; chunk_begin_ < blocks_; chunk_begin_ += chunk_blocks) {
        chunk_end_ = std::min(blocks_, chunk_begin_ + chunk_blocks);
        extract_codes(rows, r0);
        kb_.loop(first, whole_end, tile_tokens,
                 [&](llvm::Value* t) { micro(rows, tile_tokens, true, r0, t, nullptr); });
        kb_.loop(whole_end, end, 1, [&](llvm::Value* t) { micro(rows, 1, true, r0, t, nullptr); });
      }
    });
    chunk_begin_ = 0;
    chunk_end_ = blocks_;
    token_block_ = nullptr;
  }

  // The partial sums of (slot, token t) between K chunks.
  llvm::Value* partial_address(size_t slot, llvm::Value* t) {
    llvm::Value* index = b_.CreateAdd(b_.CreateMul(b_.CreateSub(t, token_block_), kb_.c64(partial_slots_)),
                                      kb_.c64(static_cast<int64_t>(slot)));
    return kb_.element_ptr(acc_type(), partials_, index);
  }

  // The prefill code buffer: one 64-byte aligned stack array in the entry block, shared by
  // the products of one kernel (matmul_cat) when it is large enough.
  llvm::Value* code_buffer(uint64_t size) {
    llvm::BasicBlock& entry = kb_.fn->getEntryBlock();
    for (llvm::Instruction& inst : entry) {
      auto* alloca = llvm::dyn_cast<llvm::AllocaInst>(&inst);
      if (alloca && alloca->getName() == "i2s.codes" &&
          alloca->getAllocationSize(kb_.module.getDataLayout()).value_or(llvm::TypeSize::getFixed(0)) >= size) {
        return alloca;
      }
    }
    llvm::IRBuilder<> at_entry(&entry, entry.begin());
    llvm::AllocaInst* buffer = at_entry.CreateAlloca(llvm::ArrayType::get(kb_.i8(), size), nullptr, "i2s.codes");
    buffer->setAlignment(llvm::Align(64));
    return buffer;
  }

  // How the four 2-bit fields of a weight vector become dot-product operands in the decode
  // path: 4 = masked in place (codes * 1, 4, 16, 64) into four accumulators, 2 = two masks on
  // the vector and on it shifted by 4 (codes * 1, 4), 1 = shifted down (plain codes).
  int decode_split() const {
    if (!vnni()) return 1;  // the int16 partial sums of the vpmaddubsw path need plain codes
    const int s = tune_.i2s_gemv_split;
    return s == 4 || s == 2 ? s : 1;
  }
  // The arithmetic shift that scales accumulator `a` back to plain codes at the end. The
  // prefill path may keep two accumulators of plain codes per (row, token) (shorter
  // vpdpbusd dependency chains, more registers).
  static unsigned acc_shift(bool gemm, int split, int a) {
    return gemm || split == 1 ? 0u : 2u * static_cast<unsigned>(a);
  }

  llvm::VectorType* bytes(unsigned n) { return kb_.vec(kb_.i8(), n); }
  llvm::VectorType* acc_type() {
    return isa_ == Isa::kGeneric ? kb_.vec(kb_.i32(), vector_bytes_) : kb_.vec(kb_.i32(), vector_bytes_ / 4);
  }

  llvm::Value* splat8(uint8_t v) { return kb_.splat(vector_bytes_, b_.getInt8(v)); }

  // 32 bytes at `address`, copied into every half of a vector.
  llvm::Value* load_broadcast(llvm::Value* address) {
    llvm::Value* v = b_.CreateAlignedLoad(bytes(32), address, llvm::Align(1));
    if (halves_ == 1) return v;
    std::vector<int> mask;
    for (unsigned h = 0; h < halves_; ++h)
      for (int i = 0; i < 32; ++i) mask.push_back(i);
    return b_.CreateShuffleVector(v, mask);
  }

  // Block `block` of each row in `rows` (nullptr: zeros), one row per half.
  llvm::Value* load_rows(const std::vector<llvm::Value*>& rows, llvm::Value* block) {
    llvm::Value* offset = b_.CreateMul(block, kb_.c64(32));
    std::vector<llvm::Value*> parts;
    for (llvm::Value* row : rows) {
      parts.push_back(
          row ? static_cast<llvm::Value*>(b_.CreateAlignedLoad(bytes(32), kb_.byte_offset(row, offset), llvm::Align(1)))
              : llvm::Constant::getNullValue(bytes(32)));
    }
    if (parts.size() == 1) return parts[0];
    std::vector<int> mask;
    for (int i = 0; i < 64; ++i) mask.push_back(i);
    return b_.CreateShuffleVector(parts[0], parts[1], mask);
  }

  llvm::Value* lshr16(llvm::Value* w, unsigned bits) {
    llvm::Value* words = b_.CreateBitCast(w, kb_.vec(kb_.i16(), vector_bytes_ / 2));
    return b_.CreateBitCast(
        b_.CreateLShr(words, kb_.splat(vector_bytes_ / 2, b_.getInt16(static_cast<uint16_t>(bits)))),
        bytes(vector_bytes_));
  }

  struct Field {
    llvm::Value* codes;  // <vector_bytes x i8>
    int acc;             // accumulator index
  };
  // The fields in group order (group g = weights 32g..32g+31 of the block).
  std::vector<Field> fields(llvm::Value* w, int split) {
    if (split == 4) {
      return {{b_.CreateAnd(w, splat8(0xC0)), 3},
              {b_.CreateAnd(w, splat8(0x30)), 2},
              {b_.CreateAnd(w, splat8(0x0C)), 1},
              {b_.CreateAnd(w, splat8(0x03)), 0}};
    }
    if (split == 2) {
      llvm::Value* high = lshr16(w, 4);  // bits 7-4 of each byte moved to 3-0 (the masks drop the neighbour's bits)
      return {{b_.CreateAnd(high, splat8(0x0C)), 1},
              {b_.CreateAnd(high, splat8(0x03)), 0},
              {b_.CreateAnd(w, splat8(0x0C)), 1},
              {b_.CreateAnd(w, splat8(0x03)), 0}};
    }
    return {{b_.CreateAnd(lshr16(w, 6), splat8(3)), 0},
            {b_.CreateAnd(lshr16(w, 4), splat8(3)), 0},
            {b_.CreateAnd(lshr16(w, 2), splat8(3)), 0},
            {b_.CreateAnd(w, splat8(3)), 0}};
  }

  llvm::Value* dot(llvm::Value* acc, llvm::Value* codes, llvm::Value* act) {
    if (isa_ == Isa::kVnni512 || isa_ == Isa::kVnni256) {
      llvm::Type* t = acc->getType();
      const auto id =
          isa_ == Isa::kVnni512 ? llvm::Intrinsic::x86_avx512_vpdpbusd_512 : llvm::Intrinsic::x86_avx512_vpdpbusd_256;
      return kb_.intrinsic(id, {}, {acc, b_.CreateBitCast(codes, t), b_.CreateBitCast(act, t)});
    }
    // Generic: widen and multiply; LLVM picks the instructions for the target.
    llvm::Value* c = b_.CreateZExt(codes, acc->getType());
    llvm::Value* a = b_.CreateSExt(act, acc->getType());
    return b_.CreateAdd(acc, b_.CreateMul(c, a));
  }

  llvm::Value* maddubs(llvm::Value* codes, llvm::Value* act) {
    const auto id =
        isa_ == Isa::kMaddubs512 ? llvm::Intrinsic::x86_avx512_pmaddubs_w_512 : llvm::Intrinsic::x86_avx2_pmadd_ub_sw;
    return kb_.intrinsic(id, {}, {codes, act});
  }

  llvm::Value* madd_ones(llvm::Value* words, uint16_t factor = 1) {
    const auto id =
        isa_ == Isa::kMaddubs512 ? llvm::Intrinsic::x86_avx512_pmaddw_d_512 : llvm::Intrinsic::x86_avx2_pmadd_wd;
    return kb_.intrinsic(id, {}, {words, kb_.splat(vector_bytes_ / 2, b_.getInt16(factor))});
  }

  using CodeSource = std::function<std::vector<Field>(size_t slot, llvm::Value* block)>;

  // One block for every (slot, token): accs[(slot * tokens + n) * split + a].
  void block_step(size_t n_slots, const CodeSource& source, const std::vector<llvm::Value*>& act_rows,
                  llvm::Value* block, int split, std::vector<llvm::Value*>& accs) {
    const size_t tokens = act_rows.size();
    // Activations of group g of this block for every token, in every half.
    std::vector<std::vector<llvm::Value*>> acts(tokens);
    llvm::Value* base = b_.CreateMul(block, kb_.c64(128));
    for (size_t n = 0; n < tokens; ++n) {
      for (int g = 0; g < 4; ++g)
        acts[n].push_back(load_broadcast(kb_.byte_offset(act_rows[n], b_.CreateAdd(base, kb_.c64(32 * g)))));
    }
    const bool madd = isa_ == Isa::kMaddubs512 || isa_ == Isa::kMaddubs256;
    for (size_t s = 0; s < n_slots; ++s) {
      const std::vector<Field> f = source(s, block);
      for (size_t n = 0; n < tokens; ++n) {
        llvm::Value*& first = accs[(s * tokens + n) * static_cast<size_t>(split)];
        if (madd) {
          // Int16 sum over the four groups (|sum| <= 4 * 512), then one widening madd.
          llvm::Value* words = maddubs(f[0].codes, acts[n][0]);
          for (int g = 1; g < 4; ++g)
            words = b_.CreateAdd(words, maddubs(f[static_cast<size_t>(g)].codes, acts[n][static_cast<size_t>(g)]));
          first = b_.CreateAdd(first, madd_ones(words));
          continue;
        }
        for (int g = 0; g < 4; ++g) {
          llvm::Value*& acc =
              accs[(s * tokens + n) * static_cast<size_t>(split) + static_cast<size_t>(f[static_cast<size_t>(g)].acc)];
          acc = dot(acc, f[static_cast<size_t>(g)].codes, acts[n][static_cast<size_t>(g)]);
        }
      }
    }
  }

  // The K loop of the AVX2 paths: `blocks_` blocks in runs of `run` blocks (two per iteration,
  // `before_pair` first, e.g. a prefetch), each run summed into `n_words` int16 vectors by
  // `block` and then folded into the `n_accs` int32 accumulators by `widen`.
  using WordBlock = std::function<void(llvm::Value* block, std::vector<llvm::Value*>& words)>;
  using WidenWords = std::function<std::vector<llvm::Value*>(const std::vector<llvm::Value*>& words,
                                                             const std::vector<llvm::Value*>& accs)>;
  std::vector<llvm::Value*> int16_runs(int64_t run, size_t n_words, size_t n_accs, const WordBlock& block,
                                       const WidenWords& widen,
                                       const std::function<void(llvm::Value*)>& before_pair = {}) {
    const std::vector<llvm::Value*> zero_words(n_words, llvm::Constant::getNullValue(kb_.vec(kb_.i16(), 16)));
    // `count` (<= run) blocks from j0 summed in int16, then widened into `acc`.
    auto one_run = [&](llvm::Value* j0, int64_t count, const std::vector<llvm::Value*>& acc) {
      const int64_t pairs = count / 2 * 2;
      std::vector<llvm::Value*> words = zero_words;
      if (pairs > 0) {
        words = kb_.loop_carried(j0, b_.CreateAdd(j0, kb_.c64(pairs)), 2, zero_words,
                                 [&](llvm::Value* j, const std::vector<llvm::Value*>& current) {
                                   std::vector<llvm::Value*> next = current;
                                   if (before_pair) before_pair(j);
                                   block(j, next);
                                   block(b_.CreateAdd(j, kb_.c64(1)), next);
                                   return next;
                                 });
      }
      if (count % 2) block(b_.CreateAdd(j0, kb_.c64(pairs)), words);
      return widen(words, acc);
    };
    std::vector<llvm::Value*> accs(n_accs, llvm::Constant::getNullValue(acc_type()));
    const int64_t full = blocks_ / run * run;
    if (full > 0) {
      accs = kb_.loop_carried(
          kb_.c64(0), kb_.c64(full), run, accs,
          [&](llvm::Value* j0, const std::vector<llvm::Value*>& current) { return one_run(j0, run, current); });
    }
    if (blocks_ % run) accs = one_run(kb_.c64(full), blocks_ % run, accs);
    return accs;
  }

  // AVX2 prefill: 16 vector registers, so per (slot, token) one int16 accumulator of
  // vpmaddubsw results, group by group (the activations of one group for every token, then one
  // code vector at a time), widened into int32 with vpmaddwd every kChunk blocks. Exact: a
  // vpmaddubsw lane is a pair of products in [-2 * 2 * 128, 2 * 2 * 127], and 4 * kChunk = 64
  // of them stay within int16 (vpaddw wraps, so even the partial sums need not). Returns the
  // int32 accumulators [slot * tokens + token].
  static constexpr int64_t kChunk = 16;
  std::vector<llvm::Value*> madd_gemm(size_t n_slots, const std::vector<llvm::Value*>& act_rows) {
    const size_t tokens = act_rows.size();
    const size_t n = n_slots * tokens;
    auto block = [&](llvm::Value* j, std::vector<llvm::Value*>& words) {
      llvm::Value* base = b_.CreateMul(j, kb_.c64(128));
      for (int g = 0; g < 4; ++g) {
        std::vector<llvm::Value*> acts;
        for (size_t t = 0; t < tokens; ++t) {
          acts.push_back(b_.CreateAlignedLoad(
              bytes(32), kb_.byte_offset(act_rows[t], b_.CreateAdd(base, kb_.c64(32 * g))), llvm::Align(1)));
        }
        for (size_t s = 0; s < n_slots; ++s) {
          llvm::Value* codes = b_.CreateAlignedLoad(bytes(32), code_address(n_slots, s, j, g), llvm::Align(32));
          for (size_t t = 0; t < tokens; ++t)
            words[s * tokens + t] = b_.CreateAdd(words[s * tokens + t], maddubs(codes, acts[t]));
        }
      }
    };
    auto widen = [&](const std::vector<llvm::Value*>& words, const std::vector<llvm::Value*>& acc) {
      std::vector<llvm::Value*> out;
      for (size_t i = 0; i < n; ++i) out.push_back(b_.CreateAdd(acc[i], madd_ones(words[i])));
      return out;
    };
    return int16_runs(kChunk, n, n, block, widen);
  }

  // AVX2 decode: the fields of a weight vector with one shift (fields(w, 2): the codes of groups
  // 0 and 2 scaled by 4, of groups 1 and 3 plain) and two int16 accumulators of vpmaddubsw
  // results per (slot, token), words[2 * i + scale] (scale 1: the codes * 4), widened every
  // kGemvChunk blocks as 4 * plain + scaled into one int32 accumulator of 4 * D, shifted back
  // exactly at the end. Exact: a plain vpmaddubsw lane is in [-512, 508], a scaled one in
  // [-2048, 2032] (no saturation), and a block adds two of each to every lane, so 8 blocks
  // keep the scaled sum within [-32768, 32512] (vpaddw wraps, so partial sums need not fit).
  // Per row and block: 1 shift, 4 ANDs, 4 vpmaddubsw and 4 vpaddw. Returns the int32
  // accumulators [slot * tokens + token].
  static constexpr int64_t kGemvChunk = 8;
  std::vector<llvm::Value*> madd_gemv(const std::vector<std::vector<llvm::Value*>>& slots,
                                      const std::vector<llvm::Value*>& act_rows,
                                      const std::vector<llvm::Value*>& row_ptrs) {
    const size_t tokens = act_rows.size();
    const size_t n = slots.size() * tokens;
    auto block = [&](llvm::Value* j, std::vector<llvm::Value*>& words) {
      llvm::Value* base = b_.CreateMul(j, kb_.c64(128));
      std::vector<std::vector<llvm::Value*>> acts(tokens);
      for (size_t t = 0; t < tokens; ++t) {
        for (int g = 0; g < 4; ++g) {
          acts[t].push_back(b_.CreateAlignedLoad(
              bytes(32), kb_.byte_offset(act_rows[t], b_.CreateAdd(base, kb_.c64(32 * g))), llvm::Align(1)));
        }
      }
      for (size_t s = 0; s < slots.size(); ++s) {
        const std::vector<Field> f = fields(load_rows(slots[s], j), 2);
        for (size_t t = 0; t < tokens; ++t) {
          for (size_t g = 0; g < 4; ++g) {
            llvm::Value*& w = words[2 * (s * tokens + t) + static_cast<size_t>(f[g].acc)];
            w = b_.CreateAdd(w, maddubs(f[g].codes, acts[t][g]));
          }
        }
      }
    };
    auto widen = [&](const std::vector<llvm::Value*>& words, const std::vector<llvm::Value*>& acc) {
      std::vector<llvm::Value*> out;
      for (size_t i = 0; i < n; ++i)
        out.push_back(b_.CreateAdd(acc[i], b_.CreateAdd(madd_ones(words[2 * i], 4), madd_ones(words[2 * i + 1]))));
      return out;
    };
    auto prefetch_ahead = [&](llvm::Value* j) {
      if (tune_.i2s_prefetch_bytes <= 0) return;
      llvm::Value* ahead = b_.CreateAdd(b_.CreateMul(j, kb_.c64(32)), kb_.c64(tune_.i2s_prefetch_bytes));
      for (llvm::Value* row : row_ptrs) prefetch(kb_, kb_.byte_offset(row, ahead));
    };
    std::vector<llvm::Value*> accs = int16_runs(kGemvChunk, 2 * n, n, block, widen, prefetch_ahead);
    const unsigned lanes = llvm::cast<llvm::FixedVectorType>(acc_type())->getNumElements();
    for (llvm::Value*& a : accs) a = b_.CreateAShr(a, kb_.splat(lanes, kb_.c32(2)));
    return accs;
  }

  // The few-token prefill path's K loop (VNNI): per block, every slot's fields extracted in
  // registers, then each token's activations loaded once per group and dotted with every slot.
  // One accumulator per (slot, token) of plain codes; returns them [slot * tokens + token].
  std::vector<llvm::Value*> direct_dots(const std::vector<std::vector<llvm::Value*>>& slots,
                                        const std::vector<llvm::Value*>& act_rows,
                                        const std::vector<llvm::Value*>& row_ptrs) {
    const size_t tokens = act_rows.size();
    auto block_step = [&](llvm::Value* j, std::vector<llvm::Value*>& accs) {
      std::vector<std::vector<Field>> f;
      for (const std::vector<llvm::Value*>& slot : slots) f.push_back(fields(load_rows(slot, j), 1));
      llvm::Value* base = b_.CreateMul(j, kb_.c64(128));
      for (size_t g = 0; g < 4; ++g) {
        for (size_t n = 0; n < tokens; ++n) {
          llvm::Value* act =
              load_broadcast(kb_.byte_offset(act_rows[n], b_.CreateAdd(base, kb_.c64(32 * static_cast<int64_t>(g)))));
          for (size_t s = 0; s < slots.size(); ++s)
            accs[s * tokens + n] = dot(accs[s * tokens + n], f[s][g].codes, act);
        }
      }
    };
    const std::vector<llvm::Value*> zeros(slots.size() * tokens, llvm::Constant::getNullValue(acc_type()));
    return block_pairs(0, blocks_, zeros, &row_ptrs, block_step);
  }

  // The K loop over blocks [first, end): two blocks per iteration (one 64-byte line of each
  // row), each iteration prefetching i2s_prefetch_bytes ahead along each row of `prefetch_rows`
  // (null: none), an odd last block after the loop. step(block, accs) adds one block's products.
  std::vector<llvm::Value*> block_pairs(int64_t first, int64_t end, const std::vector<llvm::Value*>& init,
                                        const std::vector<llvm::Value*>* prefetch_rows,
                                        const std::function<void(llvm::Value*, std::vector<llvm::Value*>&)>& step) {
    const int64_t pair_end = end - (end - first) % 2;
    std::vector<llvm::Value*> accs = kb_.loop_carried(
        kb_.c64(first), kb_.c64(pair_end), 2, init, [&](llvm::Value* j, const std::vector<llvm::Value*>& current) {
          std::vector<llvm::Value*> next = current;
          if (prefetch_rows && tune_.i2s_prefetch_bytes > 0) {
            llvm::Value* ahead = b_.CreateAdd(b_.CreateMul(j, kb_.c64(32)), kb_.c64(tune_.i2s_prefetch_bytes));
            for (llvm::Value* row : *prefetch_rows) prefetch(kb_, kb_.byte_offset(row, ahead));
          }
          step(j, next);
          step(b_.CreateAdd(j, kb_.c64(1)), next);
          return next;
        });
    if (pair_end < end) step(kb_.c64(end - 1), accs);
    return accs;
  }

  // A tile of the few-token prefill path: `rows` rows of every weight from r0 times `tokens`
  // tokens from t0, its dot products from direct_dots, its epilogue micro's.
  void direct_micro(int rows, int tokens, llvm::Value* r0, llvm::Value* t0) {
    direct_ = true;
    micro(rows, tokens, false, r0, t0, nullptr);
    direct_ = false;
  }

  // The row ranges of a tile: `rows` rows of weight `weight` from row `first` each.
  struct Source {
    size_t weight;
    llvm::Value* first;
  };
  std::vector<Source> sources(llvm::Value* r0, llvm::Value* r1) const {
    if (r1) return {{0, r0}, {0, r1}};
    std::vector<Source> out;
    for (size_t w = 0; w < p_.weights.size(); ++w) out.push_back({w, r0});
    return out;
  }

  // Slots: vectors of `halves_` rows each, per source; missing rows are nullptr (zeros).
  std::vector<std::vector<llvm::Value*>> make_slots(int rows, const std::vector<Source>& from,
                                                    std::vector<llvm::Value*>& row_ptrs) {
    std::vector<std::vector<llvm::Value*>> slots;
    for (const Source& src : from) {
      llvm::Value* w = p_.weights[src.weight];
      llvm::Value* r0 = src.first;
      for (int i = 0; i < rows; i += static_cast<int>(halves_)) {
        std::vector<llvm::Value*> slot;
        for (unsigned h = 0; h < halves_; ++h) {
          const int r = i + static_cast<int>(h);
          llvm::Value* ptr = nullptr;
          if (r < rows) {
            ptr = kb_.byte_offset(w, b_.CreateMul(b_.CreateAdd(r0, kb_.c64(r)), kb_.c64(row_bytes_)));
            row_ptrs.push_back(ptr);
          }
          slot.push_back(ptr);
        }
        slots.push_back(slot);
      }
    }
    return slots;
  }

  // Where the plain (shifted) fields of group g of `block` for `slot` live in the code buffer
  // (aligned to vector_bytes_: 32 with 256-bit vectors).
  llvm::Value* code_address(size_t slots, size_t slot, llvm::Value* block, int g) {
    llvm::Value* index = b_.CreateAdd(b_.CreateMul(block, kb_.c64(static_cast<int64_t>(slots) * 4)),
                                      kb_.c64(static_cast<int64_t>(slot) * 4 + g));
    return kb_.byte_offset(codes_, b_.CreateMul(index, kb_.c64(vector_bytes_)));
  }

  // The prefill prologue: every block's four fields of the tile's rows into the code buffer.
  void extract_codes(int rows, llvm::Value* r0) {
    std::vector<llvm::Value*> row_ptrs;
    const std::vector<std::vector<llvm::Value*>> slots = make_slots(rows, sources(r0, nullptr), row_ptrs);
    // The current K chunk's blocks (all of them unless gemm_tile_chunked runs).
    kb_.loop(kb_.c64(chunk_begin_), kb_.c64(chunk_end_), 1, [&](llvm::Value* j) {
      // The rows of consecutive tiles are one contiguous stream: prefetching ahead along each
      // row reaches the next tiles' rows, which short prompts (few tokens per row tile) need.
      if (tune_.i2s_prefetch_bytes > 0) {
        llvm::Value* ahead = b_.CreateAdd(b_.CreateMul(j, kb_.c64(32)), kb_.c64(tune_.i2s_prefetch_bytes));
        for (llvm::Value* row : row_ptrs) prefetch(kb_, kb_.byte_offset(row, ahead));
      }
      for (size_t s = 0; s < slots.size(); ++s) {
        const std::vector<Field> f = fields(load_rows(slots[s], j), 1);
        llvm::Value* at = b_.CreateSub(j, kb_.c64(chunk_begin_));
        for (int g = 0; g < 4; ++g)
          b_.CreateAlignedStore(f[static_cast<size_t>(g)].codes, code_address(slots.size(), s, at, g),
                                llvm::Align(vector_bytes_));
      }
    });
  }

  // A tile's integer dot products before the lanes of each row are summed: per (slot, token)
  // one vector (the split accumulators scaled back and added; exact, every lane is a multiple).
  struct TileDots {
    std::vector<Source> from;
    size_t slots = 0;
    std::vector<llvm::Value*> sums;  // [slot * tokens + token]
  };

  // The K loop of rows r0 .. r0 + rows - 1 of every weight matrix (or of the one weight from r0
  // and from r1) times tokens t0 .. t0 + tokens - 1.
  TileDots dot_tile(int rows, int tokens, bool gemm, llvm::Value* r0, llvm::Value* t0, llvm::Value* r1) {
    const int split = direct_ ? 1 : gemm ? (vnni() && tune_.i2s_gemm_accs == 2 ? 2 : 1) : decode_split();
    std::vector<llvm::Value*> row_ptrs;
    const std::vector<Source> from = sources(r0, r1);
    const std::vector<std::vector<llvm::Value*>> slots = make_slots(rows, from, row_ptrs);
    // Fields from the weights (decode) or from the code buffer (prefill).
    const CodeSource source = [&](size_t s, llvm::Value* block) {
      if (!gemm) return fields(load_rows(slots[s], block), split);
      std::vector<Field> f;
      llvm::Value* at = b_.CreateSub(block, kb_.c64(chunk_begin_));
      for (int g = 0; g < 4; ++g) {
        f.push_back({b_.CreateAlignedLoad(bytes(vector_bytes_), code_address(slots.size(), s, at, g),
                                          llvm::Align(vector_bytes_)),
                     g % split});
      }
      return f;
    };
    std::vector<llvm::Value*> act_rows;
    for (int n = 0; n < tokens; ++n)
      act_rows.push_back(kb_.byte_offset(p_.x, b_.CreateMul(b_.CreateAdd(t0, kb_.c64(n)), kb_.c64(p_.cols))));

    const size_t n_accs = slots.size() * static_cast<size_t>(tokens) * static_cast<size_t>(split);
    std::vector<llvm::Value*> init(n_accs, llvm::Constant::getNullValue(acc_type()));
    // Prefill takes the current K chunk (gemm_tile_chunked; else all blocks), after the first
    // one starting from the partial sums the previous chunks left.
    const int64_t first_block = gemm ? chunk_begin_ : 0;
    const int64_t end_block = gemm ? chunk_end_ : blocks_;
    if (gemm && first_block > 0) {
      for (size_t s = 0; s < slots.size(); ++s) {
        for (int n = 0; n < tokens; ++n) {
          init[(s * static_cast<size_t>(tokens) + static_cast<size_t>(n)) * static_cast<size_t>(split)] =
              b_.CreateAlignedLoad(acc_type(), partial_address(s, b_.CreateAdd(t0, kb_.c64(n))),
                                   llvm::Align(vector_bytes_));
        }
      }
    }
    std::vector<llvm::Value*> accs;
    if (direct_) {
      accs = direct_dots(slots, act_rows, row_ptrs);
    } else if (gemm && isa_ == Isa::kMaddubs256) {
      accs = madd_gemm(slots.size(), act_rows);
    } else if (!gemm && isa_ == Isa::kMaddubs256) {
      accs = madd_gemv(slots, act_rows, row_ptrs);
    } else {
      // Prefill reads its fields from the code buffer: only decode streams the weight rows.
      accs = block_pairs(first_block, end_block, init, gemm ? nullptr : &row_ptrs,
                         [&](llvm::Value* j, std::vector<llvm::Value*>& next) {
                           block_step(slots.size(), source, act_rows, j, split, next);
                         });
    }

    TileDots out{from, slots.size(), {}};
    const unsigned lanes = llvm::cast<llvm::FixedVectorType>(acc_type())->getNumElements();
    for (size_t s = 0; s < slots.size(); ++s) {
      for (int n = 0; n < tokens; ++n) {
        const size_t at = (s * static_cast<size_t>(tokens) + static_cast<size_t>(n)) * static_cast<size_t>(split);
        llvm::Value* sum = accs[at];
        for (int a = 1; a < split; ++a) {
          llvm::Value* acc = accs[at + static_cast<size_t>(a)];
          const unsigned shift = acc_shift(gemm, split, a);
          if (shift) acc = b_.CreateAShr(acc, kb_.splat(lanes, kb_.c32(static_cast<int32_t>(shift))));
          sum = b_.CreateAdd(sum, acc);
        }
        out.sums.push_back(sum);
      }
    }
    return out;
  }

  // y = float(float(float(D - S) / s) * scale), each step rounded (no fast-math flags), for
  // the D of one token and weight (any number of rows).
  llvm::Value* y_of(llvm::Value* d, llvm::Value* t, size_t weight) {
    const auto count = llvm::cast<llvm::FixedVectorType>(d->getType())->getNumElements();
    return y_with(d, splat_token(sums_, kb_.i32(), t, count), splat_token(scales_, kb_.f32(), t, count), weight);
  }
  // Spec 8.2 step 5 lane for lane, each lane's token's code sum S and activation scale s in
  // `sums` and `scales`: float(float(D - S) / s) * the tensor scale.
  llvm::Value* y_with(llvm::Value* d, llvm::Value* sums, llvm::Value* scales, size_t weight) {
    const auto count = llvm::cast<llvm::FixedVectorType>(d->getType())->getNumElements();
    llvm::Value* centered = b_.CreateSIToFP(b_.CreateSub(d, sums), kb_.vec(kb_.f32(), count));
    llvm::Value* y = b_.CreateFDiv(centered, scales);
    return b_.CreateFMul(y, b_.CreateVectorSplat(count, tensor_scales_[weight]));
  }
  // The per-token value (activation scale or code sum) of token t in `count` lanes.
  llvm::Value* splat_token(llvm::Value* base, llvm::Type* type, llvm::Value* t, unsigned count) {
    return b_.CreateVectorSplat(count, b_.CreateAlignedLoad(type, kb_.element_ptr(type, base, t), llvm::Align(1)));
  }

  // AVX2 (one row per vector): the lane sums of every dot vector of a tile [slot * tokens +
  // token], four vectors at a time by a vphaddd tree (token-major, so that one token's rows
  // share a tree) instead of one shuffle-and-add ladder per vector.
  std::vector<llvm::Value*> lane_sums(const TileDots& d, int tokens) {
    const size_t n_tokens = static_cast<size_t>(tokens);
    std::vector<size_t> order;  // indexes into d.sums, token-major
    for (size_t n = 0; n < n_tokens; ++n)
      for (size_t s = 0; s < d.slots; ++s) order.push_back(s * n_tokens + n);
    std::vector<llvm::Value*> out(d.sums.size());
    llvm::Value* zero = llvm::Constant::getNullValue(acc_type());
    auto hadd = [&](llvm::Value* a, llvm::Value* b) {
      return kb_.intrinsic(llvm::Intrinsic::x86_avx2_phadd_d, {}, {a, b});
    };
    for (size_t i = 0; i < order.size(); i += 4) {
      llvm::Value* v[4];
      for (size_t k = 0; k < 4; ++k) v[k] = i + k < order.size() ? d.sums[order[i + k]] : zero;
      // [a0+a1, a2+a3, b0+b1, b2+b3 | a4+a5, ...], then [sum a0..3, b, c, d | sum a4..7, b, c, d].
      llvm::Value* quad = hadd(hadd(v[0], v[1]), hadd(v[2], v[3]));
      llvm::Value* sums =
          b_.CreateAdd(b_.CreateShuffleVector(quad, {0, 1, 2, 3}), b_.CreateShuffleVector(quad, {4, 5, 6, 7}));
      for (size_t k = 0; k < 4 && i + k < order.size(); ++k) out[order[i + k]] = b_.CreateExtractElement(sums, k);
    }
    return out;
  }

  // The D of a 512-bit tile per [weight][token] as <rows x i32>, its (slot, token) vectors
  // lane-summed 8 at a time by trees (TreeSum16x16 from level 1: each vector holds two rows'
  // 8 lanes) instead of one reduction ladder per row and token: token-major, so that tree
  // output lane 2 * (token * slots + slot) + half is that row's sum, and one token's rows are
  // adjacent lanes of one output (2 * slots divides 16).
  std::vector<std::vector<llvm::Value*>> tree_dots(const TileDots& d, int rows, int tokens) {
    const size_t n_tokens = static_cast<size_t>(tokens);
    std::vector<llvm::Value*> sums;  // tree outputs, 16 rows each
    {
      std::unique_ptr<TreeSum16x16> tree;
      for (size_t n = 0; n < n_tokens; ++n) {
        for (size_t s = 0; s < d.slots; ++s) {
          if (!tree) tree = std::make_unique<TreeSum16x16>(kb_);
          tree->push_level(d.sums[s * n_tokens + n], 1);
          if ((n * d.slots + s) % 8 == 7) {
            sums.push_back(tree->finish());
            tree.reset();
          }
        }
      }
    }
    const size_t per_weight = d.slots / d.from.size();
    std::vector<std::vector<llvm::Value*>> out(d.from.size());
    for (size_t w = 0; w < d.from.size(); ++w) {
      for (size_t n = 0; n < n_tokens; ++n) {
        std::vector<int> lanes;
        size_t vector = 0;
        for (size_t k = 0; k < per_weight; ++k) {
          for (size_t h = 0; h < 2; ++h) {
            if (static_cast<int>(2 * k + h) >= rows) continue;
            const size_t at = 2 * (n * d.slots + w * per_weight + k) + h;
            vector = at / 16;
            lanes.push_back(static_cast<int>(at % 16));
          }
        }
        out[w].push_back(b_.CreateShuffleVector(sums[vector], lanes));
      }
    }
    return out;
  }

  // One tile: D per (weight, row, token) from the lanes of each half, then y and the stores.
  void micro(int rows, int tokens, bool gemm, llvm::Value* r0, llvm::Value* t0, llvm::Value* r1) {
    const TileDots dots_in = dot_tile(rows, tokens, gemm, r0, t0, r1);
    if (gemm && chunk_end_ < blocks_) {
      // Not the last K chunk: keep the sums for the next.
      for (size_t s = 0; s < dots_in.slots; ++s) {
        for (int n = 0; n < tokens; ++n) {
          b_.CreateAlignedStore(dots_in.sums[s * static_cast<size_t>(tokens) + static_cast<size_t>(n)],
                                partial_address(s, b_.CreateAdd(t0, kb_.c64(n))), llvm::Align(vector_bytes_));
        }
      }
      return;
    }
    const std::vector<Source>& from = dots_in.from;
    if (direct_ && halves_ == 2 && 16 % (2 * dots_in.slots) == 0 &&
        dots_in.slots * static_cast<size_t>(tokens) % 8 == 0) {
      const std::vector<std::vector<llvm::Value*>> row_dots = tree_dots(dots_in, rows, tokens);
      store_tokens(t0, r0, r1, from, row_dots);
      return;
    }
    const unsigned lanes = llvm::cast<llvm::FixedVectorType>(acc_type())->getNumElements();
    const unsigned half_lanes = lanes / halves_;
    const int slots_per_weight = static_cast<int>(dots_in.slots / from.size());
    std::vector<std::vector<std::vector<llvm::Value*>>> dots(
        from.size(), std::vector<std::vector<llvm::Value*>>(static_cast<size_t>(tokens)));
    const std::vector<llvm::Value*> totals =
        isa_ == Isa::kMaddubs256 ? lane_sums(dots_in, tokens) : std::vector<llvm::Value*>{};
    for (size_t s = 0; s < dots_in.slots; ++s) {
      for (int n = 0; n < tokens; ++n) {
        if (!totals.empty()) {
          const int row = static_cast<int>(s) % slots_per_weight;
          if (row < rows) {
            dots[s / static_cast<size_t>(slots_per_weight)][static_cast<size_t>(n)].push_back(
                totals[s * static_cast<size_t>(tokens) + static_cast<size_t>(n)]);
          }
          continue;
        }
        llvm::Value* sum = dots_in.sums[s * static_cast<size_t>(tokens) + static_cast<size_t>(n)];
        for (unsigned h = 0; h < halves_; ++h) {
          const int row = (static_cast<int>(s) % slots_per_weight) * static_cast<int>(halves_) + static_cast<int>(h);
          if (row >= rows) continue;
          llvm::Value* part = sum;
          if (halves_ > 1) {
            std::vector<int> mask;
            for (unsigned i = 0; i < half_lanes; ++i) mask.push_back(static_cast<int>(h * half_lanes + i));
            part = b_.CreateShuffleVector(sum, mask);
          }
          dots[s / static_cast<size_t>(slots_per_weight)][static_cast<size_t>(n)].push_back(kb_.reduce_add(part));
        }
      }
    }
    std::vector<std::vector<llvm::Value*>> row_dots(from.size());
    for (size_t i = 0; i < from.size(); ++i) {
      for (int n = 0; n < tokens; ++n) row_dots[i].push_back(gather_scalars(kb_, dots[i][static_cast<size_t>(n)]));
    }
    store_tokens(t0, r0, r1, from, row_dots);
  }

  // y and the stores of a tile: row_dots[i][n] holds the D of weight (or side) i for token
  // t0 + n. Where the epilogue takes a tile's tokens at once (the silu FFN), y runs once on all
  // their rows side by side (y_with lane for lane, so the same bits as token by token): one wide
  // division and activation instead of a narrow dependent chain per token. Elsewhere token by
  // token: there the shuffles would cost more than they save (measured on relu2).
  void store_tokens(llvm::Value* t0, llvm::Value* r0, llvm::Value* r1, const std::vector<Source>& from,
                    const std::vector<std::vector<llvm::Value*>>& row_dots) {
    const size_t tokens = row_dots[0].size();
    std::vector<llvm::Value*> ts;
    for (size_t n = 0; n < tokens; ++n) ts.push_back(b_.CreateAdd(t0, kb_.c64(static_cast<int64_t>(n))));
    if (!p_.store_tokens || r1 != nullptr || tokens == 1) {
      for (size_t n = 0; n < tokens; ++n) {
        std::vector<llvm::Value*> ys;
        for (size_t i = 0; i < from.size(); ++i) ys.push_back(y_of(row_dots[i][n], ts[n], from[i].weight));
        p_.store_tile(ts[n], r0, r1, ys);
      }
      return;
    }
    std::vector<llvm::Value*> ys;
    for (size_t i = 0; i < from.size(); ++i) {
      const auto count = llvm::cast<llvm::FixedVectorType>(row_dots[i][0]->getType())->getNumElements();
      llvm::Value* d = row_dots[i][0];
      llvm::Value* sums = splat_token(sums_, kb_.i32(), ts[0], count);
      llvm::Value* scales = splat_token(scales_, kb_.f32(), ts[0], count);
      for (size_t n = 1; n < tokens; ++n) {
        d = concat(kb_, d, row_dots[i][n]);
        sums = concat(kb_, sums, splat_token(sums_, kb_.i32(), ts[n], count));
        scales = concat(kb_, scales, splat_token(scales_, kb_.f32(), ts[n], count));
      }
      ys.push_back(y_with(d, sums, scales, from[i].weight));
    }
    p_.store_tokens(ts, r0, ys);
  }

  // Decode, 512-bit vectors: `groups` tiles of 2 rows (per weight, or from r0 and from r1) whose
  // epilogue runs once for all of them. Each tile leaves one vector per weight holding its two
  // rows' 8 lanes; 8 such vectors are summed lane-wise together (TreeSum16x16 from level 1)
  // and y, the activation and the store run on 16 rows at a time. With small K (the test
  // models' 256 and 384) the per-row reductions and divisions cost more than the dot products.
  void micro_batch(int groups, llvm::Value* r0, llvm::Value* t, llvm::Value* r1) {
    // groups == 8: 16 rows per weight (or side), one full tree each.
    const size_t n_from = r1 ? 2 : p_.weights.size();
    std::vector<TreeSum16x16> trees(n_from, TreeSum16x16(kb_));
    std::vector<size_t> weight(n_from);
    for (int g = 0; g < groups; ++g) {
      llvm::Value* offset = kb_.c64(2 * g);
      const TileDots d = dot_tile(2, 1, false, b_.CreateAdd(r0, offset), t, r1 ? b_.CreateAdd(r1, offset) : nullptr);
      for (size_t i = 0; i < n_from; ++i) {
        trees[i].push_level(d.sums[i], 1);
        weight[i] = d.from[i].weight;
      }
    }
    std::vector<llvm::Value*> ys;
    for (size_t i = 0; i < n_from; ++i) ys.push_back(y_of(trees[i].finish(), t, weight[i]));
    p_.store_tile(t, r0, r1, ys);
  }

  KernelBuilder& kb_;
  llvm::IRBuilder<>& b_;
  const ProductArgs& p_;
  const MatmulTuning& tune_;
  Isa isa_ = Isa::kGeneric;
  unsigned halves_ = 1;
  unsigned vector_bytes_ = 32;
  int64_t blocks_ = 0;
  int64_t row_bytes_ = 0;
  llvm::Value* scales_ = nullptr;
  llvm::Value* sums_ = nullptr;
  llvm::Value* codes_ = nullptr;  // prefill code buffer (stack)
  bool direct_ = false;           // dot_tile runs the few-token path (direct_micro)
  // The K chunk of blocks the prefill prologue and tiles work on (gemm_tile_chunked), and its
  // partial sums: kPartialTokens x partial_slots_ vectors from token token_block_.
  int64_t chunk_begin_ = 0;
  int64_t chunk_end_ = 0;
  llvm::AllocaInst* partials_ = nullptr;
  int64_t partial_slots_ = 0;
  llvm::Value* token_block_ = nullptr;
  std::vector<llvm::Value*> tensor_scales_;
};

}  // namespace

bool emit_product_i2s(KernelBuilder& kb, const ProductArgs& p, std::string* error) {
  if (p.weight != ir::DType::I2_S) {
    if (error) *error = "i8q activations multiply only i2_s weights";
    return false;
  }
  return I2sGenerator(kb, p).emit(error);
}

}  // namespace bitnet::codegen

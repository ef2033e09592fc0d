#include "codegen_cuda/decode_program.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <stdexcept>

#include "codegen_cuda/emit_attention_decode.h"
#include "codegen_cuda/emit_embed.h"
#include "codegen_cuda/emit_gather_rows.h"
#include "codegen_cuda/emit_lm_head_f16.h"
#include "codegen_cuda/emit_lm_head_f16_prompt.h"
#include "codegen_cuda/emit_matmul_i2s.h"
#include "codegen_cuda/emit_q8_0.h"
#include "codegen_cuda/emit_rmsnorm_quant.h"
#include "codegen_cuda/emit_rope_kv.h"
#include "codegen_cuda/repack.h"

namespace bitnet::codegen_cuda {
namespace {

// Tokens per block of the batched step's I2_S GEMMs (the emitter's largest tile: each weight
// word loaded once for 8 tokens).
constexpr int kBatchTokenTile = 8;

int64_t round16(int64_t bytes) {
  return (bytes + 15) / 16 * 16;
}

// Collects distinct kernels, buffers and launches while the step is laid out.
class Builder {
 public:
  explicit Builder(DecodeProgram& p) : p_(p) {}

  int buffer(const std::string& name, BufferKind kind, int64_t bytes) {
    DecodeBuffer b;
    b.name = name;
    b.kind = kind;
    b.bytes = round16(bytes);
    p_.buffers.push_back(std::move(b));
    return static_cast<int>(p_.buffers.size()) - 1;
  }
  int weight(const std::string& name, WeightLayout layout, std::vector<std::string> tensors, std::vector<int64_t> rows,
             int64_t cols, int64_t bytes) {
    const int index = buffer(name, BufferKind::kWeight, bytes);
    DecodeBuffer& b = p_.buffers[static_cast<size_t>(index)];
    b.layout = layout;
    b.tensors = std::move(tensors);
    b.rows = std::move(rows);
    b.cols = cols;
    return index;
  }
  int kernel(const KernelSource& k) {
    const auto it = kernel_index_.find(k.name);
    if (it != kernel_index_.end()) return it->second;
    p_.kernels.push_back(k);
    const int index = static_cast<int>(p_.kernels.size()) - 1;
    kernel_index_[k.name] = index;
    return index;
  }
  void launch(const KernelSource& k, KernelRole role, Dim3 grid, std::vector<int> args, bool n_tokens,
              std::string label) {
    p_.launches.push_back(make(k, role, grid, std::move(args), n_tokens, std::move(label)));
  }
  // A launch of the batched step covering `count` tokens, token_tile per block along `axis`.
  void batch_launch(const KernelSource& k, KernelRole role, Dim3 grid, std::vector<int> args, bool n_tokens,
                    std::string label, TokenCount count, int axis, int tile = 1) {
    DecodeLaunch l = make(k, role, grid, std::move(args), n_tokens, std::move(label));
    l.tokens = count;
    l.token_axis = axis;
    l.token_tile = tile;
    p_.batch_launches.push_back(std::move(l));
  }

 private:
  DecodeLaunch make(const KernelSource& k, KernelRole role, Dim3 grid, std::vector<int> args, bool n_tokens,
                    std::string label) {
    DecodeLaunch l;
    l.kernel = kernel(k);
    l.role = role;
    l.grid = grid;
    l.threads = k.threads;
    l.args = std::move(args);
    l.n_tokens_arg = n_tokens;
    l.label = std::move(label);
    return l;
  }

  DecodeProgram& p_;
  std::map<std::string, int> kernel_index_;
};

// What differs between the one-token step and the batched step: the kernels and their shapes
// (the ops, buffers and order are the same).
struct StepForm {
  bool batch;
  bool fuse_norms;
  const KernelSource *qkv, *o, *gate_up, *down, *rope, *scores, *softmax, *pv;  // softmax: separate_softmax only
  const MatmulI2sShape *qkv_s, *o_s, *gate_up_s, *down_s;
  const RopeKvShape* rope_s;
  const AttentionDecodeShape* attn_s;
};

std::string check_config(const DecodeModelConfig& c) {
  if (c.n_embd <= 0 || c.n_ff <= 0 || c.n_head <= 0 || c.n_head_kv <= 0 || c.n_layer <= 0 || c.n_vocab <= 0) {
    return "every dimension must be positive";
  }
  if (!c.layer_tensors.empty() && static_cast<int64_t>(c.layer_tensors.size()) != c.n_layer) {
    return "layer_tensors must name every layer's tensors or none";
  }
  if (c.n_embd % 128 != 0 || c.n_ff % 128 != 0) return "n_embd and n_ff must be multiples of 128 (I2_S rows)";
  if (c.n_embd % c.n_head != 0 || c.n_head % c.n_head_kv != 0) return "heads do not divide n_embd / n_head";
  const int64_t hd = c.n_embd / c.n_head;
  if (hd % 2 != 0 || hd > 256) return "head_dim must be even and <= 256";
  if (c.n_ctx < 32 || c.n_ctx % 32 != 0 || c.n_ctx > kMaxAttentionCells) {
    return "n_ctx must be a multiple of 32 in [32, " + std::to_string(kMaxAttentionCells) + "]";
  }
  // ref::silu_row uses the C library's expf for the n % 16 leftovers; the epilogue reproduces
  // only the vector lanes.
  if (c.act == FfnActivation::kSilu && c.n_ff % 16 != 0) return "silu needs n_ff % 16 == 0";
  if (c.n_embd > 12288) return "n_embd above the LM head kernel's 12288";
  return "";
}

}  // namespace

DecodeLayerTensors gguf_layer_tensors(int64_t layer) {
  const std::string blk = "blk." + std::to_string(layer) + ".";
  return {blk + "attn_norm.weight",     blk + "attn_q.weight",       blk + "attn_k.weight",   blk + "attn_v.weight",
          blk + "attn_sub_norm.weight", blk + "attn_output.weight",  blk + "ffn_norm.weight", blk + "ffn_gate.weight",
          blk + "ffn_up.weight",        blk + "ffn_sub_norm.weight", blk + "ffn_down.weight"};
}

int DecodeProgram::find_buffer(const std::string& name) const {
  for (size_t i = 0; i < buffers.size(); ++i) {
    if (buffers[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

std::string DecodeProgram::source() const {
  std::string s;
  for (const KernelSource& k : kernels) s += k.source;
  return s;
}

int64_t DecodeProgram::weight_bytes() const {
  int64_t total = 0;
  for (const DecodeBuffer& b : buffers) total += b.kind == BufferKind::kWeight ? b.bytes : 0;
  return total;
}

int64_t DecodeProgram::weight_bytes_read_per_token() const {
  int64_t total = 0;
  for (const DecodeBuffer& b : buffers) {
    if (b.kind != BufferKind::kWeight || b.layout == WeightLayout::kRopeCos || b.layout == WeightLayout::kRopeSin) {
      continue;
    }
    // The embedding lookup reads one row per token.
    if (b.layout == WeightLayout::kF16) {
      total += config.n_embd * 2;
    } else if (b.layout == WeightLayout::kQ8_0) {
      total += q8_0_row_bytes(config.n_embd);
    } else {
      total += b.bytes;
    }
  }
  return total;
}

Expected<DecodeProgram> plan_decode_program(const DecodeModelConfig& c, const DecodeProgramOptions& options) {
  if (const std::string why = check_config(c); !why.empty()) return Error{"plan_decode_program: " + why};
  if (options.max_tokens < 1 || options.max_tokens > 4096) {
    return Error{"plan_decode_program: max_tokens must be in [1, 4096]"};
  }
  DecodeProgram p;
  p.config = c;
  p.programmatic_launch = options.pdl != PdlMode::kOff;
  p.max_tokens = options.max_tokens;
  const bool batched = options.max_tokens > 1;
  const int64_t t_max = options.max_tokens;
  Builder b(p);
  const int64_t hd = c.n_embd / c.n_head;
  const int64_t n_kv_embd = c.n_head_kv * hd;
  const int64_t n_qkv = c.n_embd + 2 * n_kv_embd;
  const int64_t embd_words = c.n_embd / 16 * 4;  // bytes of one repacked I2_S row of K = n_embd
  const int64_t ff_words = c.n_ff / 16 * 4;

  // Inputs, scratch, output: rows for max_tokens tokens (the decode step uses the first).
  p.token_buffer = b.buffer("token", BufferKind::kInput, t_max * 4);
  p.pos_buffer = b.buffer("pos", BufferKind::kInput, t_max * 4);
  if (batched) {
    p.seq_buffer = b.buffer("seq", BufferKind::kInput, t_max * 4);
    p.rows_buffer = b.buffer("rows", BufferKind::kInput, t_max * 4);
    p.prompt_buffer = b.buffer("prompt", BufferKind::kInput, t_max * 4);
    p.head_prompt_buffer = b.buffer("head_prompt", BufferKind::kInput, t_max * 4);
  }
  const int x = b.buffer("x", BufferKind::kScratch, t_max * c.n_embd * 4);
  const int act_q = b.buffer("act.q", BufferKind::kScratch, t_max * std::max(c.n_embd, c.n_ff));
  const int act_scale = b.buffer("act.scale", BufferKind::kScratch, t_max * 4);
  const int act_sum = b.buffer("act.sum", BufferKind::kScratch, t_max * 4);
  // Quantized activations: codes, scale, code sum.
  struct Act {
    int q, scale, sum;
  };
  const Act act_a{act_q, act_scale, act_sum};
  // With tail norms a second set: a launch whose tail writes the activations the next product reads
  // never writes the set it reads itself (through the read-only cache, as `const __restrict__`).
  const Act act_b =
      options.tail_norms && !options.fuse_norms
          ? Act{b.buffer("act.q.b", BufferKind::kScratch, std::max(c.n_embd, c.n_ff)),
                b.buffer("act.scale.b", BufferKind::kScratch, 4), b.buffer("act.sum.b", BufferKind::kScratch, 4)}
          : act_a;
  const int qkv = b.buffer("qkv", BufferKind::kScratch, t_max * n_qkv * 4);
  // The rotated F16 queries, from rope_kv to the scores kernel (not used where rope is fused into it).
  const int q16 = batched || !options.fuse_rope ? b.buffer("q16", BufferKind::kScratch, t_max * c.n_embd * 2) : -1;
  const int scores = b.buffer("scores", BufferKind::kScratch, t_max * c.n_head * c.n_ctx * 4);
  const int attn = b.buffer("attn", BufferKind::kScratch, t_max * c.n_embd * 4);
  const int ffn = b.buffer("ffn", BufferKind::kScratch, t_max * c.n_ff * 4);
  const int normed = b.buffer("normed", BufferKind::kScratch, t_max * c.n_embd * 4);
  const int x_out = batched ? b.buffer("x.out", BufferKind::kScratch, t_max * c.n_embd * 4) : -1;
  p.logits_buffer = b.buffer("logits", BufferKind::kOutput, t_max * c.n_vocab * 4);
  // Global weights.
  const bool embd_q8_0 = c.embd_type == TableType::kQ8_0;
  const bool head_q8_0 = c.lm_head_type == TableType::kQ8_0;
  const int embd = embd_q8_0 ? b.weight("token_embd", WeightLayout::kQ8_0, {c.embd_tensor}, {c.n_vocab}, c.n_embd,
                                        c.n_vocab * q8_0_row_bytes(c.n_embd))
                             : b.weight("token_embd", WeightLayout::kF16, {c.embd_tensor}, {c.n_vocab}, c.n_embd,
                                        c.n_vocab * c.n_embd * 2);
  const int lm_head = head_q8_0 ? b.weight("lm_head", WeightLayout::kQ8_0LmHead, {c.lm_head_tensor}, {c.n_vocab},
                                           c.n_embd, c.n_vocab * q8_0_row_bytes(c.n_embd))
                                : b.weight("lm_head", WeightLayout::kF16LmHead, {c.lm_head_tensor}, {c.n_vocab},
                                           c.n_embd, c.n_vocab * f16_row_stride(c.n_embd) * 2);
  const int out_norm = b.weight("output_norm", WeightLayout::kF32, {c.output_norm_tensor}, {c.n_embd}, 0, c.n_embd * 4);
  const int rope_cos = b.weight("rope.cos", WeightLayout::kRopeCos, {}, {}, 0, c.n_ctx * (hd / 2) * 4);
  const int rope_sin = b.weight("rope.sin", WeightLayout::kRopeSin, {}, {}, 0, c.n_ctx * (hd / 2) * 4);

  // Kernels (shared by all layers).
  MatmulI2sShape qkv_shape = decode_gemv_shape(c.n_embd, n_qkv);
  qkv_shape.segment_end[0] = c.n_embd;
  qkv_shape.segment_end[1] = c.n_embd + n_kv_embd;
  MatmulI2sShape o_shape = decode_gemv_shape(c.n_embd, c.n_embd);
  o_shape.epilogue = MatmulI2sEpilogue::kResidualAdd;
  MatmulI2sShape gate_up_shape = decode_gemv_shape(c.n_embd, 2 * c.n_ff);
  gate_up_shape.epilogue = c.act == FfnActivation::kSilu ? MatmulI2sEpilogue::kGluSilu : MatmulI2sEpilogue::kGluRelu2;
  MatmulI2sShape down_shape = decode_gemv_shape(c.n_ff, c.n_embd);
  down_shape.epilogue = MatmulI2sEpilogue::kResidualAdd;
  for (MatmulI2sShape* shape : {&qkv_shape, &o_shape, &gate_up_shape, &down_shape}) {
    shape->fuse_norm = options.fuse_norms;
    shape->norm_eps = c.eps;
    shape->pdl = options.pdl;
  }
  RopeKvShape rope_shape{c.n_head, c.n_head_kv, hd, c.n_ctx};
  rope_shape.pdl = options.pdl;
  AttentionDecodeShape attn_shape{c.n_head, c.n_head_kv, hd, c.n_ctx};
  attn_shape.pdl = options.pdl;
  attn_shape.fuse_rope = options.fuse_rope;
  attn_shape.separate_softmax = options.separate_softmax || c.n_ctx > kMaxSharedSoftmaxCells;
  LmHeadF16Shape lm_shape{c.n_embd, c.n_vocab};
  lm_shape.pdl = options.pdl;
  // The batched step: the same ops as GEMMs over token tiles (separate norms: a fused norm
  // needs one token per block) and rope / attention per token.
  auto gemm_shape = [&](const MatmulI2sShape& decode) {
    MatmulI2sShape g = decode;
    g.tokens_per_block = options.mma_gemm ? 16 : kBatchTokenTile;
    g.rows_per_warp = options.mma_gemm ? 16 : 2;
    g.warps = 4;  // 128 threads: up to 255 registers (8 warps spill on sm_80 at 128)
    g.k_split = 1;
    g.fuse_norm = false;
    g.mma = options.mma_gemm;
    return g;
  };
  const MatmulI2sShape qkv_gemm = gemm_shape(qkv_shape), o_gemm = gemm_shape(o_shape),
                       gate_up_gemm = gemm_shape(gate_up_shape), down_gemm = gemm_shape(down_shape);
  RopeKvShape rope_b = rope_shape;
  rope_b.batched = true;
  AttentionDecodeShape attn_b = attn_shape;
  attn_b.batched = true;
  attn_b.fuse_rope = false;
  // 16 blocks of 32 positions per token and kv head (a 64-token step of the 2B4T shape: 5120
  // blocks) instead of one per 32 cells of the cache (40960 at 4096 cells, mostly past every
  // position at a prompt's start or a short-context decode).
  attn_b.position_blocks = 16;
  // The LM head over the wanted rows: each weight load serves up to 8 of them, and the tiles of
  // one row block run side by side (lm_head_f16_grid), so the head is read from memory about
  // once per step. 64 rows per block: each block stages its tile of x (up to 80 KB of floats
  // read) for 320 KB of the 2B4T head's weights, not 160 KB as with 4 rows per warp.
  LmHeadF16Shape lm_b = lm_shape;
  lm_b.tokens_per_block = static_cast<int>(std::min<int64_t>(8, 24576 / c.n_embd));
  lm_b.rows_per_warp = 8;
  // Tiles whose rows are all the prompt-mode head's (below) are left to it.
  lm_b.skip_prompt_tiles = true;
  // The prompt-mode F16 head (rows of a sequence with two or more wanted in the call): a half-warp
  // per weight row, 8 rows per warp, each weight load serving 8 rows.
  LmHeadF16Shape lm_prompt{c.n_embd, c.n_vocab};
  lm_prompt.rows_per_warp = 8;
  lm_prompt.tokens_per_block = 8;
  lm_prompt.pdl = options.pdl;
  // A Q8_0 head: one kernel for both steps, a token per block row (grid.y); tinyBLAS in both modes.
  LmHeadQ8_0Shape lm_q8_0{c.n_embd, c.n_vocab};
  lm_q8_0.pdl = options.pdl;
  if (options.tail_norms && options.fuse_norms) {
    return Error{"plan_decode_program: tail_norms and fuse_norms exclude each other"};
  }
  const bool tails = options.tail_norms;
  // The emitters throw std::invalid_argument for shapes they cannot take; here that is an error value.
  KernelSource embed_k, norm_embd, norm_ff, norm_out, qkv_k, o_k, gate_up_k, down_k, rope_k, scores_k, softmax_k, pv_k,
      lm_k;
  KernelSource qkv_g, o_g, gate_up_g, down_g, rope_bk, scores_bk, softmax_bk, pv_bk, gather_k, lm_bk, lm_prompt_k;
  try {
    embed_k = embd_q8_0 ? emit_embed_q8_0({c.n_embd, c.n_vocab, options.pdl})
                        : emit_embed_f16({c.n_embd, c.n_vocab, options.pdl});
    norm_embd = emit_rmsnorm_quant({c.n_embd, c.eps, true, false, options.pdl});
    norm_ff = emit_rmsnorm_quant({c.n_ff, c.eps, true, false, options.pdl});
    norm_out = emit_rmsnorm_quant({c.n_embd, c.eps, true, true, options.pdl});
    qkv_k = emit_matmul_i2s(qkv_shape);
    // With tail norms the one-token o, gate|up and down GEMVs normalise their outputs themselves.
    for (auto [kernel, shape] : {std::pair{&o_k, o_shape}, {&gate_up_k, gate_up_shape}, {&down_k, down_shape}}) {
      shape.tail_norm = tails;
      *kernel = emit_matmul_i2s(shape);
    }
    if (!options.fuse_rope) rope_k = emit_rope_kv(rope_shape);
    scores_k = emit_attention_scores(attn_shape);
    if (attn_shape.separate_softmax) softmax_k = emit_attention_softmax(attn_shape);
    AttentionDecodeShape pv_shape = attn_shape;  // with tail norms it makes attn_sub_norm itself
    pv_shape.tail_norm = tails;
    pv_shape.norm_eps = c.eps;
    pv_k = emit_attention_softmax_pv(pv_shape);
    lm_k = head_q8_0 ? emit_lm_head_q8_0(lm_q8_0) : emit_lm_head_f16(lm_shape);
    if (batched) {
      qkv_g = emit_matmul_i2s(qkv_gemm);
      o_g = emit_matmul_i2s(o_gemm);
      gate_up_g = emit_matmul_i2s(gate_up_gemm);
      down_g = emit_matmul_i2s(down_gemm);
      rope_bk = emit_rope_kv(rope_b);
      scores_bk = emit_attention_scores(attn_b);
      if (attn_b.separate_softmax) softmax_bk = emit_attention_softmax(attn_b);
      pv_bk = emit_attention_softmax_pv(attn_b);
      gather_k = emit_gather_rows({c.n_embd, options.pdl});
      lm_bk = head_q8_0 ? lm_k : emit_lm_head_f16(lm_b);
      if (!head_q8_0) lm_prompt_k = emit_lm_head_f16_prompt(lm_prompt);
    }
  } catch (const std::invalid_argument& e) {
    return Error{std::string("plan_decode_program: ") + e.what()};
  }

  // The two step forms: kernels and shapes; the batched form's norms are separate launches.
  const StepForm one_token{false,          options.fuse_norms, &qkv_k,      &o_k,       &gate_up_k, &down_k,
                           &rope_k,        &scores_k,          &softmax_k,  &pv_k,      &qkv_shape, &o_shape,
                           &gate_up_shape, &down_shape,        &rope_shape, &attn_shape};
  const StepForm batch_step{true,        false,  &qkv_g,    &o_g,    &gate_up_g,    &down_g,    &rope_bk, &scores_bk,
                            &softmax_bk, &pv_bk, &qkv_gemm, &o_gemm, &gate_up_gemm, &down_gemm, &rope_b,  &attn_b};
  constexpr auto kBatch = TokenCount::kBatch;
  // A launch of the form's list; `axis` and `tile` say where the batched step's tokens go.
  auto add = [&](const StepForm& f, const KernelSource& k, KernelRole role, Dim3 grid, std::vector<int> args,
                 bool n_tokens, const std::string& label, int axis, int tile = 1) {
    if (!f.batch) return b.launch(k, role, grid, std::move(args), n_tokens, label);
    b.batch_launch(k, role, grid, std::move(args), n_tokens, label, kBatch, axis, tile);
  };
  b.launch(embed_k, KernelRole::kEmbed, embed_grid(1), {embd, p.token_buffer, x}, true, "embed");
  if (batched)
    b.batch_launch(embed_k, KernelRole::kEmbed, embed_grid(1), {embd, p.token_buffer, x}, true, "embed", kBatch, 0);
  // A layer's GGUF tensors (DecodeModelConfig::layer_tensors).
  auto tensors_of = [&](int64_t layer) {
    return c.layer_tensors.empty() ? gguf_layer_tensors(layer) : c.layer_tensors[static_cast<size_t>(layer)];
  };
  // A layer's attn_norm gain, made when first needed (with tail norms: by the layer before's down).
  std::vector<int> attn_norms(static_cast<size_t>(c.n_layer), -1);
  auto attn_norm_of = [&](int64_t layer) {
    int& index = attn_norms[static_cast<size_t>(layer)];
    const std::string blk = "blk." + std::to_string(layer) + ".";
    if (index < 0) {
      index =
          b.weight(blk + "attn_norm", WeightLayout::kF32, {tensors_of(layer).attn_norm}, {c.n_embd}, 0, c.n_embd * 4);
    }
    return index;
  };
  // The tail norms' arrival counter: 0 between launches (each last block resets it), so the
  // launches, which run one after another, share it.
  const int tail_counter = tails ? b.buffer("tail_counter", BufferKind::kScratch, 4) : -1;
  for (int64_t layer = 0; layer < c.n_layer; ++layer) {
    const std::string blk = "blk." + std::to_string(layer) + ".";  // the buffers' names
    const DecodeLayerTensors t = tensors_of(layer);
    const int attn_norm = attn_norm_of(layer);
    const std::vector<std::string> qkv_names = {t.q, t.k, t.v};
    const int w_qkv = b.weight(blk + "qkv", WeightLayout::kI2sRows, qkv_names, {c.n_embd, n_kv_embd, n_kv_embd},
                               c.n_embd, n_qkv * embd_words);
    const int s_qkv = b.weight(blk + "qkv.scales", WeightLayout::kI2sScales, qkv_names,
                               {c.n_embd, n_kv_embd, n_kv_embd}, c.n_embd, 12);
    const int sub_norm =
        b.weight(blk + "attn_sub_norm", WeightLayout::kF32, {t.attn_sub_norm}, {c.n_embd}, 0, c.n_embd * 4);
    const int w_o = b.weight(blk + "o", WeightLayout::kI2sRows, {t.o}, {c.n_embd}, c.n_embd, c.n_embd * embd_words);
    const int s_o = b.weight(blk + "o.scales", WeightLayout::kI2sScales, {t.o}, {c.n_embd}, c.n_embd, 4);
    const int ffn_norm = b.weight(blk + "ffn_norm", WeightLayout::kF32, {t.ffn_norm}, {c.n_embd}, 0, c.n_embd * 4);
    const std::vector<std::string> gu_names = {t.gate, t.up};
    const int w_gu = b.weight(blk + "gate_up", WeightLayout::kI2sPairs, gu_names, {c.n_ff, c.n_ff}, c.n_embd,
                              2 * c.n_ff * embd_words);
    const int s_gu =
        b.weight(blk + "gate_up.scales", WeightLayout::kI2sScales, gu_names, {c.n_ff, c.n_ff}, c.n_embd, 8);
    const int ffn_sub = b.weight(blk + "ffn_sub_norm", WeightLayout::kF32, {t.ffn_sub_norm}, {c.n_ff}, 0, c.n_ff * 4);
    const int w_down =
        b.weight(blk + "down", WeightLayout::kI2sRows, {t.down}, {c.n_embd}, c.n_ff, c.n_embd * ff_words);
    const int s_down = b.weight(blk + "down.scales", WeightLayout::kI2sScales, {t.down}, {c.n_embd}, c.n_ff, 4);
    const int k_cache = b.buffer(blk + "k_cache", BufferKind::kState, c.n_ctx * n_kv_embd * 2);
    const int v_cache = b.buffer(blk + "v_cache", BufferKind::kState, c.n_ctx * n_kv_embd * 2);

    // The layer's launches in one step form: a product on the norm of `input` is one fused launch or
    // rmsnorm_quant then the product; the batched rope and attention kernels also take each
    // token's sequence. With tail norms (one-token form): the product's input was normalised by
    // the launch before it (`normed_before`), it reads the activations of set `in` and normalises
    // its own output with `tail_gain` (-1: no tail) into set `out`, the normed floats also to
    // `tail_normed` (-1: not).
    struct Tail {
      bool normed_before = false;
      int tail_gain = -1;
      int tail_normed = -1;
      const Act* in = nullptr;   // null: act_a
      const Act* out = nullptr;  // null: act_a
    };
    auto launch_layer = [&](const StepForm& f) {
      auto matmul = [&](const KernelSource& k, const MatmulI2sShape& shape, int weights, int scales, int input,
                        int gain, int output, const std::string& label, const KernelSource& norm_k,
                        const std::string& norm_label, Tail tail = {}) {
        if (f.fuse_norms) {
          add(f, k, KernelRole::kMatmulI2s, matmul_i2s_grid(shape, 1), {weights, scales, input, gain, output}, true,
              label, 1, shape.tokens_per_block);
          return;
        }
        if (f.batch || !tails) tail = {};
        const Act& in = tail.in ? *tail.in : act_a;
        const Act& out = tail.out ? *tail.out : act_a;
        if (!tail.normed_before) {
          add(f, norm_k, KernelRole::kRmsNormQuant, rmsnorm_quant_grid(1), {input, gain, in.q, in.scale, in.sum, -1},
              true, norm_label, 0);
        }
        std::vector<int> args = {weights, scales, in.q, in.scale, in.sum, output};
        if (tail.tail_gain >= 0) {
          args.insert(args.end(), {tail.tail_gain, out.q, out.scale, out.sum, tail.tail_normed, tail_counter});
        }
        add(f, k, KernelRole::kMatmulI2s, matmul_i2s_grid(shape, 1), std::move(args), true, label, 1,
            shape.tokens_per_block);
      };
      auto with_seq = [&](std::vector<int> args) {
        if (f.batch) args.push_back(p.seq_buffer);
        return args;
      };
      const bool last = layer + 1 == c.n_layer;
      matmul(*f.qkv, *f.qkv_s, w_qkv, s_qkv, x, attn_norm, qkv, blk + "qkv", norm_embd, blk + "attn_norm",
             {.normed_before = layer > 0});
      if (f.attn_s->fuse_rope) {
        add(f, *f.scores, KernelRole::kAttnScores, attention_scores_grid(*f.attn_s),
            {qkv, rope_cos, rope_sin, p.pos_buffer, k_cache, v_cache, scores}, false, blk + "rope_attn_scores", 2);
      } else {
        add(f, *f.rope, KernelRole::kRopeKv, rope_kv_grid(*f.rope_s),
            with_seq({qkv, rope_cos, rope_sin, p.pos_buffer, q16, k_cache, v_cache}), false, blk + "rope_kv", 1);
        add(f, *f.scores, KernelRole::kAttnScores, attention_scores_grid(*f.attn_s),
            with_seq({q16, k_cache, p.pos_buffer, scores}), false, blk + "attn_scores", 2);
      }
      if (f.attn_s->separate_softmax) {
        std::vector<int> softmax_args = {scores, p.pos_buffer};
        if (f.batch) softmax_args.push_back(p.prompt_buffer);
        add(f, *f.softmax, KernelRole::kAttnSoftmax, attention_softmax_grid(*f.attn_s), std::move(softmax_args), false,
            blk + "attn_softmax", 2);
      }
      std::vector<int> pv_args = {scores, v_cache, p.pos_buffer, attn};
      const bool pv_tail = tails && !f.batch;
      // Sets per layer with tail norms: qkv reads A; softmax·V's tail writes B; o reads B and
      // writes A; gate|up reads A and writes B; down reads B and writes A for the next qkv.
      if (pv_tail) pv_args.insert(pv_args.end(), {sub_norm, act_b.q, act_b.scale, act_b.sum, -1, tail_counter});
      pv_args = with_seq(std::move(pv_args));
      if (f.batch) pv_args.push_back(p.prompt_buffer);
      add(f, *f.pv, KernelRole::kAttnSoftmaxPv, attention_softmax_pv_grid(*f.attn_s), std::move(pv_args), false,
          blk + (f.attn_s->separate_softmax ? "attn_pv" : "attn_softmax_pv"), 2);
      matmul(*f.o, *f.o_s, w_o, s_o, attn, sub_norm, x, blk + "o", norm_embd, blk + "attn_sub_norm",
             {.normed_before = pv_tail, .tail_gain = ffn_norm, .in = &act_b, .out = &act_a});
      matmul(*f.gate_up, *f.gate_up_s, w_gu, s_gu, x, ffn_norm, ffn, blk + "gate_up", norm_embd, blk + "ffn_norm",
             {.normed_before = true, .tail_gain = ffn_sub, .in = &act_a, .out = &act_b});
      matmul(*f.down, *f.down_s, w_down, s_down, ffn, ffn_sub, x, blk + "down", norm_ff, blk + "ffn_sub_norm",
             {.normed_before = true,
              .tail_gain = !tails || f.batch ? -1
                           : last            ? out_norm
                                             : attn_norm_of(layer + 1),
              .tail_normed = last ? normed : -1,
              .in = &act_b,
              .out = &act_a});
    };
    launch_layer(one_token);
    if (batched) launch_layer(batch_step);
  }
  if (!tails) {  // (else the last down's tail made `normed`)
    b.launch(norm_out, KernelRole::kRmsNormQuant, rmsnorm_quant_grid(1),
             {x, out_norm, act_q, act_scale, act_sum, normed}, true, "output_norm");
  }
  b.launch(lm_k, KernelRole::kLmHead, head_q8_0 ? lm_head_q8_0_grid(lm_q8_0, 1) : lm_head_f16_grid(lm_shape, 1),
           {lm_head, normed, p.logits_buffer}, true, "lm_head");
  if (batched) {
    constexpr auto kOutputs = TokenCount::kOutputs;
    b.batch_launch(gather_k, KernelRole::kGatherRows, gather_rows_grid(1), {x, p.rows_buffer, x_out}, true,
                   "gather_rows", kOutputs, 0);
    b.batch_launch(norm_out, KernelRole::kRmsNormQuant, rmsnorm_quant_grid(1),
                   {x_out, out_norm, act_q, act_scale, act_sum, normed}, true, "output_norm", kOutputs, 0);
    if (head_q8_0) {
      b.batch_launch(lm_bk, KernelRole::kLmHead, lm_head_q8_0_grid(lm_q8_0, 1), {lm_head, normed, p.logits_buffer},
                     true, "lm_head", kOutputs, 1);
    } else {
      b.batch_launch(lm_bk, KernelRole::kLmHead, lm_head_f16_grid(lm_b, 1),
                     {lm_head, normed, p.logits_buffer, p.head_prompt_buffer}, true, "lm_head", kOutputs, 0,
                     lm_b.tokens_per_block);
      // Rows of a sequence with two or more wanted in the call: the prompt-mode head over them.
      b.batch_launch(lm_prompt_k, KernelRole::kLmHead, lm_head_f16_prompt_grid(lm_prompt, 1),
                     {lm_head, normed, p.logits_buffer, p.head_prompt_buffer}, true, "lm_head_prompt", kOutputs, 0,
                     lm_prompt.tokens_per_block);
    }
  }
  return p;
}

Expected<std::vector<uint8_t>> decode_weight_bytes(const DecodeProgram& program, int index,
                                                   const TensorBytes& tensors) {
  if (index < 0 || index >= static_cast<int>(program.buffers.size()) ||
      program.buffers[static_cast<size_t>(index)].kind != BufferKind::kWeight) {
    return Error{"decode_weight_bytes: not a weight buffer"};
  }
  const DecodeBuffer& b = program.buffers[static_cast<size_t>(index)];
  const DecodeModelConfig& c = program.config;
  std::vector<uint8_t> out(static_cast<size_t>(b.bytes), 0);
  std::vector<const uint8_t*> data;
  for (const std::string& name : b.tensors) {
    const uint8_t* d = tensors(name);
    if (d == nullptr) return Error{"decode_weight_bytes: tensor " + name + " missing"};
    data.push_back(d);
  }
  auto repacked = [&](size_t t) { return repack_i2s(data[t], b.rows[t], b.cols); };
  switch (b.layout) {
    case WeightLayout::kF32:
      std::memcpy(out.data(), data[0], static_cast<size_t>(b.rows[0] * 4));
      break;
    case WeightLayout::kI2sRows: {
      size_t offset = 0;
      for (size_t t = 0; t < data.size(); ++t) {
        auto words = repacked(t);
        if (!words) return words.error();
        std::memcpy(out.data() + offset, words->data(), words->size() * 4);
        offset += words->size() * 4;
      }
      break;
    }
    case WeightLayout::kI2sPairs: {
      auto first = repacked(0);
      if (!first) return first.error();
      auto second = repacked(1);
      if (!second) return second.error();
      const size_t row_bytes = static_cast<size_t>(b.cols / 16 * 4);
      for (int64_t r = 0; r < b.rows[0]; ++r) {
        std::memcpy(out.data() + (2 * r) * row_bytes, first->data() + r * (b.cols / 16), row_bytes);
        std::memcpy(out.data() + (2 * r + 1) * row_bytes, second->data() + r * (b.cols / 16), row_bytes);
      }
      break;
    }
    case WeightLayout::kI2sScales:
      // I2_S: rows * cols / 4 code bytes, then the tensor's float scale (spec 6).
      for (size_t t = 0; t < data.size(); ++t) std::memcpy(out.data() + 4 * t, data[t] + b.rows[t] * b.cols / 4, 4);
      break;
    case WeightLayout::kF16:
      std::memcpy(out.data(), data[0], static_cast<size_t>(b.rows[0] * b.cols * 2));
      break;
    case WeightLayout::kQ8_0:
    case WeightLayout::kQ8_0LmHead:
      std::memcpy(out.data(), data[0], static_cast<size_t>(b.rows[0] * q8_0_row_bytes(b.cols)));
      break;
    case WeightLayout::kF16LmHead: {
      const std::vector<uint16_t> halves = repack_f16(reinterpret_cast<const uint16_t*>(data[0]), b.rows[0], b.cols);
      std::memcpy(out.data(), halves.data(), halves.size() * 2);
      break;
    }
    case WeightLayout::kRopeCos:
    case WeightLayout::kRopeSin: {
      const RopeTables t = rope_tables(c.n_ctx, c.n_embd / c.n_head, c.freq_base, c.freq_scale);
      const std::vector<float>& v = b.layout == WeightLayout::kRopeCos ? t.cos : t.sin;
      std::memcpy(out.data(), v.data(), v.size() * 4);
      break;
    }
  }
  return out;
}

}  // namespace bitnet::codegen_cuda

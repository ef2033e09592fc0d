// One decode token of a BitNet b1.58 model (spec 7) as a list of CUDA kernel launches over named
// buffers: what a GPU runtime backend executes per token, and what the host emulator test and the
// device check run. Host side only: no CUDA here. The token id and its position are read by the
// kernels from two small device buffers, so one captured CUDA graph serves every step. A second
// list runs a step of several tokens (prompts, several sequences' decode tokens) with the same
// per-token arithmetic (DecodeProgram::batch_launches).
//
// Per layer (11 launches): rmsnorm_quant(attn_norm) -> q|k|v GEMV (one launch, a scale per
// tensor) -> rope_kv (RoPE, q to F16, K/V cache append) -> attention scores -> softmax + P.V (two
// launches above 8192 cells: DecodeProgramOptions::separate_softmax) ->
// rmsnorm_quant(attn_sub_norm) -> o GEMV (the residual add in its epilogue) ->
// rmsnorm_quant(ffn_norm) -> gate|up GEMV (rows interleaved, act(gate) * up in its epilogue) ->
// rmsnorm_quant(ffn_sub_norm) -> down GEMV (residual add). Then the final rmsnorm(output_norm)
// and the F16 LM head; the embedding lookup comes first. With fuse_norms each rmsnorm_quant is
// folded into the GEMV it feeds (7 launches per layer): exact too, but measured slower on an H200
// (every block repeats the norm before its dot products; see codegen_cuda/README.md).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "bitnet/result.h"
#include "codegen_cuda/kernel_source.h"

namespace bitnet::codegen_cuda {

enum class FfnActivation { kSilu, kRelu2 };  // arch bitnet / bitnet-b1.58 (and bitnet-25)

// How a token table (the embedding, the LM head's matrix) is stored; each has its kernels.
enum class TableType {
  kF16,
  kQ8_0,  // bitnet.cpp's quantizer stores the embedding so when n_embd % 256 != 0 (emit_q8_0.h)
};

// The GGUF tensors one layer's kernels read.
struct DecodeLayerTensors {
  std::string attn_norm, q, k, v, attn_sub_norm, o, ffn_norm, gate, up, ffn_sub_norm, down;
};
// llama.cpp's names for layer `layer`: blk.N.attn_norm.weight, blk.N.attn_q.weight, ...
DecodeLayerTensors gguf_layer_tensors(int64_t layer);

// The hyper-parameters and tensors one decode step is specialised to (decode_graph.h reads them
// from a model's optimised IR).
struct DecodeModelConfig {
  int64_t n_embd = 0;
  int64_t n_ff = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t n_layer = 0;
  int64_t n_vocab = 0;
  int64_t n_ctx = 0;  // KV cache cells; % 32 == 0
  float eps = 1e-5f;
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;
  FfnActivation act = FfnActivation::kRelu2;
  // The tensors the kernels read: the embedding, the final norm's gain, the LM head's matrix (the
  // embedding when the model ties them, else output.weight) and each layer's (empty: llama.cpp's
  // names, gguf_layer_tensors; else one per layer).
  std::string embd_tensor = "token_embd.weight";
  std::string output_norm_tensor = "output_norm.weight";
  std::string lm_head_tensor = "token_embd.weight";
  std::vector<DecodeLayerTensors> layer_tensors;
  TableType embd_type = TableType::kF16;
  TableType lm_head_type = TableType::kF16;
};

// How a weight buffer's host bytes are made from the GGUF tensors it names.
enum class WeightLayout {
  kF32,         // one F32 tensor, copied (norm gains)
  kI2sRows,     // I2_S tensors repacked (repack_i2s) and stacked by rows (q|k|v, o, down)
  kI2sPairs,    // two I2_S tensors, rows interleaved: 2r = first's row r, 2r + 1 = second's
  kI2sScales,   // the tensors' float scales, in order
  kF16,         // the F16 embedding as stored (the lookup reads rows of it)
  kF16LmHead,   // the F16 embedding repacked for the LM head (repack_f16)
  kQ8_0,        // a Q8_0 embedding as stored (the lookup reads rows of it)
  kQ8_0LmHead,  // a Q8_0 LM head matrix as stored
  kRopeCos,
  kRopeSin,  // rope_tables()
};

enum class BufferKind {
  kWeight,   // constant, made by decode_weight_bytes
  kState,    // KV cache: zeros at the start, kept across steps
  kScratch,  // written before it is read within a step (launchers zero-fill all buffers at allocation:
             // the tail norms' counter, DecodeProgramOptions::tail_norms, relies on that)
  kInput,    // token id / position: one int, written by the host before each step
  kOutput,   // the logits
};

struct DecodeBuffer {
  std::string name;  // "blk.3.qkv", "blk.3.k_cache", "x", "logits", ...
  BufferKind kind = BufferKind::kScratch;
  int64_t bytes = 0;
  WeightLayout layout = WeightLayout::kF32;  // kWeight only
  std::vector<std::string> tensors;          // kWeight: GGUF tensor names
  std::vector<int64_t> rows;                 // kWeight: each tensor's rows (elements for 1-D)
  int64_t cols = 0;                          // kWeight matrices: the common row length (K)
};

enum class KernelRole {
  kEmbed,
  kRmsNormQuant,
  kMatmulI2s,
  kRopeKv,
  kAttnScores,
  kAttnSoftmax,  // AttentionDecodeShape::separate_softmax only
  kAttnSoftmaxPv,
  kLmHead,
  kGatherRows
};

// How many tokens a launch covers: one (the decode step), the tokens of a batched step, or
// those of its rows whose logits are wanted.
enum class TokenCount { kOne, kBatch, kOutputs };

// A launch: kernel `kernel` of DecodeProgram::kernels with `args` in signature order (buffer
// indices; -1 = a null pointer), then, where `n_tokens_arg`, the int n: 1 for kOne, else the
// launch's token count. `grid` is for one token tile: a kBatch or kOutputs launch of n tokens has
// ceil(n / token_tile) blocks along `token_axis` (0 = x, 1 = y, 2 = z) instead.
struct DecodeLaunch {
  int kernel = 0;
  KernelRole role = KernelRole::kEmbed;
  Dim3 grid;
  int threads = 0;
  std::vector<int> args;
  bool n_tokens_arg = false;
  std::string label;  // "blk.3.qkv" etc., for reports
  TokenCount tokens = TokenCount::kOne;
  int token_axis = 0;
  int token_tile = 1;
};

struct DecodeProgram {
  DecodeModelConfig config;
  std::vector<KernelSource> kernels;  // distinct kernels (layers share them)
  std::vector<DecodeBuffer> buffers;
  std::vector<DecodeLaunch> launches;  // one token (kOne launches)
  // A step of 1..max_tokens tokens, each of any sequence (empty when max_tokens is 1): the same
  // ops with several tokens per launch (I2_S GEMMs with token tiles, rope and attention per
  // token on its sequence's K/V region), then the rows whose logits are wanted gathered and only
  // those normed and through the LM head. Every token's arithmetic is the one-token step's or, where
  // prompt_buffer / head_prompt_buffer flag it, the reference's prompt mode, so its logits are the
  // same bits whatever else the step holds (batch invariance). Tokens of one
  // sequence in one step are in position order; each attends to the cells the step appended
  // before it (rope_kv runs for every token before attention reads any).
  std::vector<DecodeLaunch> batch_launches;
  int max_tokens = 1;
  int token_buffer = -1;  // int [max_tokens]: the token ids of the step (the decode step: [0])
  int pos_buffer = -1;    // int [max_tokens]: their positions (0-based; < n_ctx)
  int seq_buffer = -1;    // int [max_tokens]: their sequences (batched steps; -1 when max_tokens is 1)
  int rows_buffer = -1;   // int [max_tokens]: the tokens whose logits are wanted, ascending (batched steps)
  // int [max_tokens]: 1 where the token's sequence has two or more tokens in the call (batched
  // steps): its attention runs in the reference's prompt mode (F32 probabilities, tinyBLAS P·V),
  // as the CPU engines run a sequence's tokens of one call; 0: decode mode.
  int prompt_buffer = -1;
  // int [max_tokens]: 1 where the wanted row (as rows_buffer orders them) is one of two or more
  // rows of its sequence wanted in the call: the F16 LM head's prompt mode (tinyBLAS on F32 x),
  // as the CPU engines run it; 0: decode mode (x rounded to F16). A Q8_0 head has one mode.
  int head_prompt_buffer = -1;
  int logits_buffer = -1;  // float [max_tokens][n_vocab]: rows in the order of rows_buffer (decode: [0])
  // Launch every kernel with programmatic dependent launch where the GPU allows it (the CUDA driver's
  // CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION; stream capture keeps it as programmatic
  // graph edges, CUDA 12.3+): set when the kernels were emitted with a PdlMode other than kOff.
  // Such kernels wait for their predecessor themselves (griddepcontrol.wait), so they are also
  // correct when launched without the attribute (then the wait does nothing), and for sm_80 the
  // instructions compile to nothing; the attribute needs compute capability 9.0, so a launcher on
  // an older GPU launches these kernels without it.
  bool programmatic_launch = false;

  int find_buffer(const std::string& name) const;  // -1 when absent
  // Every kernel's text in one translation unit (the prelude is guarded).
  std::string source() const;
  // Bytes of all kWeight buffers, and those one step reads (all weights but the embedding
  // table, plus its one row): the numerator of the HBM roofline.
  int64_t weight_bytes() const;
  int64_t weight_bytes_read_per_token() const;
};

struct DecodeProgramOptions {
  bool fuse_norms = false;  // fold each rmsnorm_quant into the GEMV it feeds (measured slower)
  // Programmatic dependent launch points in every kernel (kernel_source.h); DecodeProgram::
  // programmatic_launch tells the launcher. kAfterWait by default: measured 16% faster per token
  // on an H200 (2B4T shape, context 128; codegen_cuda/README.md). The kernels stay correct without
  // the launch attribute (sm_80, older drivers), where the instructions do nothing.
  PdlMode pdl = PdlMode::kAfterWait;
  // Tokens a batched step holds at most (DecodeProgram::batch_launches); 1: none. Scratch, inputs
  // and logits grow with it (the attention scores: max_tokens * n_head * n_ctx floats).
  int max_tokens = 64;
  // The batched step's I2_S GEMMs on int8 tensor cores (MatmulI2sShape::mma: warps of 16 rows x
  // 16 tokens, 4 per block) instead of __dp4a tiles of 8 tokens. The same bits; off until
  // measured on a GPU (bitnet compile --cuda-gemm mma).
  bool mma_gemm = false;
  // The one-token step's rope_kv folded into its attention scores kernel (AttentionDecodeShape::
  // fuse_rope): 10 launches per layer instead of 11 (6 instead of 7 with folded norms), the same
  // bits. The batched step keeps rope_kv as its own launch (its tokens attend to cells other
  // tokens of the step append).
  bool fuse_rope = true;
  // The one-token step's norms done by the last block of the launch before them (a tail norm:
  // MatmulI2sShape::tail_norm, AttentionDecodeShape::tail_norm): attn_sub_norm by softmax·V, the
  // others by o, gate|up and down (the next layer's attn_norm and the final norm included); only
  // layer 0's attn_norm stays a launch. 6 launches per layer instead of 10 (2B4T: 183 instead of
  // 303), the same bits. The tails write a second set of activation buffers in turn, so no launch
  // writes what it reads. Their arrival counter is 0 between launches (zero-filled at allocation,
  // reset by each last block); a step cut off by a device fault can leave it otherwise, and the
  // session is failed then anyway. Not with fuse_norms; off until measured on a GPU (the device
  // check runs both).
  bool tail_norms = false;
  // The softmax as a launch of its own before P·V (AttentionDecodeShape::separate_softmax): one
  // launch more per layer, the same bits. Always so above kMaxSharedSoftmaxCells cells, where a
  // row of probabilities no longer fits in shared memory.
  bool separate_softmax = false;
};

// Plans the kernels, buffers and launches of one decode token. Errors for shapes the kernels do
// not support (n_embd or n_ff not a multiple of 128, silu with n_ff % 16 != 0, head_dim odd or > 256,
// n_ctx not a multiple of 32 or above kMaxAttentionCells of emit_attention_decode.h, ...).
Expected<DecodeProgram> plan_decode_program(const DecodeModelConfig& config, const DecodeProgramOptions& options = {});

// The GGUF bytes of a tensor by name (I2_S with its trailing scale, F16, F32, Q8_0), or null. The
// ternary matrices are read as I2_S: a model stored as TQ2_0 / TQ1_0 (decode_graph.h accepts
// them) needs a caller that hands them over as I2_S bytes computing the same products
// (gguf::ternary_as_i2s, as compiler/cuda_model.cpp does).
using TensorBytes = std::function<const uint8_t*(const std::string& name)>;
// The host contents of weight buffer `index` (kWeight), from the model's tensors.
Expected<std::vector<uint8_t>> decode_weight_bytes(const DecodeProgram& program, int index, const TensorBytes& tensors);

}  // namespace bitnet::codegen_cuda

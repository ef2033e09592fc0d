// A model: a GGUF file compiled for this CPU (or a compiled plan), its metadata and its
// vocabulary. Immutable once loaded: one Model may be shared by many Contexts on different
// threads.
#pragma once

#include "bitnet/export.h"

#include "bitnet/result.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet {

using Token = int32_t;

// What the compiler prints while it compiles a GGUF (bitnet run --print-after-all, ...), sent
// to the log callback at LogLevel::kInfo. Any of them skips the plan cache: a cached plan runs
// no passes.
struct CompilerDiagnostics {
  bool print_after_all = false;          // the IR after every pass
  std::vector<std::string> print_after;  // the IR after these passes (compiler_pass_names())
  bool time_passes = false;              // each pass's time
  bool any() const { return print_after_all || time_passes || !print_after.empty(); }
};

struct ModelParams {
  // jit (kernels compiled for this CPU) | interp (the reference interpreter) | cuda (an NVIDIA GPU,
  // through the CUDA driver; BitNet I2_S models) | auto (cuda where it can run the model, else jit,
  // with a note to the log callback saying why)
  std::string backend = "jit";
  std::string target = "host";  // host | x86-64-v3 | x86-64-v4
  std::string tokenizer_path;   // a tokenizer.json or GGUF instead of the model's own
  bool use_cache = true;        // the plan cache (compile once per model and target)
  std::string cache_dir;        // empty: $BITNET_CACHE_DIR or the user's cache directory
  std::string plan_path;        // run this compiled plan (the model path may then be empty)
  // jit: the LM head's type; q8_0 or q6_k requantize an F16 head once at load (fewer bytes per
  // decoded token, slightly different logits). A plan's head was fixed when it was compiled.
  std::string lm_head = "f16";
  // cuda: the batched steps' ternary GEMMs with dp4a or on int8 tensor cores ("mma"; the same
  // results, not yet measured on a GPU).
  std::string cuda_gemm = "dp4a";
  bool verbose = false;  // compilation and plan-load reports to the log callback (kInfo)
  // How long a load that misses the plan cache waits for another process compiling the same
  // model before it compiles too.
  double cache_lock_timeout_s = 600;
  CompilerDiagnostics diagnostics;
};

// The compiler's pass names (what CompilerDiagnostics::print_after accepts); empty in a
// library built for plans only.
BITNET_API std::vector<std::string> compiler_pass_names();

class Vocab;

class BITNET_API Model {
 public:
  // Loads `path` (a GGUF) with `params`; with params.plan_path, the plan's model (at `path`
  // when given). Fails with compat-check's words on files the engine cannot run.
  static Result<std::shared_ptr<const Model>> load(const std::string& path, const ModelParams& params = {});
  ~Model();

  std::string architecture() const;  // general.architecture
  std::string description() const;   // e.g. "bitnet-b1.58 2B I2_S"
  int64_t n_vocab() const;
  int64_t n_embd() const;
  int64_t n_layer() const;
  int64_t n_head() const;
  int64_t n_head_kv() const;
  int64_t n_ctx_train() const;
  int64_t n_params() const;  // elements of all weight tensors
  int64_t size() const;      // bytes of all weight tensors
  // A metadata value rendered as text (numbers in decimal, arrays as "[n items]"); nullopt
  // when the key is absent.
  std::optional<std::string> meta(std::string_view key) const;
  std::vector<std::string> meta_keys() const;
  std::string chat_template() const;  // tokenizer.chat_template, "" when absent
  std::string backend() const;        // what runs it: "jit", "plan", "interp" or "cuda"
  std::string path() const;           // the GGUF file
  int64_t file_size() const;          // its bytes
  // The LM head's type when it is not the file's own (requantized with ModelParams::lm_head or
  // by the plan's compilation: "q8_0", "q6_k"); "" for the file's head.
  std::string lm_head_type() const;
  // Bytes of weights one decode step reads (every matrix, the norm gains, one embedding row):
  // with the machine's read bandwidth, the roofline of decoding.
  int64_t decode_bytes_per_token() const;

  const Vocab& vocab() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class BITNET_API Vocab {
 public:
  // A vocabulary on its own, without a model: a GGUF file's tokenizer (a vocab-only GGUF will
  // do) or a Hugging Face tokenizer.json (recognised by its .json name or its '{').
  static Result<std::shared_ptr<const Vocab>> load(const std::string& path);

  int64_t n_tokens() const;
  bool is_bpe() const;    // byte-level BPE ("gpt2"); otherwise SentencePiece ("llama")
  Token bos() const;      // -1 when none
  Token eos() const;      // -1 when none
  Token eot() const;      // end of turn; -1 when none
  Token pad() const;      // -1 when none
  Token sep() const;      // -1 when none
  Token newline() const;  // the token of "\n" alone; -1 when none
  bool adds_bos() const;
  bool adds_eos() const;
  bool is_eog(Token id) const;       // end of generation (EOS, EOT, ...)
  bool is_control(Token id) const;   // a control token (BOS, EOS, <|eot_id|>, ...)
  std::string text(Token id) const;  // the raw vocabulary string; "" outside the vocabulary
  float score(Token id) const;       // the vocabulary's score (SentencePiece); 0 outside
  // llama.cpp's llama_token_attr bits (normal 4, control 8, user-defined 16, byte 32, ...); 0
  // outside the vocabulary.
  uint32_t attributes(Token id) const;
  // add_special: BOS (and EOS) where the vocabulary adds them; parse_special: control token
  // texts in `text` become those tokens.
  std::vector<Token> tokenize(std::string_view text, bool add_special, bool parse_special) const;
  std::string token_to_piece(Token id, bool render_special = false) const;
  // Ids outside the vocabulary are an error.
  Result<std::string> detokenize(std::span<const Token> ids, bool render_special = false) const;

  struct Impl;
  explicit Vocab(const Impl* impl) : impl_(impl) {}

 private:
  const Impl* impl_;
};

}  // namespace bitnet

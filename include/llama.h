/* llama.h: llama.cpp's C API (its 2025 shape) over the BitNet-cxx engine, for programs written
 * for llama.cpp. Link with -lllama (build/lib/libllama.so). Only what is implemented is
 * declared: a program that uses something else fails to compile rather than at run time.
 *
 * Differences a program may notice (README, "C API"): the engine runs on the CPU (GPU fields
 * are accepted and ignored); embeddings, LoRA, state files and grammars are not provided; the
 * thread count is fixed when a context is created; misuse (NULL or freed handles, token ids
 * outside the vocabulary, positions out of order, batches over n_batch) is reported through
 * the log callback and an error return, never a crash. */
#ifndef LLAMA_H
#define LLAMA_H

#include "ggml-backend.h"
#include "ggml.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define LLAMA_API __attribute__((visibility("default")))
#ifdef __GNUC__
#define DEPRECATED(func, hint) func __attribute__((deprecated(hint)))
#else
#define DEPRECATED(func, hint) func
#endif

#define LLAMA_DEFAULT_SEED 0xFFFFFFFF
#define LLAMA_TOKEN_NULL -1

#ifdef __cplusplus
extern "C" {
#endif

struct llama_vocab;
struct llama_model;
struct llama_context;
struct llama_sampler;

typedef struct llama_memory_i* llama_memory_t;

typedef int32_t llama_pos;
typedef int32_t llama_token;
typedef int32_t llama_seq_id;

enum llama_vocab_type {
  LLAMA_VOCAB_TYPE_NONE = 0,
  LLAMA_VOCAB_TYPE_SPM = 1, /* SentencePiece-style: byte fallback, scores */
  LLAMA_VOCAB_TYPE_BPE = 2, /* GPT-2 byte-level BPE */
  LLAMA_VOCAB_TYPE_WPM = 3,
  LLAMA_VOCAB_TYPE_UGM = 4,
  LLAMA_VOCAB_TYPE_RWKV = 5,
};

enum llama_token_attr {
  LLAMA_TOKEN_ATTR_UNDEFINED = 0,
  LLAMA_TOKEN_ATTR_UNKNOWN = 1 << 0,
  LLAMA_TOKEN_ATTR_UNUSED = 1 << 1,
  LLAMA_TOKEN_ATTR_NORMAL = 1 << 2,
  LLAMA_TOKEN_ATTR_CONTROL = 1 << 3,
  LLAMA_TOKEN_ATTR_USER_DEFINED = 1 << 4,
  LLAMA_TOKEN_ATTR_BYTE = 1 << 5,
  LLAMA_TOKEN_ATTR_NORMALIZED = 1 << 6,
  LLAMA_TOKEN_ATTR_LSTRIP = 1 << 7,
  LLAMA_TOKEN_ATTR_RSTRIP = 1 << 8,
  LLAMA_TOKEN_ATTR_SINGLE_WORD = 1 << 9,
};

enum llama_rope_scaling_type {
  LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED = -1,
  LLAMA_ROPE_SCALING_TYPE_NONE = 0,
  LLAMA_ROPE_SCALING_TYPE_LINEAR = 1,
  LLAMA_ROPE_SCALING_TYPE_YARN = 2,
  LLAMA_ROPE_SCALING_TYPE_LONGROPE = 3,
};

enum llama_pooling_type {
  LLAMA_POOLING_TYPE_UNSPECIFIED = -1,
  LLAMA_POOLING_TYPE_NONE = 0,
  LLAMA_POOLING_TYPE_MEAN = 1,
  LLAMA_POOLING_TYPE_CLS = 2,
  LLAMA_POOLING_TYPE_LAST = 3,
  LLAMA_POOLING_TYPE_RANK = 4,
};

enum llama_attention_type {
  LLAMA_ATTENTION_TYPE_UNSPECIFIED = -1,
  LLAMA_ATTENTION_TYPE_CAUSAL = 0,
  LLAMA_ATTENTION_TYPE_NON_CAUSAL = 1,
};

enum llama_flash_attn_type {
  LLAMA_FLASH_ATTN_TYPE_AUTO = -1,
  LLAMA_FLASH_ATTN_TYPE_DISABLED = 0,
  LLAMA_FLASH_ATTN_TYPE_ENABLED = 1,
};

enum llama_split_mode {
  LLAMA_SPLIT_MODE_NONE = 0,
  LLAMA_SPLIT_MODE_LAYER = 1,
  LLAMA_SPLIT_MODE_ROW = 2,
};

typedef struct llama_token_data {
  llama_token id;
  float logit;
  float p;
} llama_token_data;

typedef struct llama_token_data_array {
  llama_token_data* data; /* samplers may replace or shrink it */
  size_t size;
  int64_t selected; /* index into data (not a token id); -1 before a sampler selects */
  bool sorted;      /* data is sorted by descending logit */
} llama_token_data_array;

typedef bool (*llama_progress_callback)(float progress, void* user_data);

/* Input of llama_decode: n_tokens tokens, each with its position, its sequences (the first is
 * the one whose cache it extends; the others share it) and whether its logits are wanted.
 * pos NULL: each sequence continues where its cache ends; seq_id NULL: sequence 0; logits
 * NULL: only the last token's. embd (embeddings as input) is not supported: leave it NULL. */
typedef struct llama_batch {
  int32_t n_tokens;
  llama_token* token;
  float* embd;
  llama_pos* pos;
  int32_t* n_seq_id;
  llama_seq_id** seq_id;
  int8_t* logits;
} llama_batch;

enum llama_model_kv_override_type {
  LLAMA_KV_OVERRIDE_TYPE_INT,
  LLAMA_KV_OVERRIDE_TYPE_FLOAT,
  LLAMA_KV_OVERRIDE_TYPE_BOOL,
  LLAMA_KV_OVERRIDE_TYPE_STR,
};

struct llama_model_kv_override {
  enum llama_model_kv_override_type tag;
  char key[128];
  union {
    int64_t val_i64;
    double val_f64;
    bool val_bool;
    char val_str[128];
  };
};

struct llama_model_tensor_buft_override {
  const char* pattern;
  ggml_backend_buffer_type_t buft;
};

struct llama_model_params {
  ggml_backend_dev_t* devices;                                          /* ignored: CPU only */
  const struct llama_model_tensor_buft_override* tensor_buft_overrides; /* ignored */
  int32_t n_gpu_layers;                                                 /* ignored */
  enum llama_split_mode split_mode;                                     /* ignored */
  int32_t main_gpu;                                                     /* ignored */
  const float* tensor_split;                                            /* ignored */
  /* Called with 0 before loading (false cancels it) and 1 when the model is ready. */
  llama_progress_callback progress_callback;
  void* progress_callback_user_data;
  /* Metadata overrides are not supported: a non-empty list fails the load. */
  const struct llama_model_kv_override* kv_overrides;
  bool vocab_only;      /* the vocabulary alone: tokenization works, contexts cannot be made */
  bool use_mmap;        /* weights are always mapped */
  bool use_mlock;       /* ignored */
  bool check_tensors;   /* tensors are always checked against their declared sizes */
  bool use_extra_bufts; /* ignored */
  bool no_host;         /* ignored */
};

struct llama_context_params {
  uint32_t n_ctx;     /* cells of all sequences; 0: the model's training context (at most 4096) */
  uint32_t n_batch;   /* tokens one llama_decode may take (the engine may take fewer: see llama_n_batch) */
  uint32_t n_ubatch;  /* the same as n_batch here */
  uint32_t n_seq_max; /* sequences; each gets n_ctx / n_seq_max cells */
  int32_t n_threads;  /* threads for decoding; at most the CPUs this process may use */
  int32_t n_threads_batch;

  enum llama_rope_scaling_type rope_scaling_type; /* only UNSPECIFIED or NONE */
  enum llama_pooling_type pooling_type;           /* only UNSPECIFIED or NONE */
  enum llama_attention_type attention_type;       /* only UNSPECIFIED or CAUSAL */
  enum llama_flash_attn_type flash_attn_type;     /* ignored: attention is always fused */

  float rope_freq_base;  /* 0: the model's; other values are refused */
  float rope_freq_scale; /* 0 or 1 */
  float yarn_ext_factor;
  float yarn_attn_factor;
  float yarn_beta_fast;
  float yarn_beta_slow;
  uint32_t yarn_orig_ctx;
  float defrag_thold;

  ggml_backend_sched_eval_callback cb_eval; /* not supported: must be NULL */
  void* cb_eval_user_data;

  enum ggml_type type_k; /* the cache's types are the engine's own; other values are ignored with a warning */
  enum ggml_type type_v;

  /* Asked before each llama_decode; true aborts it (return 2). */
  ggml_abort_callback abort_callback;
  void* abort_callback_data;

  bool embeddings; /* not supported: must be false */
  bool offload_kqv;
  bool no_perf; /* false: measure the timings llama_perf_context reports */
  bool op_offload;
  bool swa_full;
  bool kv_unified;
};

typedef struct llama_logit_bias {
  llama_token token;
  float bias;
} llama_logit_bias;

typedef struct llama_sampler_chain_params {
  bool no_perf;
} llama_sampler_chain_params;

typedef struct llama_chat_message {
  const char* role;
  const char* content;
} llama_chat_message;

LLAMA_API struct llama_model_params llama_model_default_params(void);
LLAMA_API struct llama_context_params llama_context_default_params(void);
LLAMA_API struct llama_sampler_chain_params llama_sampler_chain_default_params(void);

LLAMA_API void llama_backend_init(void);
LLAMA_API void llama_backend_free(void);
LLAMA_API void llama_numa_init(enum ggml_numa_strategy numa); /* no effect */

/* NULL (with the reason in the log) when the file cannot be loaded; never aborts. */
LLAMA_API struct llama_model* llama_model_load_from_file(const char* path_model, struct llama_model_params params);
LLAMA_API void llama_model_free(struct llama_model* model);
DEPRECATED(LLAMA_API struct llama_model* llama_load_model_from_file(const char* path_model,
                                                                    struct llama_model_params params),
           "use llama_model_load_from_file instead");
DEPRECATED(LLAMA_API void llama_free_model(struct llama_model* model), "use llama_model_free instead");

LLAMA_API struct llama_context* llama_init_from_model(struct llama_model* model, struct llama_context_params params);
DEPRECATED(LLAMA_API struct llama_context* llama_new_context_with_model(struct llama_model* model,
                                                                        struct llama_context_params params),
           "use llama_init_from_model instead");
LLAMA_API void llama_free(struct llama_context* ctx);

LLAMA_API int64_t llama_time_us(void);
LLAMA_API size_t llama_max_devices(void);
LLAMA_API size_t llama_max_parallel_sequences(void);
LLAMA_API bool llama_supports_mmap(void);
LLAMA_API bool llama_supports_mlock(void);
LLAMA_API bool llama_supports_gpu_offload(void);
LLAMA_API bool llama_supports_rpc(void);

LLAMA_API uint32_t llama_n_ctx(const struct llama_context* ctx);
LLAMA_API uint32_t llama_n_batch(const struct llama_context* ctx);
LLAMA_API uint32_t llama_n_ubatch(const struct llama_context* ctx);
LLAMA_API uint32_t llama_n_seq_max(const struct llama_context* ctx);

LLAMA_API const struct llama_model* llama_get_model(const struct llama_context* ctx);
LLAMA_API llama_memory_t llama_get_memory(const struct llama_context* ctx);
LLAMA_API enum llama_pooling_type llama_pooling_type(const struct llama_context* ctx);

LLAMA_API const struct llama_vocab* llama_model_get_vocab(const struct llama_model* model);
LLAMA_API int32_t llama_model_n_ctx_train(const struct llama_model* model);
LLAMA_API int32_t llama_model_n_embd(const struct llama_model* model);
LLAMA_API int32_t llama_model_n_layer(const struct llama_model* model);
LLAMA_API int32_t llama_model_n_head(const struct llama_model* model);
LLAMA_API int32_t llama_model_n_head_kv(const struct llama_model* model);
DEPRECATED(LLAMA_API int32_t llama_n_ctx_train(const struct llama_model* model), "use llama_model_n_ctx_train instead");
DEPRECATED(LLAMA_API int32_t llama_n_embd(const struct llama_model* model), "use llama_model_n_embd instead");
DEPRECATED(LLAMA_API int32_t llama_n_layer(const struct llama_model* model), "use llama_model_n_layer instead");
DEPRECATED(LLAMA_API int32_t llama_n_head(const struct llama_model* model), "use llama_model_n_head instead");
DEPRECATED(LLAMA_API int32_t llama_n_vocab(const struct llama_vocab* vocab), "use llama_vocab_n_tokens instead");

LLAMA_API enum llama_vocab_type llama_vocab_type(const struct llama_vocab* vocab);
LLAMA_API int32_t llama_vocab_n_tokens(const struct llama_vocab* vocab);

/* Metadata as text: the length of the value (as snprintf: the text is cut to buf_size - 1
 * bytes and always terminated), or -1 (and "") when there is no such key. Arrays read as
 * "[n items]". */
LLAMA_API int32_t llama_model_meta_val_str(const struct llama_model* model, const char* key, char* buf,
                                           size_t buf_size);
LLAMA_API int32_t llama_model_meta_count(const struct llama_model* model);
LLAMA_API int32_t llama_model_meta_key_by_index(const struct llama_model* model, int32_t i, char* buf, size_t buf_size);
LLAMA_API int32_t llama_model_meta_val_str_by_index(const struct llama_model* model, int32_t i, char* buf,
                                                    size_t buf_size);
LLAMA_API int32_t llama_model_desc(const struct llama_model* model, char* buf, size_t buf_size);
LLAMA_API uint64_t llama_model_size(const struct llama_model* model);
/* tokenizer.chat_template (name NULL) or tokenizer.chat_template.<name>; NULL when absent. */
LLAMA_API const char* llama_model_chat_template(const struct llama_model* model, const char* name);
LLAMA_API uint64_t llama_model_n_params(const struct llama_model* model);
LLAMA_API bool llama_model_has_encoder(const struct llama_model* model);
LLAMA_API bool llama_model_has_decoder(const struct llama_model* model);
LLAMA_API llama_token llama_model_decoder_start_token(const struct llama_model* model);
LLAMA_API bool llama_model_is_recurrent(const struct llama_model* model);

/* Memory (the KV cache): see bitnet/context.h for what the engine's cells allow. */
LLAMA_API void llama_memory_clear(llama_memory_t mem, bool data);
LLAMA_API bool llama_memory_seq_rm(llama_memory_t mem, llama_seq_id seq_id, llama_pos p0, llama_pos p1);
LLAMA_API void llama_memory_seq_cp(llama_memory_t mem, llama_seq_id seq_id_src, llama_seq_id seq_id_dst, llama_pos p0,
                                   llama_pos p1);
LLAMA_API void llama_memory_seq_keep(llama_memory_t mem, llama_seq_id seq_id);
LLAMA_API void llama_memory_seq_add(llama_memory_t mem, llama_seq_id seq_id, llama_pos p0, llama_pos p1,
                                    llama_pos delta);
LLAMA_API llama_pos llama_memory_seq_pos_min(llama_memory_t mem, llama_seq_id seq_id);
LLAMA_API llama_pos llama_memory_seq_pos_max(llama_memory_t mem, llama_seq_id seq_id);
LLAMA_API bool llama_memory_can_shift(llama_memory_t mem);

/* Decoding */
LLAMA_API struct llama_batch llama_batch_get_one(llama_token* tokens, int32_t n_tokens);
/* embd must be 0 (token batches only); the arrays are left uninitialised. */
LLAMA_API struct llama_batch llama_batch_init(int32_t n_tokens, int32_t embd, int32_t n_seq_max);
LLAMA_API void llama_batch_free(struct llama_batch batch);

/* Decoder-only models have no encoder: always -1. */
LLAMA_API int32_t llama_encode(struct llama_context* ctx, struct llama_batch batch);
/* 0 success; 1 no room in a sequence's cells (free some or use a larger context); 2 aborted by
 * the abort callback; -1 invalid batch (empty, over n_batch, unknown tokens or sequences,
 * positions that do not continue their sequence), NULL or freed context. The cache is
 * unchanged unless 0 is returned. */
LLAMA_API int32_t llama_decode(struct llama_context* ctx, struct llama_batch batch);

/* The engine's thread count is fixed when the context is created: other values are reported
 * in the log and not applied. */
LLAMA_API void llama_set_n_threads(struct llama_context* ctx, int32_t n_threads, int32_t n_threads_batch);
LLAMA_API int32_t llama_n_threads(struct llama_context* ctx);
LLAMA_API int32_t llama_n_threads_batch(struct llama_context* ctx);
LLAMA_API void llama_set_abort_callback(struct llama_context* ctx, ggml_abort_callback abort_callback,
                                        void* abort_callback_data);
LLAMA_API void llama_synchronize(struct llama_context* ctx);

/* The logits of the last llama_decode: one row of n_vocab floats per token whose logits were
 * wanted, in batch order. llama_get_logits_ith(i): the row of batch token i, or for i < 0 the
 * (-i)-th row from the end; NULL when there is none. */
LLAMA_API float* llama_get_logits(struct llama_context* ctx);
LLAMA_API float* llama_get_logits_ith(struct llama_context* ctx, int32_t i);

/* Vocabulary */
LLAMA_API const char* llama_vocab_get_text(const struct llama_vocab* vocab, llama_token token);
LLAMA_API float llama_vocab_get_score(const struct llama_vocab* vocab, llama_token token);
LLAMA_API enum llama_token_attr llama_vocab_get_attr(const struct llama_vocab* vocab, llama_token token);
LLAMA_API bool llama_vocab_is_eog(const struct llama_vocab* vocab, llama_token token);
LLAMA_API bool llama_vocab_is_control(const struct llama_vocab* vocab, llama_token token);
LLAMA_API llama_token llama_vocab_bos(const struct llama_vocab* vocab);
LLAMA_API llama_token llama_vocab_eos(const struct llama_vocab* vocab);
LLAMA_API llama_token llama_vocab_eot(const struct llama_vocab* vocab);
LLAMA_API llama_token llama_vocab_sep(const struct llama_vocab* vocab);
LLAMA_API llama_token llama_vocab_nl(const struct llama_vocab* vocab);
LLAMA_API llama_token llama_vocab_pad(const struct llama_vocab* vocab);
LLAMA_API bool llama_vocab_get_add_bos(const struct llama_vocab* vocab);
LLAMA_API bool llama_vocab_get_add_eos(const struct llama_vocab* vocab);
DEPRECATED(LLAMA_API const char* llama_token_get_text(const struct llama_vocab* vocab, llama_token token),
           "use llama_vocab_get_text instead");
DEPRECATED(LLAMA_API bool llama_token_is_eog(const struct llama_vocab* vocab, llama_token token),
           "use llama_vocab_is_eog instead");
DEPRECATED(LLAMA_API llama_token llama_token_bos(const struct llama_vocab* vocab), "use llama_vocab_bos instead");
DEPRECATED(LLAMA_API llama_token llama_token_eos(const struct llama_vocab* vocab), "use llama_vocab_eos instead");

/* Text -> tokens: the count, or when it exceeds n_tokens_max, minus the count needed (nothing
 * written). add_special: BOS/EOS where the vocabulary adds them; parse_special: control token
 * texts become those tokens. */
LLAMA_API int32_t llama_tokenize(const struct llama_vocab* vocab, const char* text, int32_t text_len,
                                 llama_token* tokens, int32_t n_tokens_max, bool add_special, bool parse_special);
/* A token's text, without a terminating NUL: its length, or minus the length needed. lstrip:
 * up to that many leading spaces are dropped; special: control tokens render their text. */
LLAMA_API int32_t llama_token_to_piece(const struct llama_vocab* vocab, llama_token token, char* buf, int32_t length,
                                       int32_t lstrip, bool special);
/* Tokens -> text (no terminating NUL): its length, or minus the length needed. */
LLAMA_API int32_t llama_detokenize(const struct llama_vocab* vocab, const llama_token* tokens, int32_t n_tokens,
                                   char* text, int32_t text_len_max, bool remove_special, bool unparse_special);

/* Chat templates (built in; not a Jinja interpreter): tmpl is a built-in name
 * (llama_chat_builtin_templates) or a model's Jinja text to recognise, NULL for chatml.
 * Returns the formatted length (write only when it fits in `length`; call again with a larger
 * buffer otherwise) or -1 for a template no built-in matches or an unknown role. */
LLAMA_API int32_t llama_chat_apply_template(const char* tmpl, const struct llama_chat_message* chat, size_t n_msg,
                                            bool add_ass, char* buf, int32_t length);
LLAMA_API int32_t llama_chat_builtin_templates(const char** output, size_t len);

/* Sampling: llama.cpp's sampler objects and chains. */
typedef void* llama_sampler_context_t;

struct llama_sampler_i {
  const char* (*name)(const struct llama_sampler* smpl);
  void (*accept)(struct llama_sampler* smpl, llama_token token);
  void (*apply)(struct llama_sampler* smpl, llama_token_data_array* cur_p); /* required */
  void (*reset)(struct llama_sampler* smpl);
  struct llama_sampler* (*clone)(const struct llama_sampler* smpl);
  void (*free)(struct llama_sampler* smpl);
};

struct llama_sampler {
  struct llama_sampler_i* iface;
  llama_sampler_context_t ctx;
};

LLAMA_API struct llama_sampler* llama_sampler_init(struct llama_sampler_i* iface, llama_sampler_context_t ctx);
LLAMA_API const char* llama_sampler_name(const struct llama_sampler* smpl);
LLAMA_API void llama_sampler_accept(struct llama_sampler* smpl, llama_token token);
LLAMA_API void llama_sampler_apply(struct llama_sampler* smpl, llama_token_data_array* cur_p);
LLAMA_API void llama_sampler_reset(struct llama_sampler* smpl);
LLAMA_API struct llama_sampler* llama_sampler_clone(const struct llama_sampler* smpl);
/* Do not free a sampler that was added to a chain: the chain owns it. */
LLAMA_API void llama_sampler_free(struct llama_sampler* smpl);

LLAMA_API struct llama_sampler* llama_sampler_chain_init(struct llama_sampler_chain_params params);
LLAMA_API void llama_sampler_chain_add(struct llama_sampler* chain, struct llama_sampler* smpl);
/* i == -1: the chain itself; NULL out of range or when `chain` is not a chain. */
LLAMA_API struct llama_sampler* llama_sampler_chain_get(struct llama_sampler* chain, int32_t i);
LLAMA_API int llama_sampler_chain_n(const struct llama_sampler* chain);
LLAMA_API struct llama_sampler* llama_sampler_chain_remove(struct llama_sampler* chain, int32_t i);

LLAMA_API struct llama_sampler* llama_sampler_init_greedy(void);
/* seed == LLAMA_DEFAULT_SEED: a random seed. */
LLAMA_API struct llama_sampler* llama_sampler_init_dist(uint32_t seed);
LLAMA_API struct llama_sampler* llama_sampler_init_top_k(int32_t k);
LLAMA_API struct llama_sampler* llama_sampler_init_top_p(float p, size_t min_keep);
LLAMA_API struct llama_sampler* llama_sampler_init_min_p(float p, size_t min_keep);
LLAMA_API struct llama_sampler* llama_sampler_init_typical(float p, size_t min_keep);
LLAMA_API struct llama_sampler* llama_sampler_init_temp(float t);
LLAMA_API struct llama_sampler* llama_sampler_init_temp_ext(float t, float delta, float exponent);
LLAMA_API struct llama_sampler* llama_sampler_init_penalties(int32_t penalty_last_n, float penalty_repeat,
                                                             float penalty_freq, float penalty_present);
LLAMA_API struct llama_sampler* llama_sampler_init_logit_bias(int32_t n_vocab, int32_t n_logit_bias,
                                                              const llama_logit_bias* logit_bias);
LLAMA_API uint32_t llama_sampler_get_seed(const struct llama_sampler* smpl);
/* Samples from the logits of batch token idx (see llama_get_logits_ith) and accepts the token;
 * LLAMA_TOKEN_NULL when there are no such logits. */
LLAMA_API llama_token llama_sampler_sample(struct llama_sampler* smpl, struct llama_context* ctx, int32_t idx);

LLAMA_API const char* llama_print_system_info(void);
/* NULL restores the default, which prints to stderr. */
LLAMA_API void llama_log_set(ggml_log_callback log_callback, void* user_data);
LLAMA_API void llama_log_get(ggml_log_callback* log_callback, void** user_data);

struct llama_perf_context_data {
  double t_start_ms;
  double t_load_ms;
  double t_p_eval_ms;
  double t_eval_ms;
  int32_t n_p_eval;
  int32_t n_eval;
  int32_t n_reused;
};

struct llama_perf_sampler_data {
  double t_sample_ms;
  int32_t n_sample;
};

LLAMA_API struct llama_perf_context_data llama_perf_context(const struct llama_context* ctx);
LLAMA_API void llama_perf_context_print(const struct llama_context* ctx);
LLAMA_API void llama_perf_context_reset(struct llama_context* ctx);
LLAMA_API struct llama_perf_sampler_data llama_perf_sampler(const struct llama_sampler* chain);
LLAMA_API void llama_perf_sampler_print(const struct llama_sampler* chain);
LLAMA_API void llama_perf_sampler_reset(struct llama_sampler* chain);

#ifdef __cplusplus
}
#endif

#endif /* LLAMA_H */

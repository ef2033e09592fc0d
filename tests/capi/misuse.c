/* Wrong use of llama.h: every call must report the mistake (through the log callback) and
 * return an error value; none may crash, abort or corrupt memory (CI runs this under
 * ASan/UBSan).   capi_misuse MODEL   -> exit 0 when every misuse was caught */
#include "check.h"
#include "llama.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int errors_logged = 0;
static void count_log(enum ggml_log_level level, const char* text, void* user_data) {
  (void)text;
  (void)user_data;
  if (level == GGML_LOG_LEVEL_ERROR) ++errors_logged;
}

/* Checks that `expr` logged at least one error. */
#define CHECK_LOGS_ERROR(expr)         \
  do {                                 \
    const int before_ = errors_logged; \
    expr;                              \
    CHECK(errors_logged > before_);    \
  } while (0)

static struct llama_batch one_token(llama_token* token, llama_pos* pos, int32_t* n_seq, llama_seq_id** seq,
                                    int8_t* logits) {
  struct llama_batch b = {1, token, NULL, pos, n_seq, seq, logits};
  return b;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s MODEL\n", argv[0]);
    return 2;
  }
  llama_log_set(count_log, NULL);

  /* loading: no file, a NULL path, a file that is not a GGUF */
  struct llama_model_params mparams = llama_model_default_params();
  CHECK_LOGS_ERROR(CHECK(llama_model_load_from_file("/nonexistent/model.gguf", mparams) == NULL));
  CHECK_LOGS_ERROR(CHECK(llama_model_load_from_file(NULL, mparams) == NULL));
  CHECK_LOGS_ERROR(CHECK(llama_model_load_from_file(argv[0], mparams) == NULL)); /* this executable */

  /* a NULL model everywhere */
  CHECK_LOGS_ERROR(CHECK(llama_model_get_vocab(NULL) == NULL));
  CHECK_LOGS_ERROR(CHECK(llama_model_n_embd(NULL) == 0));
  CHECK_LOGS_ERROR(CHECK(llama_init_from_model(NULL, llama_context_default_params()) == NULL));
  char buf[64] = "x";
  CHECK_LOGS_ERROR(CHECK(llama_model_meta_val_str(NULL, "general.name", buf, sizeof(buf)) == -1 && buf[0] == 0));
  CHECK_LOGS_ERROR(CHECK(llama_vocab_n_tokens(NULL) == 0));
  llama_token t[4];
  CHECK_LOGS_ERROR(CHECK(llama_tokenize(NULL, "hi", 2, t, 4, true, false) == INT32_MIN));
  llama_model_free(NULL); /* as free(NULL): allowed, silent */

  struct llama_model* model = llama_model_load_from_file(argv[1], mparams);
  CHECK(model != NULL);
  if (model == NULL) return 1;
  const struct llama_vocab* vocab = llama_model_get_vocab(model);
  const int n_vocab = llama_vocab_n_tokens(vocab);

  /* context parameters the engine cannot honour */
  struct llama_context_params cparams = llama_context_default_params();
  cparams.embeddings = true;
  CHECK_LOGS_ERROR(CHECK(llama_init_from_model(model, cparams) == NULL));
  cparams = llama_context_default_params();
  cparams.n_seq_max = 0;
  CHECK_LOGS_ERROR(CHECK(llama_init_from_model(model, cparams) == NULL));
  cparams = llama_context_default_params();
  cparams.rope_freq_scale = 0.5f;
  CHECK_LOGS_ERROR(CHECK(llama_init_from_model(model, cparams) == NULL));

  cparams = llama_context_default_params();
  cparams.n_ctx = 16;
  cparams.n_batch = 8;
  struct llama_context* ctx = llama_init_from_model(model, cparams);
  CHECK(ctx != NULL);
  if (ctx == NULL) return 1;

  /* tokenizer calls with wrong arguments */
  CHECK_LOGS_ERROR(CHECK(llama_tokenize(vocab, NULL, 5, t, 4, true, false) == INT32_MIN));
  CHECK_LOGS_ERROR(CHECK(llama_tokenize(vocab, "hi", -1, t, 4, true, false) == INT32_MIN));
  CHECK_LOGS_ERROR(CHECK(llama_token_to_piece(vocab, n_vocab, buf, sizeof(buf), 0, false) == 0));
  CHECK_LOGS_ERROR(CHECK(llama_token_to_piece(vocab, -5, buf, sizeof(buf), 0, false) == 0));
  CHECK_LOGS_ERROR(CHECK(llama_vocab_get_text(vocab, n_vocab + 100) == NULL));
  llama_token bad_ids[2] = {1, n_vocab + 7};
  CHECK_LOGS_ERROR(CHECK(llama_detokenize(vocab, bad_ids, 2, buf, sizeof(buf), false, false) == INT32_MIN));
  CHECK(!llama_vocab_is_eog(vocab, -1) && !llama_vocab_is_eog(vocab, n_vocab));

  /* decode: token ids out of range, positions out of order, unknown sequences, an empty batch,
   * a batch over n_batch, embeddings input, an encoder call */
  llama_token token = n_vocab;
  llama_pos pos = 0;
  int32_t n_seq = 1;
  llama_seq_id seq0 = 0;
  llama_seq_id* seqs[1] = {&seq0};
  int8_t want = 1;
  CHECK_LOGS_ERROR(CHECK(llama_decode(ctx, one_token(&token, &pos, &n_seq, seqs, &want)) == -1));
  token = -1;
  CHECK_LOGS_ERROR(CHECK(llama_decode(ctx, one_token(&token, &pos, &n_seq, seqs, &want)) == -1));
  token = 1;
  pos = 5; /* the sequence is empty: it must start at 0 */
  CHECK_LOGS_ERROR(CHECK(llama_decode(ctx, one_token(&token, &pos, &n_seq, seqs, &want)) == -1));
  pos = 0;
  seq0 = 3; /* n_seq_max is 1 */
  CHECK_LOGS_ERROR(CHECK(llama_decode(ctx, one_token(&token, &pos, &n_seq, seqs, &want)) == -1));
  seq0 = 0;
  n_seq = 0;
  CHECK_LOGS_ERROR(CHECK(llama_decode(ctx, one_token(&token, &pos, &n_seq, seqs, &want)) == -1));
  n_seq = 1;
  CHECK_LOGS_ERROR(CHECK(llama_decode(ctx, llama_batch_get_one(t, 0)) == -1));
  llama_token many[12] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  CHECK_LOGS_ERROR(CHECK(llama_decode(ctx, llama_batch_get_one(many, 12)) == -1)); /* n_batch is 8 */
  float embd[4] = {0};
  struct llama_batch embd_batch = {1, NULL, embd, NULL, NULL, NULL, NULL};
  CHECK_LOGS_ERROR(CHECK(llama_decode(ctx, embd_batch) == -1));
  CHECK_LOGS_ERROR(CHECK(llama_encode(ctx, llama_batch_get_one(many, 1)) == -1));
  /* nothing above reached the cache */
  CHECK(llama_memory_seq_pos_max(llama_get_memory(ctx), 0) == -1);

  /* positions out of order within one batch */
  struct llama_batch b = llama_batch_init(4, 0, 1);
  const llama_pos order[4] = {0, 2, 1, 3};
  for (int i = 0; i < 4; ++i) {
    b.token[i] = 1;
    b.pos[i] = order[i];
    b.n_seq_id[i] = 1;
    b.seq_id[i][0] = 0;
    b.logits[i] = 0;
  }
  b.n_tokens = 4;
  CHECK_LOGS_ERROR(CHECK(llama_decode(ctx, b) == -1));
  llama_batch_free(b);

  /* a full context: 1 (no KV slot), the cache unchanged */
  CHECK(llama_decode(ctx, llama_batch_get_one(many, 8)) == 0);
  CHECK(llama_decode(ctx, llama_batch_get_one(many, 8)) == 0);
  CHECK(llama_decode(ctx, llama_batch_get_one(many, 1)) == 1);
  CHECK(llama_memory_seq_pos_max(llama_get_memory(ctx), 0) == 15);

  /* sampling logits that were not asked for */
  struct llama_sampler* smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
  llama_sampler_chain_add(smpl, llama_sampler_init_greedy());
  CHECK_LOGS_ERROR(CHECK(llama_sampler_sample(smpl, ctx, 3) == LLAMA_TOKEN_NULL)); /* only the last token's */
  CHECK_LOGS_ERROR(CHECK(llama_sampler_sample(smpl, NULL, -1) == LLAMA_TOKEN_NULL));
  CHECK_LOGS_ERROR(CHECK(llama_sampler_sample(NULL, ctx, -1) == LLAMA_TOKEN_NULL));
  CHECK_LOGS_ERROR(llama_sampler_chain_add(smpl, NULL));
  struct llama_sampler* top_k = llama_sampler_init_top_k(5);
  struct llama_sampler* greedy = llama_sampler_init_greedy();
  CHECK_LOGS_ERROR(llama_sampler_chain_add(top_k, greedy)); /* top-k is not a chain: greedy stays ours */
  llama_sampler_free(greedy);
  llama_sampler_free(top_k);
  /* a chain without a selecting sampler */
  struct llama_sampler* no_pick = llama_sampler_chain_init(llama_sampler_chain_default_params());
  llama_sampler_chain_add(no_pick, llama_sampler_init_top_k(5));
  CHECK(llama_decode(ctx, llama_batch_get_one(many, 1)) == 1); /* still full */
  llama_memory_seq_rm(llama_get_memory(ctx), 0, 8, -1);
  CHECK(llama_decode(ctx, llama_batch_get_one(many, 1)) == 0);
  CHECK_LOGS_ERROR(CHECK(llama_sampler_sample(no_pick, ctx, -1) == LLAMA_TOKEN_NULL));
  llama_sampler_free(no_pick);

  /* a freed context and its memory */
  llama_memory_t mem = llama_get_memory(ctx);
  llama_free(ctx);
  CHECK_LOGS_ERROR(CHECK(llama_decode(ctx, llama_batch_get_one(many, 1)) == -1));
  CHECK_LOGS_ERROR(CHECK(llama_n_ctx(ctx) == 0));
  CHECK_LOGS_ERROR(CHECK(llama_get_logits(ctx) == NULL));
  CHECK_LOGS_ERROR(CHECK(llama_get_logits_ith(ctx, -1) == NULL));
  CHECK_LOGS_ERROR(CHECK(llama_sampler_sample(smpl, ctx, -1) == LLAMA_TOKEN_NULL));
  CHECK_LOGS_ERROR(CHECK(llama_memory_seq_pos_max(mem, 0) == -1));
  CHECK_LOGS_ERROR(llama_memory_clear(mem, true));
  CHECK_LOGS_ERROR(llama_free(ctx)); /* a double free is reported, not performed */
  llama_sampler_free(smpl);

  /* chat templates: an unknown name, a NULL message */
  struct llama_chat_message chat[1] = {{"user", "hi"}};
  CHECK_LOGS_ERROR(CHECK(llama_chat_apply_template("no-such-template", chat, 1, true, buf, sizeof(buf)) == -1));
  struct llama_chat_message broken[1] = {{"user", NULL}};
  CHECK_LOGS_ERROR(CHECK(llama_chat_apply_template("chatml", broken, 1, true, buf, sizeof(buf)) == -1));

  /* a freed model and its vocabulary */
  llama_model_free(model);
  CHECK_LOGS_ERROR(CHECK(llama_model_n_layer(model) == 0));
  CHECK_LOGS_ERROR(CHECK(llama_vocab_n_tokens(vocab) == 0));
  CHECK_LOGS_ERROR(CHECK(llama_init_from_model(model, llama_context_default_params()) == NULL));
  CHECK_LOGS_ERROR(llama_model_free(model));

  printf("%s (%d errors reported through the log)\n", check_failures == 0 ? "all misuse caught" : "FAILED",
         errors_logged);
  return check_failures == 0 ? 0 : 1;
}

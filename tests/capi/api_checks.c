/* Correct use of llama.h beyond generation: metadata, the vocabulary, the tokenizer's size
 * protocols, chat templates, the sampler chain and its samplers, KV-cache edits, logits
 * indexing and perf counters.   capi_api_checks MODEL   -> exit 0 when every check holds */
#include "check.h"
#include "llama.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int errors_logged = 0;
static void count_log(enum ggml_log_level level, const char* text, void* user_data) {
  (void)user_data;
  if (level == GGML_LOG_LEVEL_ERROR) {
    ++errors_logged;
    fprintf(stderr, "(logged) %s", text);
  }
}

static void check_metadata(const struct llama_model* model) {
  char buf[256];
  CHECK(llama_model_n_embd(model) > 0);
  CHECK(llama_model_n_layer(model) > 0);
  CHECK(llama_model_n_head(model) > 0);
  CHECK(llama_model_n_ctx_train(model) > 0);
  CHECK(llama_model_n_params(model) > 0);
  CHECK(llama_model_size(model) > 0);
  CHECK(!llama_model_has_encoder(model));
  CHECK(llama_model_has_decoder(model));
  CHECK(llama_model_decoder_start_token(model) == LLAMA_TOKEN_NULL);
  CHECK(llama_model_desc(model, buf, sizeof(buf)) > 0 && strlen(buf) > 0);

  const int n = llama_model_meta_count(model);
  CHECK(n > 0);
  int found_arch = 0;
  for (int i = 0; i < n; ++i) {
    char key[256], value[256];
    CHECK(llama_model_meta_key_by_index(model, i, key, sizeof(key)) > 0);
    const int len = llama_model_meta_val_str_by_index(model, i, value, sizeof(value));
    CHECK(len >= 0);
    if (strcmp(key, "general.architecture") == 0) {
      found_arch = 1;
      char by_key[256];
      CHECK(llama_model_meta_val_str(model, key, by_key, sizeof(by_key)) == len);
      CHECK(strcmp(by_key, value) == 0);
      /* snprintf's contract: the full length, the text cut and terminated */
      char small[3];
      CHECK(llama_model_meta_val_str(model, key, small, sizeof(small)) == len);
      CHECK(strlen(small) == 2 && strncmp(small, value, 2) == 0);
    }
  }
  CHECK(found_arch);
  CHECK(llama_model_meta_val_str(model, "no.such.key", buf, sizeof(buf)) == -1 && buf[0] == '\0');
  CHECK(llama_model_meta_key_by_index(model, n, buf, sizeof(buf)) == -1);
  CHECK(llama_model_chat_template(model, "no-such-name") == NULL);
}

static void check_vocab(const struct llama_vocab* vocab) {
  const int n_vocab = llama_vocab_n_tokens(vocab);
  CHECK(n_vocab > 0);
  CHECK(llama_vocab_type(vocab) == LLAMA_VOCAB_TYPE_SPM || llama_vocab_type(vocab) == LLAMA_VOCAB_TYPE_BPE);
  const llama_token bos = llama_vocab_bos(vocab), eos = llama_vocab_eos(vocab);
  CHECK(eos >= 0 && eos < n_vocab);
  CHECK(llama_vocab_is_eog(vocab, eos));
  CHECK(llama_vocab_get_text(vocab, eos) != NULL);
  if (bos >= 0) {
    CHECK(llama_vocab_is_control(vocab, bos));
    CHECK(llama_vocab_get_attr(vocab, bos) & LLAMA_TOKEN_ATTR_CONTROL);
    /* a control token renders only with special = true */
    char piece[64];
    CHECK(llama_token_to_piece(vocab, bos, piece, sizeof(piece), 0, false) == 0);
    const int n = llama_token_to_piece(vocab, bos, piece, sizeof(piece), 0, true);
    CHECK(n > 0 && strncmp(piece, llama_vocab_get_text(vocab, bos), (size_t)n) == 0);
  }
  const llama_token nl = llama_vocab_nl(vocab);
  if (nl >= 0) {
    char piece[8];
    CHECK(llama_token_to_piece(vocab, nl, piece, sizeof(piece), 0, false) == 1 && piece[0] == '\n');
  }

  /* tokenize: the negative-count protocol, then a round trip through detokenize */
  const char* text = "Hello world, this is a test.";
  const int32_t len = (int32_t)strlen(text);
  const int32_t needed = -llama_tokenize(vocab, text, len, NULL, 0, true, false);
  CHECK(needed > 1);
  llama_token tokens[128];
  CHECK(llama_tokenize(vocab, text, len, tokens, 1, true, false) == -needed);
  CHECK(llama_tokenize(vocab, text, len, tokens, 128, true, false) == needed);
  CHECK(llama_vocab_get_add_bos(vocab) == (tokens[0] == bos));
  char back[256];
  const int32_t n_back = llama_detokenize(vocab, tokens, needed, back, sizeof(back), true, false);
  CHECK(n_back == len && strncmp(back, text, (size_t)len) == 0);
  CHECK(llama_detokenize(vocab, tokens, needed, back, 3, true, false) == -len);
  const int32_t without_bos = llama_tokenize(vocab, text, len, tokens, 128, false, false);
  CHECK(without_bos == needed - (llama_vocab_get_add_bos(vocab) ? 1 : 0));

  /* token_to_piece: the size protocol and lstrip */
  llama_token space_word[8];
  const int32_t n_sw = llama_tokenize(vocab, " world", 6, space_word, 8, false, false);
  CHECK(n_sw >= 1);
  char piece[64];
  const int32_t n_piece = llama_token_to_piece(vocab, space_word[n_sw - 1], piece, sizeof(piece), 0, false);
  CHECK(n_piece > 0);
  if (n_piece > 1) CHECK(llama_token_to_piece(vocab, space_word[n_sw - 1], piece, 1, 0, false) == -n_piece);
  if (piece[0] == ' ') {
    char stripped[64];
    CHECK(llama_token_to_piece(vocab, space_word[n_sw - 1], stripped, sizeof(stripped), 1, false) == n_piece - 1);
  }
}

static void check_chat_templates(void) {
  const char* names[32];
  const int n = llama_chat_builtin_templates(names, 32);
  CHECK(n >= 8);
  int has_chatml = 0;
  for (int i = 0; i < n && i < 32; ++i) has_chatml |= strcmp(names[i], "chatml") == 0;
  CHECK(has_chatml);

  struct llama_chat_message chat[2] = {{"system", "Be brief."}, {"user", "Hi"}};
  const int32_t len = llama_chat_apply_template("chatml", chat, 2, true, NULL, 0);
  const char* expected =
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
      "<|im_start|>assistant\n";
  CHECK(len == (int32_t)strlen(expected));
  char buf[256];
  CHECK(llama_chat_apply_template("chatml", chat, 2, true, buf, sizeof(buf)) == len);
  CHECK(strcmp(buf, expected) == 0);
  char small[8];
  CHECK(llama_chat_apply_template("chatml", chat, 2, true, small, sizeof(small)) == len);
  CHECK(strncmp(small, expected, sizeof(small)) == 0);
  /* a Jinja text is recognised */
  CHECK(llama_chat_apply_template("{% for m in messages %}<|im_start|>{{ m.role }}...", chat, 2, true, buf,
                                  sizeof(buf)) == len);
  CHECK(llama_chat_apply_template("llama3", chat, 2, true, buf, sizeof(buf)) > 0);
  CHECK(strstr(buf, "<|start_header_id|>user<|end_header_id|>") != NULL);
}

/* One array over a small vocabulary, for the samplers. */
static llama_token_data_array make_array(llama_token_data* data, const float* logits, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    data[i].id = (llama_token)i;
    data[i].logit = logits[i];
    data[i].p = 0;
  }
  llama_token_data_array a = {data, n, -1, false};
  return a;
}

static void check_samplers(void) {
  const float logits[6] = {1.0f, 3.0f, 2.0f, 0.5f, 3.0f, -1.0f};
  llama_token_data data[6];

  llama_token_data_array a = make_array(data, logits, 6);
  struct llama_sampler* greedy = llama_sampler_init_greedy();
  llama_sampler_apply(greedy, &a);
  CHECK(a.selected >= 0 && a.data[a.selected].id == 1); /* the first of two equal maxima */
  CHECK(strcmp(llama_sampler_name(greedy), "greedy") == 0);
  llama_sampler_free(greedy);

  a = make_array(data, logits, 6);
  struct llama_sampler* top_k = llama_sampler_init_top_k(3);
  llama_sampler_apply(top_k, &a);
  CHECK(a.size == 3 && a.data[0].logit == 3.0f && a.data[2].logit == 2.0f);
  llama_sampler_free(top_k);

  a = make_array(data, logits, 6);
  struct llama_sampler* min_p = llama_sampler_init_min_p(0.3f, 1); /* keeps logits >= 3 + ln 0.3 = 1.80 */
  llama_sampler_apply(min_p, &a);
  CHECK(a.size == 3);
  llama_sampler_free(min_p);

  a = make_array(data, logits, 6);
  struct llama_sampler* top_p = llama_sampler_init_top_p(0.5f, 1);
  llama_sampler_apply(top_p, &a);
  CHECK(a.size == 2); /* two tokens of p ~0.36 each pass 0.5 together */
  llama_sampler_free(top_p);

  a = make_array(data, logits, 6);
  struct llama_sampler* temp0 = llama_sampler_init_temp(0.0f);
  llama_sampler_apply(temp0, &a);
  CHECK(isinf(a.data[0].logit) && a.data[1].logit == 3.0f && isinf(a.data[4].logit));
  llama_sampler_free(temp0);

  a = make_array(data, logits, 6);
  llama_logit_bias bias[1] = {{5, 10.0f}};
  struct llama_sampler* lb = llama_sampler_init_logit_bias(6, 1, bias);
  llama_sampler_apply(lb, &a);
  CHECK(a.data[5].logit == 9.0f);
  llama_sampler_free(lb);

  /* penalties see the accepted tokens; reset forgets them */
  struct llama_sampler* pen = llama_sampler_init_penalties(64, 2.0f, 0.0f, 0.0f);
  llama_sampler_accept(pen, 1);
  a = make_array(data, logits, 6);
  llama_sampler_apply(pen, &a);
  CHECK(a.data[1].logit == 1.5f && a.data[4].logit == 3.0f);
  llama_sampler_reset(pen);
  a = make_array(data, logits, 6);
  llama_sampler_apply(pen, &a);
  CHECK(a.data[1].logit == 3.0f);
  llama_sampler_free(pen);

  a = make_array(data, logits, 6);
  struct llama_sampler* typical = llama_sampler_init_typical(0.5f, 1);
  llama_sampler_apply(typical, &a);
  CHECK(a.size >= 1 && a.size < 6);
  llama_sampler_free(typical);

  a = make_array(data, logits, 6);
  struct llama_sampler* dyn = llama_sampler_init_temp_ext(1.0f, 0.5f, 1.0f);
  llama_sampler_apply(dyn, &a);
  CHECK(a.size == 6);
  llama_sampler_free(dyn);

  /* a chain: members in order, get/n/remove, seeded dist reproducible after reset and in a clone */
  struct llama_sampler* chain = llama_sampler_chain_init(llama_sampler_chain_default_params());
  llama_sampler_chain_add(chain, llama_sampler_init_top_k(4));
  llama_sampler_chain_add(chain, llama_sampler_init_temp(1.5f));
  llama_sampler_chain_add(chain, llama_sampler_init_dist(1234));
  CHECK(llama_sampler_chain_n(chain) == 3);
  CHECK(llama_sampler_chain_get(chain, -1) == chain);
  CHECK(llama_sampler_chain_get(chain, 3) == NULL);
  CHECK(strcmp(llama_sampler_name(llama_sampler_chain_get(chain, 1)), "temp") == 0);
  CHECK(llama_sampler_get_seed(chain) == 1234);
  llama_token first[16];
  for (int i = 0; i < 16; ++i) {
    a = make_array(data, logits, 6);
    llama_sampler_apply(chain, &a);
    first[i] = a.data[a.selected].id;
    CHECK(first[i] != 3 && first[i] != 5); /* outside the top 4 */
  }
  struct llama_sampler* copy = llama_sampler_clone(chain);
  llama_sampler_reset(chain);
  int same = 1;
  for (int i = 0; i < 16; ++i) {
    a = make_array(data, logits, 6);
    llama_sampler_apply(chain, &a);
    same &= a.data[a.selected].id == first[i];
  }
  CHECK(same);
  CHECK(llama_sampler_chain_n(copy) == 3);
  struct llama_sampler* removed = llama_sampler_chain_remove(chain, 1);
  CHECK(removed != NULL && llama_sampler_chain_n(chain) == 2);
  llama_sampler_free(removed);
  llama_sampler_free(copy);
  llama_sampler_free(chain);
  struct llama_sampler* random_dist = llama_sampler_init_dist(LLAMA_DEFAULT_SEED);
  CHECK(llama_sampler_get_seed(random_dist) != LLAMA_DEFAULT_SEED || 1); /* any seed, even that value */
  llama_sampler_free(random_dist);
}

static void check_context(struct llama_model* model) {
  const struct llama_vocab* vocab = llama_model_get_vocab(model);
  struct llama_context_params cparams = llama_context_default_params();
  cparams.n_ctx = 256;
  cparams.n_seq_max = 2;
  cparams.n_threads = 2;
  cparams.no_perf = false;
  struct llama_context* ctx = llama_init_from_model(model, cparams);
  CHECK(ctx != NULL);
  if (ctx == NULL) return;
  CHECK(llama_n_ctx(ctx) == 256);
  CHECK(llama_n_seq_max(ctx) == 2);
  CHECK(llama_n_batch(ctx) > 0 && llama_n_ubatch(ctx) == llama_n_batch(ctx));
  CHECK(llama_get_model(ctx) == model);
  CHECK(llama_n_threads(ctx) == 2);
  llama_memory_t mem = llama_get_memory(ctx);
  CHECK(mem != NULL && llama_memory_can_shift(mem));

  llama_token tokens[64];
  const int n = llama_tokenize(vocab, "The quick brown fox jumps over", 30, tokens, 64, true, false);
  CHECK(n > 2);
  /* all logits of a prompt: rows in batch order; _ith(-1) is the last row */
  struct llama_batch batch = llama_batch_init(n, 0, 2);
  for (int i = 0; i < n; ++i) {
    batch.token[i] = tokens[i];
    batch.pos[i] = i;
    batch.n_seq_id[i] = 1;
    batch.seq_id[i][0] = 0;
    batch.logits[i] = i >= n - 2;
  }
  batch.n_tokens = n;
  CHECK(llama_decode(ctx, batch) == 0);
  const int n_vocab = llama_vocab_n_tokens(vocab);
  float* all = llama_get_logits(ctx);
  CHECK(all != NULL);
  CHECK(llama_get_logits_ith(ctx, n - 1) == all + n_vocab);
  CHECK(llama_get_logits_ith(ctx, -1) == all + n_vocab);
  CHECK(llama_get_logits_ith(ctx, -2) == all);
  CHECK(llama_get_logits_ith(ctx, n - 2) == all);
  const int before = errors_logged;
  CHECK(llama_get_logits_ith(ctx, 0) == NULL); /* no logits were asked for token 0 */
  CHECK(llama_get_logits_ith(ctx, -3) == NULL);
  CHECK(llama_get_logits_ith(ctx, n) == NULL);
  CHECK(errors_logged == before + 3);
  CHECK(llama_memory_seq_pos_min(mem, 0) == 0 && llama_memory_seq_pos_max(mem, 0) == n - 1);
  CHECK(llama_memory_seq_pos_max(mem, 1) == -1);

  /* seq_cp then both sequences continue to the same logits */
  llama_memory_seq_cp(mem, 0, 1, -1, -1);
  CHECK(llama_memory_seq_pos_max(mem, 1) == n - 1);
  batch.n_tokens = 2;
  for (int s = 0; s < 2; ++s) {
    batch.token[s] = tokens[1];
    batch.pos[s] = n;
    batch.n_seq_id[s] = 1;
    batch.seq_id[s][0] = s;
    batch.logits[s] = 1;
  }
  CHECK(llama_decode(ctx, batch) == 0);
  CHECK(memcmp(llama_get_logits_ith(ctx, 0), llama_get_logits_ith(ctx, 1), sizeof(float) * (size_t)n_vocab) == 0);

  /* seq_rm of a tail, seq_keep, clear */
  CHECK(llama_memory_seq_rm(mem, 1, n, -1));
  CHECK(llama_memory_seq_pos_max(mem, 1) == n - 1);
  llama_memory_seq_keep(mem, 0);
  CHECK(llama_memory_seq_pos_max(mem, 1) == -1 && llama_memory_seq_pos_max(mem, 0) == n);
  /* the context shift: drop positions [1, 3) and slide the rest down */
  CHECK(llama_memory_seq_rm(mem, 0, 1, 3));
  llama_memory_seq_add(mem, 0, 3, -1, -2);
  CHECK(llama_memory_seq_pos_max(mem, 0) == n - 2);
  llama_memory_clear(mem, true);
  CHECK(llama_memory_seq_pos_max(mem, 0) == -1);

  /* llama_batch_get_one continues sequence 0 by itself */
  CHECK(llama_decode(ctx, llama_batch_get_one(tokens, n)) == 0);
  CHECK(llama_memory_seq_pos_max(mem, 0) == n - 1);
  CHECK(llama_decode(ctx, llama_batch_get_one(tokens + 1, 1)) == 0);
  CHECK(llama_memory_seq_pos_max(mem, 0) == n);

  struct llama_perf_context_data perf = llama_perf_context(ctx);
  CHECK(perf.n_p_eval >= n && perf.n_eval >= 1 && perf.t_p_eval_ms > 0);
  llama_perf_context_reset(ctx);
  CHECK(llama_perf_context(ctx).t_p_eval_ms == 0);

  llama_batch_free(batch);
  llama_free(ctx);
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s MODEL\n", argv[0]);
    return 2;
  }
  llama_log_set(count_log, NULL);
  llama_backend_init();
  struct llama_model* model = llama_model_load_from_file(argv[1], llama_model_default_params());
  CHECK(model != NULL);
  if (model == NULL) return 1;
  check_metadata(model);
  check_vocab(llama_model_get_vocab(model));
  check_chat_templates();
  check_samplers();
  check_context(model);
  CHECK(strstr(llama_print_system_info(), "CPU") != NULL);
  CHECK(llama_supports_mmap() && !llama_supports_gpu_offload());
  CHECK(llama_time_us() > 0 && ggml_time_us() > 0);
  llama_model_free(model);
  llama_backend_free();
  printf("%s\n", check_failures == 0 ? "all checks passed" : "FAILED");
  return check_failures == 0 ? 0 : 1;
}

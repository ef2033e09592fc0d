/* Several sequences through one llama_decode per step, written the way llama.cpp's
 * examples/batched does it: the prompt is decoded once for all sequences (one token, several
 * seq ids), then each step decodes one token of every sequence. Checks batch invariance: each
 * sequence's greedy ids equal those of the same prompt decoded alone in its own context.
 *   capi_batched -m MODEL [-np N] [-n N] [PROMPT]  -> exit 0 when they are equal */
#include "llama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void quiet_log(enum ggml_log_level level, const char* text, void* user_data) {
  (void)user_data;
  if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static void batch_add(struct llama_batch* batch, llama_token id, llama_pos pos, const llama_seq_id* seq_ids, int n_seq,
                      bool logits) {
  const int i = batch->n_tokens;
  batch->token[i] = id;
  batch->pos[i] = pos;
  batch->n_seq_id[i] = n_seq;
  for (int s = 0; s < n_seq; ++s) batch->seq_id[i][s] = seq_ids[s];
  batch->logits[i] = logits;
  batch->n_tokens++;
}

/* Greedy ids of `n_seq` sequences sharing `prompt`, decoded together; out[s * n_predict + k]. */
static int generate(struct llama_model* model, const llama_token* prompt, int n_prompt, int n_seq, int n_predict,
                    llama_token* out) {
  struct llama_context_params cparams = llama_context_default_params();
  cparams.n_ctx = (uint32_t)(n_seq * (n_prompt + n_predict));
  cparams.n_batch = (uint32_t)(n_prompt > n_seq ? n_prompt : n_seq);
  cparams.n_seq_max = (uint32_t)n_seq;
  struct llama_context* ctx = llama_init_from_model(model, cparams);
  if (ctx == NULL) return 1;
  struct llama_sampler* smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
  llama_sampler_chain_add(smpl, llama_sampler_init_greedy());

  struct llama_batch batch = llama_batch_init(cparams.n_batch > 0 ? (int32_t)cparams.n_batch : 1, 0, n_seq);
  llama_seq_id* all = malloc(sizeof(llama_seq_id) * (size_t)n_seq);
  for (int s = 0; s < n_seq; ++s) all[s] = s;
  for (int i = 0; i < n_prompt; ++i) batch_add(&batch, prompt[i], i, all, n_seq, false);
  batch.logits[batch.n_tokens - 1] = true;
  if (llama_decode(ctx, batch) != 0) return 1;

  int* i_batch = malloc(sizeof(int) * (size_t)n_seq);
  for (int s = 0; s < n_seq; ++s) i_batch[s] = batch.n_tokens - 1;
  for (int k = 0; k < n_predict; ++k) {
    batch.n_tokens = 0;
    for (int s = 0; s < n_seq; ++s) {
      const llama_token id = llama_sampler_sample(smpl, ctx, i_batch[s]);
      if (id < 0) return 1;
      out[s * n_predict + k] = id;
      i_batch[s] = batch.n_tokens;
      batch_add(&batch, id, n_prompt + k, &all[s], 1, true);
    }
    if (k + 1 < n_predict && llama_decode(ctx, batch) != 0) return 1;
  }
  free(i_batch);
  free(all);
  llama_batch_free(batch);
  llama_sampler_free(smpl);
  llama_free(ctx);
  return 0;
}

int main(int argc, char** argv) {
  const char* model_path = NULL;
  const char* prompt = "Hello my name is";
  int n_parallel = 4, n_predict = 16;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "-m") == 0 && i + 1 < argc) {
      model_path = argv[++i];
    } else if (strcmp(argv[i], "-np") == 0 && i + 1 < argc) {
      n_parallel = atoi(argv[++i]);
    } else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
      n_predict = atoi(argv[++i]);
    } else {
      prompt = argv[i];
    }
  }
  if (model_path == NULL || n_parallel < 1 || n_predict < 1) {
    fprintf(stderr, "usage: %s -m MODEL [-np N] [-n N] [PROMPT]\n", argv[0]);
    return 1;
  }
  llama_log_set(quiet_log, NULL);
  struct llama_model* model = llama_model_load_from_file(model_path, llama_model_default_params());
  if (model == NULL) return 1;
  const struct llama_vocab* vocab = llama_model_get_vocab(model);
  const int n_prompt = -llama_tokenize(vocab, prompt, (int32_t)strlen(prompt), NULL, 0, true, true);
  llama_token* tokens = malloc(sizeof(llama_token) * (size_t)n_prompt);
  llama_tokenize(vocab, prompt, (int32_t)strlen(prompt), tokens, n_prompt, true, true);

  llama_token* together = malloc(sizeof(llama_token) * (size_t)(n_parallel * n_predict));
  llama_token* alone = malloc(sizeof(llama_token) * (size_t)n_predict);
  if (generate(model, tokens, n_prompt, n_parallel, n_predict, together) != 0 ||
      generate(model, tokens, n_prompt, 1, n_predict, alone) != 0) {
    fprintf(stderr, "decoding failed\n");
    return 1;
  }
  int failures = 0;
  for (int s = 0; s < n_parallel; ++s) {
    if (memcmp(&together[s * n_predict], alone, sizeof(llama_token) * (size_t)n_predict) != 0) {
      fprintf(stderr, "sequence %d of %d differs from the sequence decoded alone\n", s, n_parallel);
      ++failures;
    }
  }
  printf("%d sequences x %d tokens: %s\n", n_parallel, n_predict, failures == 0 ? "equal to alone" : "DIFFERENT");
  free(alone);
  free(together);
  free(tokens);
  llama_model_free(model);
  return failures == 0 ? 0 : 1;
}

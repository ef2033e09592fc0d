/* Greedy generation through llama.h, written the way llama.cpp's examples/simple does it:
 *   capi_simple -m MODEL [-n N] [PROMPT]
 * prints the generated text to stdout and "ids: a b c ..." (the generated token ids) to
 * stderr, for comparison with `bitnet run --greedy` (greedy_matches_cli.py). */
#include "llama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void quiet_log(enum ggml_log_level level, const char* text, void* user_data) {
  (void)user_data;
  if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

int main(int argc, char** argv) {
  const char* model_path = NULL;
  const char* prompt = "Hello my name is";
  int n_predict = 32;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "-m") == 0 && i + 1 < argc) {
      model_path = argv[++i];
    } else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
      n_predict = atoi(argv[++i]);
    } else {
      prompt = argv[i];
    }
  }
  if (model_path == NULL) {
    fprintf(stderr, "usage: %s -m MODEL [-n N] [PROMPT]\n", argv[0]);
    return 1;
  }
  llama_log_set(quiet_log, NULL);
  ggml_backend_load_all();

  struct llama_model_params model_params = llama_model_default_params();
  model_params.n_gpu_layers = 99;
  struct llama_model* model = llama_model_load_from_file(model_path, model_params);
  if (model == NULL) {
    fprintf(stderr, "%s: error: unable to load model\n", __func__);
    return 1;
  }
  const struct llama_vocab* vocab = llama_model_get_vocab(model);

  /* the negative-count protocol: first ask how many tokens there are */
  const int n_prompt = -llama_tokenize(vocab, prompt, (int32_t)strlen(prompt), NULL, 0, true, true);
  llama_token* prompt_tokens = malloc(sizeof(llama_token) * (size_t)n_prompt);
  if (llama_tokenize(vocab, prompt, (int32_t)strlen(prompt), prompt_tokens, n_prompt, true, true) < 0) {
    fprintf(stderr, "%s: error: failed to tokenize the prompt\n", __func__);
    return 1;
  }

  struct llama_context_params ctx_params = llama_context_default_params();
  ctx_params.n_ctx = (uint32_t)(n_prompt + n_predict - 1);
  ctx_params.n_batch = (uint32_t)n_prompt;
  ctx_params.no_perf = false;
  struct llama_context* ctx = llama_init_from_model(model, ctx_params);
  if (ctx == NULL) {
    fprintf(stderr, "%s: error: failed to create the llama_context\n", __func__);
    return 1;
  }

  struct llama_sampler_chain_params sparams = llama_sampler_chain_default_params();
  sparams.no_perf = false;
  struct llama_sampler* smpl = llama_sampler_chain_init(sparams);
  llama_sampler_chain_add(smpl, llama_sampler_init_greedy());

  if (llama_model_has_encoder(model)) {
    fprintf(stderr, "%s: unexpected encoder\n", __func__);
    return 1;
  }

  struct llama_batch batch = llama_batch_get_one(prompt_tokens, n_prompt);
  const int64_t t_main_start = ggml_time_us();
  int n_decode = 0;
  llama_token new_token_id;
  fprintf(stderr, "ids:");
  for (int n_pos = 0; n_pos + batch.n_tokens < n_prompt + n_predict;) {
    if (llama_decode(ctx, batch)) {
      fprintf(stderr, "%s : failed to eval\n", __func__);
      return 1;
    }
    n_pos += batch.n_tokens;
    new_token_id = llama_sampler_sample(smpl, ctx, -1);
    if (llama_vocab_is_eog(vocab, new_token_id)) break;
    char buf[128];
    const int n = llama_token_to_piece(vocab, new_token_id, buf, sizeof(buf), 0, true);
    if (n < 0) GGML_ABORT("failed to convert token to piece");
    fwrite(buf, 1, (size_t)n, stdout);
    fprintf(stderr, " %d", new_token_id);
    batch = llama_batch_get_one(&new_token_id, 1);
    n_decode += 1;
  }
  fprintf(stderr, "\n");
  fflush(stdout);
  const int64_t t_main_end = ggml_time_us();
  (void)t_main_end;
  (void)t_main_start;
  (void)n_decode;

  llama_perf_sampler_print(smpl);
  llama_perf_context_print(ctx);
  llama_sampler_free(smpl);
  llama_free(ctx);
  llama_model_free(model);
  free(prompt_tokens);
  return 0;
}

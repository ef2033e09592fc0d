/* A multi-turn chat through llama.h, written the way llama.cpp's examples/simple-chat does it:
 * each stdin line is a user turn; the conversation is formatted with the model's chat template
 * and only the new part of it is decoded (the KV cache keeps the earlier turns).
 *   capi_simple_chat -m MODEL [-c N_CTX] [-n MAX_REPLY_TOKENS] < turns.txt */
#include "llama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void quiet_log(enum ggml_log_level level, const char* text, void* user_data) {
  (void)user_data;
  if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static char* dup_string(const char* s, size_t n) {
  char* out = malloc(n + 1);
  memcpy(out, s, n);
  out[n] = '\0';
  return out;
}

/* Generates a reply to `prompt` (the new part of the conversation); returns it (malloc'd). */
static char* generate(struct llama_context* ctx, const struct llama_vocab* vocab, struct llama_sampler* smpl,
                      const char* prompt, int max_tokens) {
  const bool is_first = llama_memory_seq_pos_max(llama_get_memory(ctx), 0) == -1;
  const int n_prompt = -llama_tokenize(vocab, prompt, (int32_t)strlen(prompt), NULL, 0, is_first, true);
  llama_token* prompt_tokens = malloc(sizeof(llama_token) * (size_t)n_prompt);
  if (llama_tokenize(vocab, prompt, (int32_t)strlen(prompt), prompt_tokens, n_prompt, is_first, true) < 0) {
    GGML_ABORT("failed to tokenize the prompt");
  }
  size_t len = 0, cap = 256;
  char* response = malloc(cap);
  response[0] = '\0';
  struct llama_batch batch = llama_batch_get_one(prompt_tokens, n_prompt);
  llama_token new_token_id;
  for (int produced = 0; produced < max_tokens; ++produced) {
    const int n_ctx = (int)llama_n_ctx(ctx);
    const int n_ctx_used = llama_memory_seq_pos_max(llama_get_memory(ctx), 0) + 1;
    if (n_ctx_used + batch.n_tokens > n_ctx) {
      fprintf(stderr, "context size exceeded\n");
      break;
    }
    const int ret = llama_decode(ctx, batch);
    if (ret != 0) GGML_ABORT("failed to decode, ret = %d", ret);
    new_token_id = llama_sampler_sample(smpl, ctx, -1);
    if (llama_vocab_is_eog(vocab, new_token_id)) break;
    char buf[256];
    const int n = llama_token_to_piece(vocab, new_token_id, buf, sizeof(buf), 0, true);
    if (n < 0) GGML_ABORT("failed to convert token to piece");
    fwrite(buf, 1, (size_t)n, stdout);
    fflush(stdout);
    while (len + (size_t)n + 1 > cap) response = realloc(response, cap *= 2);
    memcpy(response + len, buf, (size_t)n);
    response[len += (size_t)n] = '\0';
    batch = llama_batch_get_one(&new_token_id, 1);
  }
  /* As in llama.cpp's example, the last sampled token stays undecoded: the next turn's text
   * (formatted after the whole reply) follows what the cache holds. */
  free(prompt_tokens);
  return response;
}

int main(int argc, char** argv) {
  const char* model_path = NULL;
  int n_ctx = 2048, max_tokens = 64;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "-m") == 0 && i + 1 < argc) {
      model_path = argv[++i];
    } else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
      n_ctx = atoi(argv[++i]);
    } else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
      max_tokens = atoi(argv[++i]);
    }
  }
  if (model_path == NULL) {
    fprintf(stderr, "usage: %s -m MODEL [-c N_CTX] [-n MAX_REPLY_TOKENS]\n", argv[0]);
    return 1;
  }
  llama_log_set(quiet_log, NULL);
  ggml_backend_load_all();
  struct llama_model* model = llama_model_load_from_file(model_path, llama_model_default_params());
  if (model == NULL) return 1;
  const struct llama_vocab* vocab = llama_model_get_vocab(model);
  struct llama_context_params ctx_params = llama_context_default_params();
  ctx_params.n_ctx = (uint32_t)n_ctx;
  ctx_params.n_batch = (uint32_t)n_ctx;
  struct llama_context* ctx = llama_init_from_model(model, ctx_params);
  if (ctx == NULL) return 1;

  struct llama_sampler* smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
  llama_sampler_chain_add(smpl, llama_sampler_init_min_p(0.05f, 1));
  llama_sampler_chain_add(smpl, llama_sampler_init_temp(0.8f));
  llama_sampler_chain_add(smpl, llama_sampler_init_dist(LLAMA_DEFAULT_SEED));

  struct llama_chat_message messages[64];
  int n_messages = 0;
  char* formatted = malloc((size_t)n_ctx);
  int formatted_cap = n_ctx, prev_len = 0, turns = 0;
  const char* tmpl = llama_model_chat_template(model, NULL);
  char line[4096];
  while (n_messages + 2 <= 64 && fgets(line, sizeof(line), stdin) != NULL) {
    size_t n = strcspn(line, "\n");
    if (n == 0) break;
    messages[n_messages].role = "user";
    messages[n_messages].content = dup_string(line, n);
    ++n_messages;
    int new_len = llama_chat_apply_template(tmpl, messages, (size_t)n_messages, true, formatted, formatted_cap);
    if (new_len > formatted_cap) {
      formatted = realloc(formatted, (size_t)new_len);
      formatted_cap = new_len;
      new_len = llama_chat_apply_template(tmpl, messages, (size_t)n_messages, true, formatted, formatted_cap);
    }
    if (new_len < 0) {
      fprintf(stderr, "failed to apply the chat template\n");
      return 1;
    }
    char* prompt = dup_string(formatted + prev_len, (size_t)(new_len - prev_len));
    printf("\033[33m");
    char* response = generate(ctx, vocab, smpl, prompt, max_tokens);
    printf("\n\033[0m");
    free(prompt);
    messages[n_messages].role = "assistant";
    messages[n_messages].content = response;
    ++n_messages;
    prev_len = llama_chat_apply_template(tmpl, messages, (size_t)n_messages, false, NULL, 0);
    if (prev_len < 0) {
      fprintf(stderr, "failed to apply the chat template\n");
      return 1;
    }
    ++turns;
  }
  fprintf(stderr, "%d turns\n", turns);
  for (int i = 0; i < n_messages; ++i) free((void*)messages[i].content);
  free(formatted);
  llama_sampler_free(smpl);
  llama_free(ctx);
  llama_model_free(model);
  return turns > 0 ? 0 : 1;
}

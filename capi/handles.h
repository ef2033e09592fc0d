// What llama.h's opaque handles are here, over the public C++ API (include/bitnet/), and the
// helpers every C entry point uses: the registry of live handles (a NULL or freed handle is
// reported, never dereferenced) and the log (llama_log_set's callback, stderr by default).
#pragma once

#include "bitnet/context.h"
#include "bitnet/model.h"
#include "llama.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

struct llama_vocab {
  const bitnet::Vocab* vocab = nullptr;
  std::vector<std::string> texts;  // llama_vocab_get_text returns pointers into these
};

struct llama_model {
  std::shared_ptr<const bitnet::Model> model;        // null for a vocab_only load
  std::shared_ptr<const bitnet::Vocab> vocab_owner;  // the vocabulary of a vocab_only load
  llama_vocab vocab;
  std::vector<std::string> meta_keys;  // in the file's order
  std::vector<std::string> meta_values;
  std::map<std::string, std::string> chat_templates;  // "" and tokenizer.chat_template.<name>
  double load_ms = 0;
};

struct llama_memory_i {
  llama_context* ctx = nullptr;
};

struct llama_context {
  llama_model* model = nullptr;
  std::unique_ptr<bitnet::Context> engine;
  llama_memory_i memory;
  uint32_t n_batch = 0;  // what llama_decode accepts: the request capped by the engine's
  int32_t n_threads = 0;
  int32_t n_threads_batch = 0;
  ggml_abort_callback abort_callback = nullptr;
  void* abort_callback_data = nullptr;
  bitnet::Batch batch;                       // the last decode's, its buffers reused
  std::vector<int32_t> output_row;           // per token of the last batch: its logits row or -1
  std::vector<llama_token_data> candidates;  // llama_sampler_sample's, reused
  // llama_perf_context
  bool measure = true;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  double prompt_ms = 0, eval_ms = 0;
  int32_t n_prompt = 0, n_eval = 0;
};

namespace capi {

// Handles are registered while alive: a call with a NULL, freed or foreign pointer is an
// error in the log and a neutral result, not a crash.
void register_handle(const void* handle);
void unregister_handle(const void* handle);
bool is_live(const void* handle);

// Messages of this layer and of the library, through llama_log_set's callback.
void log(ggml_log_level level, const std::string& text);
template <class... Args>
void log_error(fmt::format_string<Args...> format, Args&&... args) {
  log(GGML_LOG_LEVEL_ERROR, fmt::format(format, std::forward<Args>(args)...) + "\n");
}
template <class... Args>
void log_warn(fmt::format_string<Args...> format, Args&&... args) {
  log(GGML_LOG_LEVEL_WARN, fmt::format(format, std::forward<Args>(args)...) + "\n");
}
template <class... Args>
void log_info(fmt::format_string<Args...> format, Args&&... args) {
  log(GGML_LOG_LEVEL_INFO, fmt::format(format, std::forward<Args>(args)...) + "\n");
}
// Routes the library's messages to this layer's log; idempotent.
void connect_library_log();

// The live handle or nullptr, logging `caller`'s misuse.
const llama_model* checked(const llama_model* model, const char* caller);
const llama_vocab* checked(const llama_vocab* vocab, const char* caller);
llama_context* checked(const llama_context* ctx, const char* caller);

// snprintf's contract for `text`: the length, the copy cut to size - 1 bytes and terminated.
int32_t copy_string(const std::string& text, char* buf, size_t size);

double elapsed_ms(std::chrono::steady_clock::time_point since);

}  // namespace capi

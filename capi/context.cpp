// llama.h's contexts: creation from llama_context_params, batches, llama_decode with
// llama.cpp's return codes, logits, the memory (KV cache) calls and the perf counters.
#include "capi/handles.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace {

// Why the engine cannot honour `p` for `model`; "" when it can.
std::string unsupported(const llama_model& model, const llama_context_params& p) {
  if (p.embeddings) return "embeddings output is not supported";
  if (p.pooling_type != LLAMA_POOLING_TYPE_UNSPECIFIED && p.pooling_type != LLAMA_POOLING_TYPE_NONE) {
    return "pooling is not supported";
  }
  if (p.attention_type != LLAMA_ATTENTION_TYPE_UNSPECIFIED && p.attention_type != LLAMA_ATTENTION_TYPE_CAUSAL) {
    return "only causal attention is supported";
  }
  if (p.rope_scaling_type != LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED &&
      p.rope_scaling_type != LLAMA_ROPE_SCALING_TYPE_NONE) {
    return "RoPE scaling is not supported";
  }
  if (p.rope_freq_scale != 0.0f && p.rope_freq_scale != 1.0f) return "rope_freq_scale other than 1 is not supported";
  if (p.rope_freq_base != 0.0f) {
    const auto base = model.model->meta(model.model->architecture() + ".rope.freq_base");
    if (!base || std::strtod(base->c_str(), nullptr) != static_cast<double>(p.rope_freq_base)) {
      return "rope_freq_base other than the model's is not supported";
    }
  }
  if (p.cb_eval != nullptr) return "graph evaluation callbacks (cb_eval) are not supported";
  if (p.n_seq_max == 0 || p.n_seq_max > llama_max_parallel_sequences()) {
    return fmt::format("n_seq_max {} is outside [1, {}]", p.n_seq_max, llama_max_parallel_sequences());
  }
  return "";
}

int resolve_threads(int32_t requested) {
  const int cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return requested > 0 ? std::min<int>(requested, cpus) : 0;  // 0: the library's default
}

// llama_batch -> the engine's Batch, filling in what the C batch leaves NULL. "" or an error.
std::string convert(llama_context& c, const llama_batch& in) {
  bitnet::Batch& out = c.batch;
  out.clear();
  if (in.n_tokens <= 0) return fmt::format("n_tokens = {}: the batch is empty", in.n_tokens);
  if (in.token == nullptr) {
    return in.embd != nullptr ? "embeddings as input (batch.embd) are not supported" : "batch.token is NULL";
  }
  if (static_cast<uint32_t>(in.n_tokens) > c.n_batch) {
    return fmt::format("a batch of {} tokens exceeds n_batch = {}", in.n_tokens, c.n_batch);
  }
  if ((in.seq_id == nullptr) != (in.n_seq_id == nullptr)) return "batch.seq_id and batch.n_seq_id must both be set";
  const int32_t n_seq_max = c.engine->n_seq_max();
  std::vector<int64_t> next(static_cast<size_t>(n_seq_max), -1);  // automatic positions, per sequence
  std::vector<int32_t> seqs;
  for (int32_t i = 0; i < in.n_tokens; ++i) {
    seqs.clear();
    if (in.seq_id != nullptr) {
      const int32_t n = in.n_seq_id[i];
      if (n <= 0 || n > n_seq_max) return fmt::format("token {}: n_seq_id = {} is outside [1, {}]", i, n, n_seq_max);
      if (in.seq_id[i] == nullptr) return fmt::format("token {}: seq_id is NULL", i);
      seqs.assign(in.seq_id[i], in.seq_id[i] + n);
    } else {
      seqs.push_back(0);
    }
    for (int32_t s : seqs) {
      if (s < 0 || s >= n_seq_max) return fmt::format("token {}: sequence {} is outside [0, {})", i, s, n_seq_max);
    }
    int64_t pos = 0;
    if (in.pos != nullptr) {
      pos = in.pos[i];
    } else {
      int64_t& at = next[static_cast<size_t>(seqs[0])];
      if (at < 0) at = c.engine->seq_pos_max(seqs[0]) + 1;
      pos = at++;
    }
    const bool wanted = in.logits != nullptr ? in.logits[i] != 0 : i == in.n_tokens - 1;
    out.add(in.token[i], pos, seqs, wanted);
  }
  return "";
}

}  // namespace

extern "C" {

llama_context_params llama_context_default_params(void) {
  llama_context_params p{};
  p.n_ctx = 512;
  p.n_batch = 2048;
  p.n_ubatch = 512;
  p.n_seq_max = 1;
  p.n_threads = GGML_DEFAULT_N_THREADS;
  p.n_threads_batch = GGML_DEFAULT_N_THREADS;
  p.rope_scaling_type = LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED;
  p.pooling_type = LLAMA_POOLING_TYPE_UNSPECIFIED;
  p.attention_type = LLAMA_ATTENTION_TYPE_UNSPECIFIED;
  p.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_AUTO;
  p.yarn_ext_factor = -1.0f;
  p.yarn_attn_factor = 1.0f;
  p.yarn_beta_fast = 32.0f;
  p.yarn_beta_slow = 1.0f;
  p.defrag_thold = -1.0f;
  p.type_k = GGML_TYPE_F16;
  p.type_v = GGML_TYPE_F16;
  p.offload_kqv = true;
  p.no_perf = true;
  p.op_offload = true;
  p.swa_full = true;
  return p;
}

llama_context* llama_init_from_model(llama_model* model, llama_context_params params) {
  llama_model* m = const_cast<llama_model*>(capi::checked(model, "llama_init_from_model"));
  if (m == nullptr) return nullptr;
  if (!m->model) {
    capi::log_error("llama_init_from_model: the model was loaded with vocab_only");
    return nullptr;
  }
  if (std::string why = unsupported(*m, params); !why.empty()) {
    capi::log_error("llama_init_from_model: {}", why);
    return nullptr;
  }
  if (params.type_k != GGML_TYPE_F16 || params.type_v != GGML_TYPE_F16) {
    capi::log_warn("llama_init_from_model: the KV cache keeps the engine's own types; type_k/type_v are ignored");
  }
  const int32_t threads = std::max(params.n_threads, params.n_threads_batch);
  auto engine = bitnet::Context::create(m->model, {.n_ctx = params.n_ctx,
                                                   .n_seq_max = static_cast<int32_t>(params.n_seq_max),
                                                   .threads = resolve_threads(threads)});
  if (!engine.ok()) {
    capi::log_error("llama_init_from_model: {}", engine.error().message);
    return nullptr;
  }
  auto c = std::make_unique<llama_context>();
  c->model = m;
  c->engine = std::move(*engine);
  c->memory.ctx = c.get();
  const uint32_t requested = params.n_batch > 0 ? params.n_batch : 2048;
  c->n_batch = static_cast<uint32_t>(std::min<int64_t>(requested, c->engine->n_batch()));
  c->n_threads = params.n_threads;
  c->n_threads_batch = params.n_threads_batch;
  c->abort_callback = params.abort_callback;
  c->abort_callback_data = params.abort_callback_data;
  c->measure = !params.no_perf;
  capi::register_handle(c.get());
  capi::register_handle(&c->memory);
  return c.release();
}
llama_context* llama_new_context_with_model(llama_model* model, llama_context_params params) {
  return llama_init_from_model(model, params);
}

void llama_free(llama_context* ctx) {
  if (ctx == nullptr) return;
  if (capi::checked(ctx, "llama_free") == nullptr) return;
  capi::unregister_handle(&ctx->memory);
  capi::unregister_handle(ctx);
  delete ctx;
}

uint32_t llama_n_ctx(const llama_context* ctx) {
  llama_context* c = capi::checked(ctx, "llama_n_ctx");
  return c != nullptr ? static_cast<uint32_t>(c->engine->n_ctx()) : 0;
}
uint32_t llama_n_batch(const llama_context* ctx) {
  llama_context* c = capi::checked(ctx, "llama_n_batch");
  return c != nullptr ? c->n_batch : 0;
}
uint32_t llama_n_ubatch(const llama_context* ctx) {
  return llama_n_batch(ctx);
}
uint32_t llama_n_seq_max(const llama_context* ctx) {
  llama_context* c = capi::checked(ctx, "llama_n_seq_max");
  return c != nullptr ? static_cast<uint32_t>(c->engine->n_seq_max()) : 0;
}
const llama_model* llama_get_model(const llama_context* ctx) {
  llama_context* c = capi::checked(ctx, "llama_get_model");
  return c != nullptr ? c->model : nullptr;
}
llama_memory_t llama_get_memory(const llama_context* ctx) {
  llama_context* c = capi::checked(ctx, "llama_get_memory");
  return c != nullptr ? &c->memory : nullptr;
}
enum llama_pooling_type llama_pooling_type(const llama_context* ctx) {
  capi::checked(ctx, "llama_pooling_type");
  return LLAMA_POOLING_TYPE_NONE;
}

void llama_set_n_threads(llama_context* ctx, int32_t n_threads, int32_t n_threads_batch) {
  llama_context* c = capi::checked(ctx, "llama_set_n_threads");
  if (c == nullptr) return;
  if (std::max(n_threads, n_threads_batch) != std::max(c->n_threads, c->n_threads_batch)) {
    capi::log_warn("llama_set_n_threads: the engine's thread count ({}) is fixed when the context is created",
                   c->engine->threads());
  }
  c->n_threads = n_threads;
  c->n_threads_batch = n_threads_batch;
}
int32_t llama_n_threads(llama_context* ctx) {
  llama_context* c = capi::checked(ctx, "llama_n_threads");
  return c != nullptr ? c->n_threads : 0;
}
int32_t llama_n_threads_batch(llama_context* ctx) {
  llama_context* c = capi::checked(ctx, "llama_n_threads_batch");
  return c != nullptr ? c->n_threads_batch : 0;
}
void llama_set_abort_callback(llama_context* ctx, ggml_abort_callback abort_callback, void* abort_callback_data) {
  llama_context* c = capi::checked(ctx, "llama_set_abort_callback");
  if (c == nullptr) return;
  c->abort_callback = abort_callback;
  c->abort_callback_data = abort_callback_data;
}
void llama_synchronize(llama_context* ctx) {
  capi::checked(ctx, "llama_synchronize");  // decoding is synchronous
}

// ---- batches and decoding ----------------------------------------------------------

llama_batch llama_batch_get_one(llama_token* tokens, int32_t n_tokens) {
  llama_batch b{};
  b.n_tokens = n_tokens;
  b.token = tokens;
  return b;
}

llama_batch llama_batch_init(int32_t n_tokens, int32_t embd, int32_t n_seq_max) {
  llama_batch b{};
  if (n_tokens <= 0 || n_seq_max <= 0 || embd < 0) {
    capi::log_error("llama_batch_init: n_tokens {}, embd {}, n_seq_max {}: sizes must be positive", n_tokens, embd,
                    n_seq_max);
    return b;
  }
  const auto n = static_cast<size_t>(n_tokens);
  if (embd > 0) {
    b.embd = static_cast<float*>(std::malloc(sizeof(float) * n * static_cast<size_t>(embd)));
  } else {
    b.token = static_cast<llama_token*>(std::malloc(sizeof(llama_token) * n));
  }
  b.pos = static_cast<llama_pos*>(std::malloc(sizeof(llama_pos) * n));
  b.n_seq_id = static_cast<int32_t*>(std::malloc(sizeof(int32_t) * n));
  b.seq_id = static_cast<llama_seq_id**>(std::malloc(sizeof(llama_seq_id*) * (n + 1)));
  for (size_t i = 0; i < n; ++i) {
    b.seq_id[i] = static_cast<llama_seq_id*>(std::malloc(sizeof(llama_seq_id) * static_cast<size_t>(n_seq_max)));
  }
  b.seq_id[n] = nullptr;  // where llama_batch_free stops
  b.logits = static_cast<int8_t*>(std::malloc(n));
  return b;
}

void llama_batch_free(llama_batch batch) {
  std::free(batch.token);
  std::free(batch.embd);
  std::free(batch.pos);
  std::free(batch.n_seq_id);
  if (batch.seq_id != nullptr) {
    for (size_t i = 0; batch.seq_id[i] != nullptr; ++i) std::free(batch.seq_id[i]);
  }
  std::free(batch.seq_id);
  std::free(batch.logits);
}

int32_t llama_encode(llama_context* ctx, llama_batch) {
  if (capi::checked(ctx, "llama_encode") == nullptr) return -1;
  capi::log_error("llama_encode: the model has no encoder (decoder-only): use llama_decode");
  return -1;
}

int32_t llama_decode(llama_context* ctx, llama_batch batch) {
  llama_context* c = capi::checked(ctx, "llama_decode");
  if (c == nullptr) return -1;
  c->output_row.clear();
  if (std::string why = convert(*c, batch); !why.empty()) {
    capi::log_error("llama_decode: {}", why);
    return -1;
  }
  if (c->abort_callback != nullptr && c->abort_callback(c->abort_callback_data)) return 2;
  const auto start = std::chrono::steady_clock::now();
  if (bitnet::Status s = c->engine->decode(c->batch); !s.ok()) {
    const bool full = s.error().kind == bitnet::ErrorKind::kContextFull;
    if (full) {
      capi::log_warn("llama_decode: {}", s.error().message);
    } else {
      capi::log_error("llama_decode: {}", s.error().message);
    }
    return full ? 1 : -1;
  }
  int32_t row = 0;
  for (uint8_t wanted : c->batch.logits) c->output_row.push_back(wanted ? row++ : -1);
  if (c->measure) {
    const double ms = capi::elapsed_ms(start);
    if (batch.n_tokens == 1) {
      c->eval_ms += ms;
      c->n_eval += 1;
    } else {
      c->prompt_ms += ms;
      c->n_prompt += batch.n_tokens;
    }
  }
  return 0;
}

float* llama_get_logits(llama_context* ctx) {
  llama_context* c = capi::checked(ctx, "llama_get_logits");
  if (c == nullptr || c->engine->n_outputs() == 0) return nullptr;
  // The rows are contiguous (one matrix, batch order); callers may edit them in place.
  return const_cast<float*>(c->engine->logits(0).data());
}

float* llama_get_logits_ith(llama_context* ctx, int32_t i) {
  llama_context* c = capi::checked(ctx, "llama_get_logits_ith");
  if (c == nullptr) return nullptr;
  int32_t row = -1;
  if (i < 0) {
    row = c->engine->n_outputs() + i;
    if (row < 0)
      capi::log_error("llama_get_logits_ith: {} is before the first of {} outputs", i, c->engine->n_outputs());
  } else if (static_cast<size_t>(i) >= c->output_row.size()) {
    capi::log_error("llama_get_logits_ith: token {} is outside the last batch ({} tokens)", i, c->output_row.size());
  } else if ((row = c->output_row[static_cast<size_t>(i)]) < 0) {
    capi::log_error("llama_get_logits_ith: batch.logits[{}] was not set", i);
  }
  if (row < 0) return nullptr;
  return const_cast<float*>(c->engine->logits(row).data());
}

// ---- memory ------------------------------------------------------------------------

}  // extern "C"

namespace {
bitnet::Context* engine_of(llama_memory_t mem, const char* caller) {
  if (!capi::is_live(mem)) {
    capi::log_error("{}: {} memory", caller, mem == nullptr ? "NULL" : "invalid (its context freed?)");
    return nullptr;
  }
  return mem->ctx->engine.get();
}

// An edit that returns a Status: failures are logged (llama.h's calls return nothing).
template <class Edit>
void edit(llama_memory_t mem, const char* caller, Edit&& apply) {
  bitnet::Context* e = engine_of(mem, caller);
  if (e == nullptr) return;
  if (bitnet::Status s = apply(*e); !s.ok()) capi::log_error("{}: {}", caller, s.error().message);
}
}  // namespace

extern "C" {

void llama_memory_clear(llama_memory_t mem, bool) {
  if (bitnet::Context* e = engine_of(mem, "llama_memory_clear")) e->memory_clear();
}
bool llama_memory_seq_rm(llama_memory_t mem, llama_seq_id seq_id, llama_pos p0, llama_pos p1) {
  bitnet::Context* e = engine_of(mem, "llama_memory_seq_rm");
  return e != nullptr && e->seq_rm(seq_id, p0, p1);
}
void llama_memory_seq_cp(llama_memory_t mem, llama_seq_id seq_id_src, llama_seq_id seq_id_dst, llama_pos p0,
                         llama_pos p1) {
  edit(mem, "llama_memory_seq_cp", [&](bitnet::Context& e) { return e.seq_cp(seq_id_src, seq_id_dst, p0, p1); });
}
void llama_memory_seq_keep(llama_memory_t mem, llama_seq_id seq_id) {
  edit(mem, "llama_memory_seq_keep", [&](bitnet::Context& e) { return e.seq_keep(seq_id); });
}
void llama_memory_seq_add(llama_memory_t mem, llama_seq_id seq_id, llama_pos p0, llama_pos p1, llama_pos delta) {
  edit(mem, "llama_memory_seq_add", [&](bitnet::Context& e) { return e.seq_add(seq_id, p0, p1, delta); });
}
llama_pos llama_memory_seq_pos_min(llama_memory_t mem, llama_seq_id seq_id) {
  bitnet::Context* e = engine_of(mem, "llama_memory_seq_pos_min");
  return e != nullptr ? static_cast<llama_pos>(e->seq_pos_min(seq_id)) : -1;
}
llama_pos llama_memory_seq_pos_max(llama_memory_t mem, llama_seq_id seq_id) {
  bitnet::Context* e = engine_of(mem, "llama_memory_seq_pos_max");
  return e != nullptr ? static_cast<llama_pos>(e->seq_pos_max(seq_id)) : -1;
}
bool llama_memory_can_shift(llama_memory_t mem) {
  return engine_of(mem, "llama_memory_can_shift") != nullptr;
}

// ---- perf --------------------------------------------------------------------------

llama_perf_context_data llama_perf_context(const llama_context* ctx) {
  llama_perf_context_data d{};
  llama_context* c = capi::checked(ctx, "llama_perf_context");
  if (c == nullptr) return d;
  d.t_start_ms = std::chrono::duration<double, std::milli>(c->start.time_since_epoch()).count();
  d.t_load_ms = c->model != nullptr && capi::is_live(c->model) ? c->model->load_ms : 0;
  d.t_p_eval_ms = c->prompt_ms;
  d.t_eval_ms = c->eval_ms;
  d.n_p_eval = std::max(1, c->n_prompt);  // llama.cpp reports at least 1
  d.n_eval = std::max(1, c->n_eval);
  return d;
}

void llama_perf_context_print(const llama_context* ctx) {
  if (capi::checked(ctx, "llama_perf_context_print") == nullptr) return;
  const llama_perf_context_data d = llama_perf_context(ctx);
  const double total = capi::elapsed_ms(ctx->start);
  capi::log_info("llama_perf_context_print:        load time = {:10.2f} ms", d.t_load_ms);
  capi::log_info(
      "llama_perf_context_print: prompt eval time = {:10.2f} ms / {:5} tokens ({:8.2f} ms per token, {:8.2f} tokens "
      "per second)",
      d.t_p_eval_ms, d.n_p_eval, d.t_p_eval_ms / d.n_p_eval, 1e3 / d.t_p_eval_ms * d.n_p_eval);
  capi::log_info(
      "llama_perf_context_print:        eval time = {:10.2f} ms / {:5} runs   ({:8.2f} ms per token, {:8.2f} tokens "
      "per second)",
      d.t_eval_ms, d.n_eval, d.t_eval_ms / d.n_eval, 1e3 / d.t_eval_ms * d.n_eval);
  capi::log_info("llama_perf_context_print:       total time = {:10.2f} ms / {:5} tokens", total,
                 d.n_p_eval + d.n_eval);
}

void llama_perf_context_reset(llama_context* ctx) {
  llama_context* c = capi::checked(ctx, "llama_perf_context_reset");
  if (c == nullptr) return;
  c->start = std::chrono::steady_clock::now();
  c->prompt_ms = c->eval_ms = 0;
  c->n_prompt = c->n_eval = 0;
}

}  // extern "C"

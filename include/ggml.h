/* The part of ggml.h that programs written against llama.h use: log levels and callbacks,
 * timing, GGML_ABORT/GGML_ASSERT and the enums that appear in llama.h's structs. BitNet-cxx
 * is not built on ggml; what is declared here is implemented by libllama (capi/). */
#ifndef GGML_H
#define GGML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32) && !defined(__MINGW32__)
#define GGML_API __declspec(dllimport)
#else
#define GGML_API __attribute__((visibility("default")))
#endif

#ifdef __GNUC__
#define GGML_NORETURN __attribute__((noreturn))
#define GGML_ATTRIBUTE_FORMAT(...) __attribute__((format(printf, __VA_ARGS__)))
#else
#define GGML_NORETURN
#define GGML_ATTRIBUTE_FORMAT(...)
#endif

#define GGML_DEFAULT_N_THREADS 4
#define GGML_ROPE_TYPE_NEOX 2

#ifdef __cplusplus
extern "C" {
#endif

enum ggml_log_level {
  GGML_LOG_LEVEL_NONE = 0,
  GGML_LOG_LEVEL_DEBUG = 1,
  GGML_LOG_LEVEL_INFO = 2,
  GGML_LOG_LEVEL_WARN = 3,
  GGML_LOG_LEVEL_ERROR = 4,
  GGML_LOG_LEVEL_CONT = 5, /* continues the previous message */
};

typedef void (*ggml_log_callback)(enum ggml_log_level level, const char* text, void* user_data);

/* If it returns true, the computation is aborted. */
typedef bool (*ggml_abort_callback)(void* data);

/* The tensor types, numbered as in GGUF files (llama_context_params.type_k/type_v). */
enum ggml_type {
  GGML_TYPE_F32 = 0,
  GGML_TYPE_F16 = 1,
  GGML_TYPE_Q4_0 = 2,
  GGML_TYPE_Q4_1 = 3,
  GGML_TYPE_Q5_0 = 6,
  GGML_TYPE_Q5_1 = 7,
  GGML_TYPE_Q8_0 = 8,
  GGML_TYPE_Q8_1 = 9,
  GGML_TYPE_Q2_K = 10,
  GGML_TYPE_Q3_K = 11,
  GGML_TYPE_Q4_K = 12,
  GGML_TYPE_Q5_K = 13,
  GGML_TYPE_Q6_K = 14,
  GGML_TYPE_Q8_K = 15,
  GGML_TYPE_I8 = 24,
  GGML_TYPE_I16 = 25,
  GGML_TYPE_I32 = 26,
  GGML_TYPE_I64 = 27,
  GGML_TYPE_F64 = 28,
  GGML_TYPE_BF16 = 30,
  GGML_TYPE_TQ1_0 = 34,
  GGML_TYPE_TQ2_0 = 35,
  GGML_TYPE_I2_S = 36, /* bitnet.cpp's ternary format */
};

enum ggml_numa_strategy {
  GGML_NUMA_STRATEGY_DISABLED = 0,
  GGML_NUMA_STRATEGY_DISTRIBUTE = 1,
  GGML_NUMA_STRATEGY_ISOLATE = 2,
  GGML_NUMA_STRATEGY_NUMACTL = 3,
  GGML_NUMA_STRATEGY_MIRROR = 4,
  GGML_NUMA_STRATEGY_COUNT
};

/* Opaque: llama.h's callbacks name them; BitNet-cxx never passes one. */
struct ggml_tensor;
typedef bool (*ggml_backend_sched_eval_callback)(struct ggml_tensor* t, bool ask, void* user_data);

GGML_API void ggml_time_init(void); /* optional: the clock needs no initialisation */
GGML_API int64_t ggml_time_ms(void);
GGML_API int64_t ggml_time_us(void);

/* Prints "file:line: message" to stderr and aborts (what GGML_ABORT expands to). */
GGML_API GGML_NORETURN GGML_ATTRIBUTE_FORMAT(3, 4) void ggml_abort(const char* file, int line, const char* fmt, ...);

#define GGML_ABORT(...) ggml_abort(__FILE__, __LINE__, __VA_ARGS__)
#define GGML_ASSERT(x) \
  if (!(x)) GGML_ABORT("GGML_ASSERT(%s) failed", #x)

#ifdef __cplusplus
}
#endif

#endif /* GGML_H */

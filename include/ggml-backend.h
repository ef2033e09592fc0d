/* The part of ggml-backend.h that programs written against llama.h use. BitNet-cxx runs on
 * the CPU with its own kernels: there are no backends to load, so ggml_backend_load_all()
 * does nothing, and the device types exist only for llama_model_params' fields. */
#ifndef GGML_BACKEND_H
#define GGML_BACKEND_H

#include "ggml.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ggml_backend_device* ggml_backend_dev_t;
typedef struct ggml_backend_buffer_type* ggml_backend_buffer_type_t;

/* Loads every backend found (llama.cpp: dynamic backend modules); a no-op here. */
GGML_API void ggml_backend_load_all(void);

#ifdef __cplusplus
}
#endif

#endif /* GGML_BACKEND_H */

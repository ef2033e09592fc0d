// What a public Context holds: a runtime session of the model's backend (api/ only).
#pragma once

#include "api/model_impl.h"
#include "bitnet/context.h"
#include "runtime/session.h"

#include <memory>

namespace bitnet {

struct Context::Impl {
  std::shared_ptr<const Model> model;
  std::unique_ptr<runtime::Session> session;
  int threads = 1;
  runtime::Outputs outputs;                 // of the last decode (buffers reused)
  const runtime::Matrix* logits = nullptr;  // in outputs; nullptr after anything else ran
};

}  // namespace bitnet

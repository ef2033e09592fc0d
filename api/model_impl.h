// What a public Model and its Vocab hold: the runtime's model (api/ only).
#pragma once

#include "bitnet/model.h"
#include "runtime/model.h"

#include <memory>
#include <string>

namespace bitnet {

struct Vocab::Impl {
  const runtime::Tokenizer* tokenizer = nullptr;
};

struct Model::Impl {
  std::unique_ptr<runtime::Model> model;
  std::string backend;
  Vocab::Impl vocab_impl;
  Vocab vocab{&vocab_impl};
};

}  // namespace bitnet

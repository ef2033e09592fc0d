// How the library loads what is not a plan. Two implementations, chosen at link time: the
// full library (loader_compiler.cpp: GGUF files through the JIT, the plan cache or the
// interpreter, and the interpreter's non-finite diagnosis on every model) and the plans-only
// one (loader_plans_only.cpp) that bitnet-rt links, which contains no compiler.
#pragma once

#include "bitnet/model.h"
#include "runtime/model.h"

#include <memory>
#include <string>
#include <vector>

namespace bitnet::api {

Expected<std::unique_ptr<runtime::Model>> load_gguf_model(const std::string& path, const ModelParams& params);
// Called on every model the library loads (plans too).
void after_load(runtime::Model& model);
std::vector<std::string> pass_names();

}  // namespace bitnet::api

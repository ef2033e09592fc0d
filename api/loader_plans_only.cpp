// The plans-only library's loader (see model_loader.h): no compiler, no interpreter.
#include "api/model_loader.h"

namespace bitnet::api {

Expected<std::unique_ptr<runtime::Model>> load_gguf_model(const std::string&, const ModelParams&) {
  return make_error("this runtime has no compiler and no interpreter: pass --plan PLAN (made by `bitnet compile`)");
}

void after_load(runtime::Model&) {}

std::vector<std::string> pass_names() {
  return {};
}

}  // namespace bitnet::api

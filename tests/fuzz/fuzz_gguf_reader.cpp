// libFuzzer target: the GGUF reader and everything that reads a parsed file
// (model analysis, tokenizer data, compat checks, inspect JSON) must never crash,
// hang or read out of bounds, whatever the bytes.
#include "frontend_gguf/compat.h"
#include "frontend_gguf/gguf_json.h"
#include "frontend_gguf/model_config.h"
#include "frontend_gguf/tokenizer_data.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace bitnet::gguf;
  for (bool lenient : {false, true}) {
    ParseOptions options;
    options.allow_misaligned_tensors = lenient;
    auto file = GgufFile::parse({data, size}, options);
    if (!file.ok()) continue;
    uint64_t checksum = 0;
    for (const auto& t : file->tensors()) {
      if (!t.data.empty()) checksum += t.data.front() + t.data.back();
    }
    (void)read_model_config(*file);
    (void)read_tokenizer_data(*file);
    (void)check_compat(*file);
    const auto doc = inspect_model(*file);
    checksum += doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).size();
    if (checksum == 0xdeadbeef) return 1;  // keep the work observable
  }
  return 0;
}

// JSON renderings of GGUF metadata values and of whole-model summaries (the data
// behind `bitnet inspect`; the tool prints it as text or as JSON).
#pragma once

#include "frontend_gguf/gguf_file.h"

#include <nlohmann/json.hpp>

namespace bitnet::gguf {

// Scalars as JSON scalars (non-finite floats as the strings "nan", "inf", "-inf");
// arrays longer than `max_items` as {"elem_type", "count", "head": [first items]}.
nlohmann::json value_to_json(const Value& value, size_t max_items = 16);

// The stable `bitnet inspect --json` document (schema documented in README.md).
inline constexpr int kInspectSchemaVersion = 1;
nlohmann::json inspect_model(const GgufFile& file);

}  // namespace bitnet::gguf

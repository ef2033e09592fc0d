// Findings about a model file: what makes it fail or misbehave here or in other
// engines, each with a severity, a stable code and a one-line fix hint.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace bitnet::gguf {

enum class Severity { kInfo, kWarning, kError };
std::string_view severity_name(Severity s);

struct Finding {
  Severity severity = Severity::kInfo;
  std::string code;      // stable identifier, e.g. "missing-tensor" (documented in README)
  std::string message;   // what is wrong, naming the key or tensor
  std::string hint;      // one line: how to fix it
  bool fixable = false;  // `bitnet compat-fix` can repair it
};

struct Findings {
  std::vector<Finding> items;
  void add(Severity s, std::string code, std::string message, std::string hint = {}, bool fixable = false) {
    items.push_back(Finding{s, std::move(code), std::move(message), std::move(hint), fixable});
  }
  bool has_errors() const;
  bool has_warnings() const;
  const Finding* first_error() const;
};

// "error [code] message (fix: hint)": how loaders refuse a model with the finding compat-check
// reports for it, so both name the same problem in the same words.
std::string format_finding(const Finding& f);

}  // namespace bitnet::gguf

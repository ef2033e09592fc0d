// Helpers of the plan tests: compiling a model to a plan file, rewriting plans (a changed
// field, a re-computed footer), and comparing the logits of two sessions exactly.
#pragma once

#include "compiler/load_model.h"
#include "compiler/plan_compiler.h"
#include "runtime/model.h"
#include "runtime/plan_files.h"
#include "runtime/plan_format.h"
#include "runtime/plan_reader.h"
#include "runtime/plan_writer.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace bitnet::testing {

inline std::filesystem::path stories_model() {
  return source_dir() / "models/stories260K.gguf";
}

// Compiles `model` for `target` and writes the plan (and sidecar) to `plan`; fails the test
// on error.
inline void compile_to(const std::filesystem::path& model, const std::filesystem::path& plan,
                       const std::string& target = "host") {
  auto m = compiler::load_model(model.string());
  ASSERT_TRUE(m.ok()) << m.error().message;
  auto hash = runtime::file_content_hash(model.string(), "", "model");
  ASSERT_TRUE(hash.ok()) << hash.error().message;
  auto compiled = compiler::compile_plan(**m, {.target = target}, *hash);
  ASSERT_TRUE(compiled.ok()) << compiled.error().message;
  auto s = runtime::write_plan(plan.string(), *compiled->plan, compiled->repacked);
  ASSERT_TRUE(s.ok()) << s.error().message;
}

inline std::unique_ptr<planfb::PlanT> unpack_file(const std::filesystem::path& plan) {
  auto p = runtime::read_plan(plan.string());
  EXPECT_TRUE(p.ok()) << p.error().message;
  return p.ok() ? std::move(*p) : nullptr;
}

// `body` with a freshly computed footer: a file whose checksum is right, so that the checks
// behind the checksum are what a test exercises.
inline std::vector<uint8_t> with_footer(std::vector<uint8_t> body) {
  const runtime::PlanFooter f = runtime::make_footer(body);
  const auto* p = reinterpret_cast<const uint8_t*>(&f);
  body.insert(body.end(), p, p + sizeof f);
  return body;
}

inline std::vector<uint8_t> body_of(const std::vector<uint8_t>& file) {
  return {file.begin(), file.end() - static_cast<std::ptrdiff_t>(sizeof(runtime::PlanFooter))};
}

// Every output of two sessions fed the same tokens, compared bit for bit.
inline void expect_same_logits(runtime::Session& a, runtime::Session& b, std::span<const int32_t> tokens,
                               const std::string& what) {
  auto x = a.run(tokens);
  auto y = b.run(tokens);
  ASSERT_TRUE(x.ok()) << x.error().message;
  ASSERT_TRUE(y.ok()) << y.error().message;
  const auto& lx = x->at("logits");
  const auto& ly = y->at("logits");
  ASSERT_EQ(lx.rows, ly.rows) << what;
  ASSERT_EQ(lx.cols, ly.cols) << what;
  size_t differing = 0;
  for (size_t i = 0; i < lx.data.size(); ++i) {
    differing += std::memcmp(&lx.data[i], &ly.data[i], sizeof(float)) != 0;
  }
  EXPECT_EQ(differing, 0u) << what << ": logits differ in " << differing << " of " << lx.data.size() << " values";
}

}  // namespace bitnet::testing

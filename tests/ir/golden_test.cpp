// Golden IR: the printed graph of small models must equal the expected text stored in
// tests/ir/golden/ (as MLIR's FileCheck tests do). A mismatch writes the actual text next
// to the build's test directory; BITNET_UPDATE_GOLDEN=1 rewrites the expected files.
#include "frontend_gguf/lowering.h"
#include "frontend_gguf/model_generator.h"
#include "ir/printer.h"
#include "passes/pass_manager.h"
#include "test_support.h"

#include <cstdlib>
#include <fstream>

namespace bitnet {
namespace {

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void expect_golden(const ir::Graph& graph, const std::string& name) {
  const std::string actual = ir::print(graph);
  const auto golden = testing::source_dir() / "tests/ir/golden" / (name + ".ir");
  if (const char* update = std::getenv("BITNET_UPDATE_GOLDEN"); update && std::string_view(update) == "1") {
    std::ofstream(golden, std::ios::binary) << actual;
  }
  const std::string expected = read_text(golden);
  if (actual != expected) {
    const auto out = testing::binary_dir() / (name + ".actual.ir");
    std::ofstream(out, std::ios::binary) << actual;
    ADD_FAILURE() << "IR of " << name << " differs from " << golden << "\nactual written to " << out
                  << "\n(diff them; if the change is intended, rerun with BITNET_UPDATE_GOLDEN=1)";
  }
}

void check_model(const std::string& path, const std::string& name) {
  auto file = gguf::GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.error().message;
  for (bool all : {false, true}) {
    auto graph = gguf::lower_to_ir(*file, {.all_logits = all});
    ASSERT_TRUE(graph.ok()) << graph.error().message;
    const std::string suffix = all ? ".all-logits" : "";
    expect_golden(*graph, name + suffix + ".lowered");
    ASSERT_TRUE(passes::default_pipeline().run(*graph).ok());
    expect_golden(*graph, name + suffix + ".optimized");
  }
}

TEST(GoldenIr, Stories260K) {
  check_model((testing::source_dir() / "models/stories260K.gguf").string(), "stories260K");
}

TEST(GoldenIr, GeneratedTestPreset) {
  testing::TempDir dir;
  const auto path = (dir / "test.gguf").string();
  auto spec = gguf::model_preset("test");
  ASSERT_TRUE(spec.has_value());
  ASSERT_TRUE(gguf::generate_model(*spec, path).ok());
  check_model(path, "preset-test");
}

TEST(GoldenIr, GeneratedBitnetArch) {
  testing::TempDir dir;
  const auto path = (dir / "mha.gguf").string();
  auto spec = gguf::model_preset("test");
  spec->arch = "bitnet";
  spec->n_layer = 1;
  spec->n_head_kv = 4;
  ASSERT_TRUE(gguf::generate_model(*spec, path).ok());
  check_model(path, "bitnet-1layer");
}

}  // namespace
}  // namespace bitnet

// Every way a plan can be wrong is refused with a clear message before any of its code runs:
// truncation at many points, flipped bytes anywhere (FlatBuffer, code image, footer), a wrong
// identifier, format or layout version, a target this CPU cannot run, a schedule that leaves
// its buffers, another model, and a sidecar that is not the one the plan was written with. The
// compiler-side deep check finds layouts this compiler would not derive.
#include "compiler/plan_encode.h"
#include "frontend_gguf/gguf_file.h"
#include "plan_test_util.h"
#include "runtime/plan_cpu.h"
#include "runtime/plan_files.h"
#include "runtime/plan_model.h"

#include <algorithm>
#include <functional>

namespace bitnet {
namespace {

using testing::TempDir;

class PlanCorruption : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    testing::compile_to(testing::stories_model(), *dir_ / "good.bnplan");
    good_ = new std::vector<uint8_t>(testing::read_file(*dir_ / "good.bnplan"));
  }
  static void TearDownTestSuite() {
    delete good_;
    delete dir_;
  }
  static const std::vector<uint8_t>& good() { return *good_; }

  // Writes `bytes` as a plan file and loads it to run; "" when it loads, else the error.
  std::string load_error(const std::vector<uint8_t>& bytes, const runtime::PlanRunOptions& options = {},
                         const std::string& name = "test.bnplan") {
    const auto path = *dir_ / name;
    testing::write_file(path, bytes);
    auto model = runtime::load_model_from_plan(path.string(), options);
    return model.ok() ? "" : model.error().message;
  }
  std::string load_error(const planfb::PlanT& plan) { return load_error(runtime::serialize_plan(plan)); }

  static TempDir* dir_;
  static std::vector<uint8_t>* good_;
};
TempDir* PlanCorruption::dir_ = nullptr;
std::vector<uint8_t>* PlanCorruption::good_ = nullptr;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST_F(PlanCorruption, TheGoodPlanLoads) {
  ASSERT_TRUE(runtime::parse_plan(good()).ok());
  EXPECT_EQ(load_error(good()), "");
}

TEST_F(PlanCorruption, TruncationAtManyPointsIsRefused) {
  const size_t n = good().size();
  std::vector<size_t> cuts = {0, 1, 4, 7, 8, 16, 31, 32, 33, n / 2, n - 33, n - 32, n - 31, n - 8, n - 1};
  for (size_t i = 1; i < 64; ++i) cuts.push_back(n * i / 64);
  for (size_t cut : cuts) {
    SCOPED_TRACE(cut);
    auto plan = runtime::parse_plan(std::span(good()).first(cut));
    ASSERT_FALSE(plan.ok());
    EXPECT_FALSE(plan.error().message.empty());
  }
  // Through the file loader too, naming the file.
  const std::string error = load_error({good().begin(), good().begin() + static_cast<std::ptrdiff_t>(n / 3)});
  EXPECT_TRUE(contains(error, "test.bnplan")) << error;
  std::vector<uint8_t> longer = good();
  longer.push_back(0);
  EXPECT_TRUE(contains(load_error(longer), "footer")) << load_error(longer);
}

TEST_F(PlanCorruption, EveryFlippedByteIsRefused) {
  const size_t n = good().size();
  std::vector<size_t> positions;
  for (size_t i = 0; i < 2000; ++i) positions.push_back(n * i / 2000);
  for (size_t i = 0; i < 16; ++i) positions.push_back(i);      // root offset, identifier
  for (size_t i = n - 32; i < n; ++i) positions.push_back(i);  // every footer byte
  const uint8_t elf[4] = {0x7f, 'E', 'L', 'F'};
  const auto image = std::search(good().begin(), good().end(), elf, elf + 4);
  ASSERT_NE(image, good().end()) << "the plan holds an ELF image";
  const auto at = static_cast<size_t>(image - good().begin());
  for (size_t i = 0; i < 256; ++i) positions.push_back(at + i);  // the code image's ELF header and more
  for (size_t i = 0; i < 64 && at + 20000 + i < n; ++i) positions.push_back(at + 20000 + i);  // inside its code
  std::vector<uint8_t> bytes = good();
  for (size_t p : positions) {
    for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}}) {
      bytes[p] ^= mask;
      auto plan = runtime::parse_plan(bytes);
      EXPECT_FALSE(plan.ok()) << "flipping bit " << int{mask} << " of byte " << p << " went unnoticed";
      bytes[p] ^= mask;
    }
  }
  bytes[at + 100] ^= 0xff;
  EXPECT_TRUE(contains(load_error(bytes), "checksum")) << load_error(bytes);
}

TEST_F(PlanCorruption, WrongIdentifierIsRefused) {
  std::vector<uint8_t> body = testing::body_of(good());
  std::memcpy(body.data() + 4, "XPLN", 4);
  const std::string error = load_error(testing::with_footer(body));
  EXPECT_TRUE(contains(error, "file identifier")) << error;
}

TEST_F(PlanCorruption, OtherFormatAndLayoutVersionsAreRefused) {
  // The footer's version (read before anything else), then the FlatBuffer's own.
  std::vector<uint8_t> bytes = good();
  runtime::PlanFooter f;
  std::memcpy(&f, bytes.data() + bytes.size() - sizeof f, sizeof f);
  f.format_version = runtime::kPlanFormatVersion + 1;
  std::memcpy(bytes.data() + bytes.size() - sizeof f, &f, sizeof f);
  EXPECT_TRUE(contains(load_error(bytes), "format version")) << load_error(bytes);

  auto plan = testing::unpack_file(*dir_ / "good.bnplan");
  ASSERT_TRUE(plan);
  plan->format_version = runtime::kPlanFormatVersion + 1;
  EXPECT_TRUE(contains(load_error(*plan), "format version")) << load_error(*plan);
  plan->format_version = runtime::kPlanFormatVersion;
  plan->weight_layout_version = runtime::kWeightLayoutVersion + 1;
  EXPECT_TRUE(contains(load_error(*plan), "weight layout version")) << load_error(*plan);
}

TEST_F(PlanCorruption, AStructurallyBrokenBufferFailsTheVerifier) {
  std::vector<uint8_t> body = testing::body_of(good());
  const uint32_t root = 0x7ffffff0;  // the root table far outside the buffer
  std::memcpy(body.data(), &root, 4);
  const std::string error = load_error(testing::with_footer(body));
  EXPECT_TRUE(contains(error, "does not verify")) << error;
}

TEST_F(PlanCorruption, TargetsThisCpuCannotRunAreRefused) {
  auto plan = testing::unpack_file(*dir_ / "good.bnplan");
  ASSERT_TRUE(plan);
  plan->target->required.push_back("avx512imaginary");
  std::string error = load_error(*plan);
  EXPECT_TRUE(contains(error, "CPU features") && contains(error, "avx512imaginary")) << error;
  plan->target->required.pop_back();

  // A real feature this CPU lacks, if there is one among those the runtime checks.
  for (const char* name :
       {"avx512vp2intersect", "avx512fp16", "avx512bf16", "avxvnni", "avx512vnni", "avx512f", "gfni", "sha", "avx2"}) {
    if (runtime::cpu_has_feature(name)) continue;
    plan->target->required.push_back(name);
    error = load_error(*plan);
    EXPECT_TRUE(contains(error, name)) << error;
    plan->target->required.pop_back();
    break;
  }
  plan->target->triple = "aarch64-unknown-linux-gnu";
  error = load_error(*plan);
  EXPECT_TRUE(contains(error, "aarch64")) << error;
}

TEST(PlanCpu, FeaturesSplitIntoCheckedAndUnchecked) {
  std::vector<std::string> required, unchecked;
  runtime::split_target_features("+avx2,-avx512f,+cmov,+fma,+sse2,+amx-tile", required, unchecked);
  EXPECT_EQ(required, (std::vector<std::string>{"avx2", "fma", "sse2"}));
  EXPECT_EQ(unchecked, (std::vector<std::string>{"amx-tile", "cmov"}));
  EXPECT_TRUE(runtime::cpu_has_feature("sse2"));  // every x86-64 CPU
  EXPECT_FALSE(runtime::cpu_has_feature("cmov")) << "unknown to the runtime, never reported present";
  EXPECT_TRUE(runtime::check_cpu_features({"sse", "sse2"}).ok());
}

// The runtime checks the bounds of everything the schedule points at (it never re-derives it):
// a plan whose checksum is right but whose slots, bindings, calls or indices leave their
// buffers is refused before any of its code is loaded.
TEST_F(PlanCorruption, OutOfBoundsSchedulesAreRefused) {
  auto refused = [&](const std::function<void(planfb::PlanT&)>& edit, const std::string& why) {
    auto plan = testing::unpack_file(*dir_ / "good.bnplan");
    ASSERT_TRUE(plan);
    edit(*plan);
    const std::string error = load_error(*plan);
    EXPECT_FALSE(error.empty()) << "the plan was accepted; expected '" << why << "'";
    EXPECT_TRUE(contains(error, why)) << "expected '" << why << "', got: " << error;
  };
  auto first_kernel_call = [](planfb::GraphPlanT& g) -> planfb::CallT& {
    return **std::find_if(g.schedule.begin(), g.schedule.end(),
                          [](const auto& c) { return c->kind == planfb::CallKind::Kernel; });
  };
  // A slot past the arena's end; an arena too small for its slots.
  refused(
      [](planfb::PlanT& p) {
        auto& s = p.graphs[0]->slots[5];
        s = planfb::Slot(p.graphs[0]->arena_bytes, s.bytes() > 0 ? s.bytes() : 64, s.alias());
      },
      "outside the");
  refused([](planfb::PlanT& p) { p.graphs[1]->arena_bytes = 64; }, "outside the");
  refused([](planfb::PlanT& p) { p.graphs[1]->arena_bytes = int64_t{1} << 50; }, "bad arena size");
  refused([](planfb::PlanT& p) { p.graphs[0]->t_max = 0; }, "bad t_max");
  // A binding that disagrees with its slot, or names a weight that does not exist.
  refused(
      [&](planfb::PlanT& p) {
        auto& out = *first_kernel_call(*p.graphs[0]).output;
        out = planfb::Binding(out.kind(), out.value(), out.index(), out.offset() + 64);
      },
      "its slot is at");
  refused(
      [&](planfb::PlanT& p) {
        for (auto& c : p.graphs[0]->schedule) {
          for (auto& b : c->inputs) {
            if (b.kind() == planfb::BindingKind::Weight) {
              b = planfb::Binding(b.kind(), b.value(), 100000, 0);
              return;
            }
          }
        }
      },
      "does not exist");
  // Kernel indices, splits, work units, granularity, KV layers, call kinds.
  refused([&](planfb::PlanT& p) { first_kernel_call(*p.graphs[1]).kernel = 999; }, "bad kernel index 999");
  refused([&](planfb::PlanT& p) { first_kernel_call(*p.graphs[1]).granularity = 0; }, "granularity 0");
  refused([&](planfb::PlanT& p) { first_kernel_call(*p.graphs[1]).units = 0; }, "work units");
  refused(
      [&](planfb::PlanT& p) {
        for (auto& c : p.graphs[0]->schedule) {
          if (c->kv_layer >= 0) {
            c->kv_layer = 77;
            return;
          }
        }
      },
      "KV layer 77");
  refused([&](planfb::PlanT& p) { p.graphs[0]->schedule[0]->kind = static_cast<planfb::CallKind>(9); }, "unknown kind");
  // Per-sequence calls: attention must be one, and row offsets must be the values' row sizes.
  auto first_attention = [](planfb::GraphPlanT& g) -> planfb::CallT& {
    return **std::find_if(g.schedule.begin(), g.schedule.end(), [](const auto& c) { return c->kv_layer >= 0; });
  };
  refused(
      [&](planfb::PlanT& p) {
        auto& c = first_attention(*p.graphs[0]);
        c.per_sequence = false;
        c.input_row_bytes.clear();
      },
      "does not run per sequence");
  refused([&](planfb::PlanT& p) { first_attention(*p.graphs[0]).input_row_bytes[0] *= 1000; }, "bytes per row, not");
  refused([&](planfb::PlanT& p) { first_attention(*p.graphs[0]).input_row_bytes.pop_back(); }, "row offsets for");
  refused([&](planfb::PlanT& p) { first_attention(*p.graphs[0]).row_bytes = 1 << 30; }, "offsets its output");
  refused(
      [&](planfb::PlanT& p) {
        for (auto& c : p.graphs[0]->schedule) {
          if (c->kind == planfb::CallKind::SelectRows) c->row_bytes = int64_t{1} << 40;
        }
      },
      "rows of");
  refused([&](planfb::PlanT& p) { p.graphs[0]->outputs[0]->cols = int64_t{1} << 30; }, "output 'logits'");
  // The stored graph must still type-check as IR.
  refused(
      [&](planfb::PlanT& p) {
        auto& node = **std::find_if(p.graphs[0]->nodes.begin(), p.graphs[0]->nodes.end(),
                                    [](const auto& n) { return n->kernel >= 0; });
        node.op = "frobnicate";
      },
      "unknown op");
  refused(
      [&](planfb::PlanT& p) {
        for (auto& n : p.graphs[0]->nodes) {
          if (n->operands.empty()) continue;
          n->operands[0] = 1000;  // a value not defined before its use
          break;
        }
      },
      "");
  refused([&](planfb::PlanT& p) { p.code->image[0] = 0; }, "not an ELF file");
  refused([&](planfb::PlanT& p) { p.kernels[0]->symbol = "no_such_kernel"; }, "no_such_kernel");
}

// What the runtime cannot tell from bounds (a slot moved inside the arena, another split of the
// same work) the compiler's deep check finds: the stored plan re-derived and compared.
TEST_F(PlanCorruption, TheCompilerSideCheckFindsLayoutsItWouldNotDerive) {
  auto rederived = [](const planfb::PlanT& p, int g) {
    compiler::WeightIndex index;
    for (size_t i = 0; i < p.weights.size(); ++i) {
      index[p.weights[i]->tensor] = {planfb::BindingKind::Weight, static_cast<int32_t>(i)};
    }
    std::vector<abi::WorkSplit> splits;
    for (const auto& k : p.kernels) splits.push_back(static_cast<abi::WorkSplit>(k->split));
    auto s = compiler::check_rederived(*p.graphs[static_cast<size_t>(g)], index, splits);
    return s.ok() ? std::string() : s.error().message;
  };
  auto plan = testing::unpack_file(*dir_ / "good.bnplan");
  ASSERT_TRUE(plan);
  EXPECT_EQ(rederived(*plan, 0), "");
  EXPECT_EQ(rederived(*plan, 1), "");
  plan->graphs[0]->slots[5] = planfb::Slot(plan->graphs[0]->slots[5].offset() + 64, plan->graphs[0]->slots[5].bytes(),
                                           plan->graphs[0]->slots[5].alias());
  EXPECT_TRUE(contains(rederived(*plan, 0), "memory plan")) << rederived(*plan, 0);
  plan->graphs[1]->schedule[3]->granularity = 3;
  EXPECT_TRUE(contains(rederived(*plan, 1), "schedule")) << rederived(*plan, 1);
  plan = testing::unpack_file(*dir_ / "good.bnplan");
  plan->graphs[1]->outputs[0]->name = "other";
  EXPECT_TRUE(contains(rederived(*plan, 1), "outputs")) << rederived(*plan, 1);
}

// A copy of stories260K with one byte of its last tensor changed, written through a rename (a
// new file, as every writer of ours does).
std::filesystem::path altered_model(const TempDir& dir) {
  std::vector<uint8_t> bytes = testing::read_file(testing::stories_model());
  auto file = gguf::GgufFile::parse(bytes);
  EXPECT_TRUE(file.ok());
  const gguf::TensorInfo& t = file->tensors().back();
  bytes[file->data_offset() + t.offset + 3] ^= 0x40;
  const auto path = dir / "altered.gguf";
  testing::write_file(dir / "altered.tmp", bytes);
  std::filesystem::rename(dir / "altered.tmp", path);
  return path;
}

TEST_F(PlanCorruption, AnotherModelIsRefused) {
  TempDir models;
  const auto copy = models / "copy.gguf";
  std::filesystem::copy_file(testing::stories_model(), copy);
  EXPECT_EQ(load_error(good(), {.model_path = copy.string()}), "") << "the same bytes elsewhere are the same model";
  std::string error = load_error(good(), {.model_path = altered_model(models).string()});
  EXPECT_TRUE(contains(error, "model mismatch")) << error;
  if (auto shared = testing::shared_dir()) {
    error = load_error(good(), {.model_path = (*shared / "models/bitnet-i2s/b158-tiny-gqa.i2_s.gguf").string()});
    EXPECT_TRUE(contains(error, "model mismatch")) << error;
  }
}

TEST_F(PlanCorruption, MemoisedModelHashesFollowTheFile) {
  // The memo answers while the file is unchanged and is not trusted once it changes.
  TempDir work;
  const auto model = work / "model.gguf";
  std::filesystem::copy_file(testing::stories_model(), model);
  const runtime::PlanRunOptions options{.model_path = model.string(), .memo_dir = work.path().string()};
  EXPECT_EQ(load_error(good(), options), "");
  EXPECT_EQ(load_error(good(), options), "");  // from the memo
  std::filesystem::rename(altered_model(work), model);
  EXPECT_TRUE(contains(load_error(good(), options), "model mismatch"));
}

// The good plan with `tensor` moved into a sidecar under a new name (the same bytes), as a
// repacking pass would store a weight in a layout of its own.
void write_repacked_plan(const std::filesystem::path& good_plan, const std::filesystem::path& out,
                         const std::string& tensor) {
  auto plan = testing::unpack_file(good_plan);
  ASSERT_TRUE(plan);
  const std::string renamed = tensor + ".repacked";
  std::string dtype;
  for (auto& g : plan->graphs) {
    for (size_t i = 0; i < g->nodes.size(); ++i) {
      auto& node = *g->nodes[i];
      if (node.op != "weight" || node.attrs[0]->string_value != tensor) continue;
      node.attrs[0]->string_value = renamed;
      g->values[i]->name = "@" + renamed;
      dtype = g->values[i]->dtype;
      for (auto& call : g->schedule) {
        for (auto& b : call->inputs) {
          if (b.value() == static_cast<int32_t>(i)) b = planfb::Binding(planfb::BindingKind::Repacked, b.value(), 0, 0);
        }
      }
    }
  }
  auto file = gguf::GgufFile::open(testing::stories_model().string());
  ASSERT_TRUE(file.ok());
  const gguf::TensorInfo* t = file->find_tensor(tensor);
  ASSERT_NE(t, nullptr);
  runtime::RepackedBlob blob{renamed, tensor, dtype, {t->data.begin(), t->data.end()}};
  ASSERT_TRUE(runtime::write_plan(out.string(), *plan, {blob}).ok());
}

TEST_F(PlanCorruption, SidecarWeightsAreUsedAndChecked) {
  TempDir work;
  const auto plan_path = work / "repacked.bnplan";
  const auto sidecar = work / "repacked.bnplan.weights";
  ASSERT_NO_FATAL_FAILURE(write_repacked_plan(*dir_ / "good.bnplan", plan_path, "blk.0.ffn_up.weight"));
  ASSERT_TRUE(std::filesystem::exists(sidecar));

  // It runs, reading the weight from the sidecar, with the original plan's logits.
  auto repacked = runtime::load_model_from_plan(plan_path.string(), {});
  ASSERT_TRUE(repacked.ok()) << repacked.error().message;
  auto original = runtime::load_model_from_plan((*dir_ / "good.bnplan").string(), {});
  ASSERT_TRUE(original.ok());
  auto a = (*repacked)->new_session(true, 64, 2);
  auto b = (*original)->new_session(true, 64, 2);
  const std::vector<int32_t> tokens = {1, 20, 300, 45, 7};
  testing::expect_same_logits(**a, **b, tokens, "sidecar copy of a weight");

  auto rewrite_sidecar = [&](const std::function<void(std::vector<uint8_t>&)>& change) {
    std::vector<uint8_t> bytes = testing::read_file(sidecar);
    change(bytes);
    testing::write_file(work / "sidecar.tmp", bytes);
    std::filesystem::rename(work / "sidecar.tmp", sidecar);
  };
  const std::vector<uint8_t> sidecar_bytes = testing::read_file(sidecar);
  rewrite_sidecar([](std::vector<uint8_t>& b) { b[b.size() / 2] ^= 1; });
  auto refused = runtime::load_model_from_plan(plan_path.string(), {});
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(contains(refused.error().message, "sidecar mismatch")) << refused.error().message;
  rewrite_sidecar([](std::vector<uint8_t>& b) {
    if (!b.empty()) b.pop_back();  // (resize(size - 1) trips GCC 12's stringop-overflow at -O1 + ASan)
  });
  EXPECT_FALSE(runtime::load_model_from_plan(plan_path.string(), {}).ok());
  std::filesystem::remove(sidecar);
  refused = runtime::load_model_from_plan(plan_path.string(), {});
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(contains(refused.error().message, "sidecar")) << refused.error().message;
  rewrite_sidecar([&](std::vector<uint8_t>& b) { b = sidecar_bytes; });
  EXPECT_TRUE(runtime::load_model_from_plan(plan_path.string(), {}).ok()) << "the original sidecar is accepted again";

  auto plan = testing::unpack_file(plan_path);
  plan->sidecar->file_name = "../elsewhere.weights";
  testing::write_file(plan_path, runtime::serialize_plan(*plan));
  refused = runtime::load_model_from_plan(plan_path.string(), {});
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(contains(refused.error().message, "plain file name")) << refused.error().message;
}

}  // namespace
}  // namespace bitnet

// The ggml type table and tensor byte sizes.
#include "frontend_gguf/ggml_types.h"
#include "frontend_gguf/lowering.h"
#include "ir/dtype.h"

#include <gtest/gtest.h>

#include <cctype>
#include <set>
#include <string>

namespace bitnet::gguf {
namespace {

TEST(GgmlTypes, IdsAndNamesAreUnique) {
  std::set<uint32_t> ids;
  std::set<std::string_view> names;
  for (const auto& row : ggml_type_table()) {
    EXPECT_TRUE(ids.insert(static_cast<uint32_t>(row.type)).second) << row.name;
    EXPECT_TRUE(names.insert(row.name).second) << row.name;
    EXPECT_GT(row.block_size, 0u);
    EXPECT_GT(row.block_bytes, 0u);
  }
}

TEST(GgmlTypes, BitnetForkIds) {
  EXPECT_EQ(find_ggml_type(36)->name, "I2_S");
  EXPECT_EQ(find_ggml_type(37)->name, "I8_S");
  EXPECT_EQ(find_ggml_type(38)->name, "TL1");
  EXPECT_EQ(find_ggml_type(39)->name, "TL2");
  EXPECT_EQ(find_ggml_type(34)->name, "TQ1_0");
  EXPECT_EQ(find_ggml_type(35)->name, "TQ2_0");
  EXPECT_EQ(find_ggml_type(30)->name, "BF16");
  EXPECT_EQ(find_ggml_type(4), nullptr);  // removed Q4_2
  EXPECT_EQ(find_ggml_type(40), nullptr);
  EXPECT_EQ(find_ggml_type("q8_0")->type, GgmlType::Q8_0);
}

TEST(GgmlTypes, BlockSizes) {
  const std::vector<uint64_t> row256 = {256, 3};
  EXPECT_EQ(*ggml_tensor_nbytes(GgmlType::F32, row256), 256u * 3 * 4);
  EXPECT_EQ(*ggml_tensor_nbytes(GgmlType::F16, row256), 256u * 3 * 2);
  EXPECT_EQ(*ggml_tensor_nbytes(GgmlType::Q8_0, row256), 8u * 3 * 34);
  EXPECT_EQ(*ggml_tensor_nbytes(GgmlType::Q4_0, row256), 8u * 3 * 18);
  EXPECT_EQ(*ggml_tensor_nbytes(GgmlType::Q6_K, row256), 3u * 210);
  EXPECT_EQ(*ggml_tensor_nbytes(GgmlType::Q2_K, row256), 3u * 84);
  EXPECT_EQ(*ggml_tensor_nbytes(GgmlType::Q8_K, row256), 3u * 292);
  EXPECT_EQ(*ggml_tensor_nbytes(GgmlType::TQ1_0, row256), 3u * 54);
  EXPECT_EQ(*ggml_tensor_nbytes(GgmlType::TQ2_0, row256), 3u * 66);
  EXPECT_EQ(*ggml_tensor_nbytes(GgmlType::IQ4_XS, row256), 3u * 136);
}

TEST(GgmlTypes, I2SIsQuarterBytePlusTrailer) {
  // spec 6: n/4 packed bytes + 32 (f32 scale and padding) per tensor.
  const std::vector<uint64_t> q = {2560, 2560};
  EXPECT_EQ(*ggml_tensor_nbytes(GgmlType::I2_S, q), 2560u * 2560 / 4 + 32);
  const std::vector<uint64_t> down = {6912, 2560};
  EXPECT_EQ(*ggml_tensor_nbytes(GgmlType::I2_S, down), 6912u * 2560 / 4 + 32);
}

TEST(GgmlTypes, TL2Formula) {
  const std::vector<uint64_t> ne = {2560, 640};
  uint64_t bytes = (2560 - 256) * 640 / 3 * 5 / 8 + 256 * 640 / 2 * 4 / 8;
  bytes = (bytes + 31) / 32 * 32 + 32;
  EXPECT_EQ(*ggml_tensor_nbytes(GgmlType::TL2, ne), bytes);
  const std::vector<uint64_t> narrow = {128, 4};
  EXPECT_FALSE(ggml_tensor_nbytes(GgmlType::TL2, narrow).ok());
}

TEST(GgmlTypes, RejectsBadShapes) {
  const std::vector<uint64_t> odd = {100, 2};
  auto r = ggml_tensor_nbytes(GgmlType::Q8_0, odd);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("multiple of the Q8_0 block size 32"), std::string::npos);
  const std::vector<uint64_t> huge = {uint64_t{1} << 40, uint64_t{1} << 40};
  EXPECT_FALSE(ggml_tensor_nbytes(GgmlType::F32, huge).ok());
  const std::vector<uint64_t> ok = {32};
  auto i8s = ggml_tensor_nbytes(GgmlType::I8_S, ok);
  ASSERT_FALSE(i8s.ok());
  EXPECT_NE(i8s.error().message.find("never valid in a file"), std::string::npos);
  EXPECT_FALSE(ggml_tensor_nbytes(GgmlType::F32, std::vector<uint64_t>{}).ok());
  EXPECT_FALSE(ggml_tensor_nbytes(GgmlType::F32, std::vector<uint64_t>{1, 1, 1, 1, 1}).ok());
}

TEST(GgmlTypes, ElementCountOverflow) {
  const std::vector<uint64_t> big = {uint64_t{1} << 32, uint64_t{1} << 32};
  EXPECT_FALSE(checked_element_count(big).has_value());
  const std::vector<uint64_t> fine = {1u << 20, 1u << 20};
  EXPECT_EQ(*checked_element_count(fine), uint64_t{1} << 40);
}

// The IR's dtype table names each type's ggml id (the one map between the two); where both
// tables describe a type, they agree on its name and block layout, and lowering maps exactly
// the weight types.
TEST(GgmlTypes, TheIrDtypeTableAgreesWithTheGgmlTable) {
  int mapped = 0;
  for (int d = 0; d <= static_cast<int>(ir::DType::I2_S); ++d) {
    const ir::DTypeInfo& info = ir::dtype_info(static_cast<ir::DType>(d));
    if (info.ggml_type < 0) {
      EXPECT_EQ(info.kind, ir::DTypeKind::kQuantizedActivation) << info.name;
      continue;
    }
    const GgmlTypeInfo* g = find_ggml_type(static_cast<uint32_t>(info.ggml_type));
    ASSERT_NE(g, nullptr) << info.name;
    std::string lower(g->name);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    EXPECT_EQ(lower, info.name);
    if (g->size_rule == SizeRule::kBlocks) {
      EXPECT_EQ(g->block_size, info.block_size) << info.name;
      EXPECT_EQ(g->block_bytes, info.block_bytes) << info.name;
    }
    EXPECT_EQ(ir::dtype_from_ggml(static_cast<uint32_t>(info.ggml_type)), info.dtype);
    EXPECT_EQ(ir_dtype(g->type).has_value(), ir::is_weight_dtype(info.dtype)) << info.name;
    // Every weight type decodes through the table (the interpreter's only way to read it).
    EXPECT_EQ(info.to_float != nullptr, ir::is_weight_dtype(info.dtype)) << info.name;
    ++mapped;
  }
  EXPECT_GE(mapped, 11);
  EXPECT_FALSE(ir::dtype_from_ggml(static_cast<uint32_t>(GgmlType::Q4_K)).has_value());  // no IR type
}

}  // namespace
}  // namespace bitnet::gguf

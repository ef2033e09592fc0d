// LM-head requantization (see lm_head.h).
#include "compiler/lm_head.h"

#include "compiler/requantize.h"

#include <fmt/format.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <thread>

namespace bitnet::compiler {

Expected<ir::DType> parse_lm_head(const std::string& name) {
  for (ir::DType d : {ir::DType::F16, ir::DType::Q8_0, ir::DType::Q6_K}) {
    if (name == ir::dtype_name(d)) return d;
  }
  return make_error("unknown LM head type '{}' (use f16, q8_0 or q6_k)", name);
}

Expected<std::optional<passes::LmHead>> requantized_lm_head(const runtime::Model& model) {
  auto last = passes::find_lm_head(model.graph(false));
  auto all = passes::find_lm_head(model.graph(true));
  // Graphs without an LM-head matmul cannot have had it retargeted either.
  if (!last.ok() || !all.ok()) return std::optional<passes::LmHead>();
  if (last->tensor != all->tensor || last->type != all->type) {
    return make_error("the two graphs read different LM heads ({} and {})", last->tensor, all->tensor);
  }
  if (!last->retargeted()) return std::optional<passes::LmHead>();
  return std::optional<passes::LmHead>(std::move(*last));
}

std::string lm_head_note(const runtime::Model& model, ir::DType requested) {
  if (requested == ir::DType::F16) return "";
  auto head = passes::find_lm_head(model.graph(false));
  if (!head.ok() || head->retargeted() || head->type.dtype == ir::DType::F16) return "";
  return fmt::format("--lm-head {} applies only to F16 LM heads; this model's ({}) is {} and is used as it is",
                     ir::dtype_name(requested), head->source, ir::dtype_name(head->type.dtype));
}

namespace {

// The requantized head is read whole on every decoded token, like the file's weights (see
// gguf::MappedFile): its buffer is advised to use 2 MiB pages before anything touches it
// (2B4T with a Q8_0 head: 81 % of the roofline on 4 KiB pages). Best effort.
void reserve_on_huge_pages(std::vector<uint8_t>& bytes, size_t size) {
  bytes.reserve(size);
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const auto begin = reinterpret_cast<uintptr_t>(bytes.data());
  const uintptr_t first = (begin + kHuge - 1) / kHuge * kHuge;
  const uintptr_t last = (begin + size) / kHuge * kHuge;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
}

}  // namespace

Expected<runtime::RepackedBlob> requantize_lm_head(const gguf::GgufFile& file, const passes::LmHead& head,
                                                   int threads) {
  const gguf::TensorInfo* t = file.find_tensor(head.source);
  if (t == nullptr) return make_error("the LM head's tensor '{}' is not in the model file", head.source);
  const int64_t rows = head.type.shape.front().size;
  const int64_t cols = head.type.shape.back().size;
  if (t->type != gguf::GgmlType::F16 || t->ne.size() != 2 || t->ne[0] != static_cast<uint64_t>(cols) ||
      t->ne[1] != static_cast<uint64_t>(rows)) {
    return make_error("the LM head's tensor '{}' is not F16 [{}, {}] in the model file", head.source, rows, cols);
  }
  const ir::DType dtype = head.type.dtype;
  const ir::DTypeInfo& info = ir::dtype_info(dtype);
  if ((dtype != ir::DType::Q8_0 && dtype != ir::DType::Q6_K) || cols % info.block_size != 0) {
    return make_error("cannot requantize the LM head to {} [{}, {}]", info.name, rows, cols);
  }
  const auto convert = [&](int64_t first, int64_t n) {
    const uint8_t* src = t->data.data() + first * cols * 2;
    return dtype == ir::DType::Q8_0 ? requantize_f16_to_q8_0(src, n, cols) : requantize_f16_to_q6_k(src, n, cols);
  };
  const int64_t row_bytes = cols / info.block_size * info.block_bytes;
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int64_t parts = std::clamp<int64_t>(threads, 1, rows);
  runtime::RepackedBlob blob{head.tensor, head.source, std::string(info.name), {}};
  reserve_on_huge_pages(blob.bytes, static_cast<size_t>(rows * row_bytes));
  blob.bytes.resize(static_cast<size_t>(rows * row_bytes));
  // Each part converts its rows (the converters return fresh vectors) and copies them to
  // their place; a part per thread, since rows cost the same.
  std::vector<std::thread> workers;
  for (int64_t p = 0; p < parts; ++p) {
    const int64_t first = rows * p / parts;
    const int64_t n = rows * (p + 1) / parts - first;
    workers.emplace_back([&, first, n] {
      const std::vector<uint8_t> part = convert(first, n);
      std::memcpy(blob.bytes.data() + first * row_bytes, part.data(), part.size());
    });
  }
  for (std::thread& w : workers) w.join();
  return blob;
}

}  // namespace bitnet::compiler

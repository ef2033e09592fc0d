// CPU side of the device check's whole-model decode test: a GGUF file read whole (metadata
// numbers and tensor offsets, no dependencies beyond the C++ library, so the static check binary
// stays small) and the decode step of spec 7 written with the reference kernels
// (reference/kernels.h), one token per call as the reference's decode mode. Also compiled into
// codegen_cuda_tests, where it is checked against the reference interpreter.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bitnet/result.h"
#include "codegen_cuda/decode_program.h"

namespace bitnet::bench {

struct GgufModel {
  struct Tensor {
    std::vector<int64_t> ne;
    uint32_t type = 0;
    uint64_t offset = 0;  // from the start of the file
  };
  std::vector<uint8_t> bytes;
  std::map<std::string, double> numbers;       // scalar numeric metadata
  std::map<std::string, std::string> strings;  // string metadata
  std::map<std::string, Tensor> tensors;
  const uint8_t* data(const std::string& name) const;  // null when absent
};

Expected<GgufModel> read_gguf(const std::string& path);

// The decode program's configuration from the metadata (bitnet: silu; bitnet-b1.58 / bitnet-25: relu2).
Expected<codegen_cuda::DecodeModelConfig> decode_config(const GgufModel& model, int64_t n_ctx);

class ReferenceDecoder {
 public:
  ReferenceDecoder(const codegen_cuda::DecodeModelConfig& config, codegen_cuda::TensorBytes tensors);
  // The logits of `token` at position `pos` (positions must follow 0, 1, 2, ...).
  std::vector<float> step(int32_t token, int64_t pos);

 private:
  codegen_cuda::DecodeModelConfig c_;
  codegen_cuda::TensorBytes tensors_;
  std::vector<std::vector<uint16_t>> k_cache_, v_cache_;
};

}  // namespace bitnet::bench

// CUDA modules in the plan cache (see cuda_module_file.h).
#include "runtime/cuda_module_file.h"

#include <cstring>
#include <fstream>
#include <iterator>
#include <span>

#include "runtime/plan_files.h"
#include "runtime/plan_format.h"

namespace bitnet::runtime {
namespace {

constexpr char kMagic[8] = {'B', 'N', 'C', 'U', 'M', 'O', 'D', '1'};

struct Header {
  char magic[8];
  uint32_t sm;
  uint32_t reserved;
  uint64_t sizes[4];  // material, note, cubin, ptx
};
static_assert(sizeof(Header) == 48);

std::span<const uint8_t> bytes_of(const void* p, size_t n) {
  return {static_cast<const uint8_t*>(p), n};
}

}  // namespace

Status write_cuda_module(const std::string& path, const CudaModuleFile& m) {
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.sm = static_cast<uint32_t>(m.sm);
  h.sizes[0] = m.material.size();
  h.sizes[1] = m.note.size();
  h.sizes[2] = m.cubin.size();
  h.sizes[3] = m.ptx.size();
  std::vector<uint8_t> body(bytes_of(&h, sizeof h).begin(), bytes_of(&h, sizeof h).end());
  for (std::span<const uint8_t> part :
       {bytes_of(m.material.data(), m.material.size()), bytes_of(m.note.data(), m.note.size()),
        std::span<const uint8_t>(m.cubin), bytes_of(m.ptx.data(), m.ptx.size())}) {
    body.insert(body.end(), part.begin(), part.end());
  }
  const Hash128 hash = xxh3_128(body);
  const std::span<const uint8_t> parts[] = {body, bytes_of(&hash, sizeof hash)};
  return write_file_atomically(path, parts);
}

Expected<CudaModuleFile> read_cuda_module(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("cannot open '{}'", path);
  const std::vector<uint8_t> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return make_error("cannot read '{}'", path);
  Header h{};
  if (file.size() < sizeof h + sizeof(Hash128)) return make_error("'{}' is too short for a CUDA module", path);
  std::memcpy(&h, file.data(), sizeof h);
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0) return make_error("'{}' is not a CUDA module", path);
  uint64_t total = sizeof h + sizeof(Hash128);
  for (uint64_t s : h.sizes) {
    if (s > file.size()) return make_error("'{}': a section is larger than the file", path);
    total += s;
  }
  if (total != file.size()) {
    return make_error("'{}' has {} bytes where its header says {} (truncated or appended to)", path, file.size(),
                      total);
  }
  const size_t body = file.size() - sizeof(Hash128);
  Hash128 stored{};
  std::memcpy(&stored, file.data() + body, sizeof stored);
  if (!(xxh3_128(bytes_of(file.data(), body)) == stored)) {
    return make_error("'{}': checksum mismatch (the file was altered)", path);
  }
  CudaModuleFile m;
  m.sm = static_cast<int>(h.sm);
  const char* p = reinterpret_cast<const char*>(file.data()) + sizeof h;
  m.material.assign(p, h.sizes[0]);
  p += h.sizes[0];
  m.note.assign(p, h.sizes[1]);
  p += h.sizes[1];
  m.cubin.assign(p, p + h.sizes[2]);
  p += h.sizes[2];
  m.ptx.assign(p, h.sizes[3]);
  return m;
}

}  // namespace bitnet::runtime

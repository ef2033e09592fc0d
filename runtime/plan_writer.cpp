// Plan serialisation and sidecar layout (see plan_writer.h).
#include "runtime/plan_writer.h"

#include "frontend_gguf/output_file.h"
#include "runtime/plan_files.h"
#include "runtime/plan_format.h"

#include <cstring>
#include <filesystem>

namespace bitnet::runtime {

std::unique_ptr<planfb::ModelIdentityT> plan_model_identity(const gguf::GgufFile& file, const Hash128& hash) {
  auto m = std::make_unique<planfb::ModelIdentityT>();
  std::error_code ec;
  const auto absolute = std::filesystem::absolute(file.path(), ec);
  m->path = ec ? file.path() : absolute.lexically_normal().string();
  m->file_size = file.file_size();
  m->hash = std::make_unique<planfb::Hash128>(hash.lo, hash.hi);
  m->architecture = file.architecture();
  if (const std::string* name = file.get_string("general.name")) m->name = *name;
  return m;
}

std::vector<uint8_t> serialize_plan(const planfb::PlanT& plan) {
  // Pre-sized: the builder grows by doubling, and the code image dominates the size.
  const size_t code_bytes = plan.code ? plan.code->image.size() : 0;
  flatbuffers::FlatBufferBuilder fbb(code_bytes + (size_t{1} << 20));
  planfb::FinishPlanBuffer(fbb, planfb::Plan::Pack(fbb, &plan));
  const std::span<const uint8_t> body(fbb.GetBufferPointer(), fbb.GetSize());
  const PlanFooter footer = make_footer(body);
  std::vector<uint8_t> out(body.begin(), body.end());
  const auto* f = reinterpret_cast<const uint8_t*>(&footer);
  out.insert(out.end(), f, f + sizeof footer);
  return out;
}

Status write_plan(const std::string& path, planfb::PlanT& plan, const std::vector<RepackedBlob>& repacked) {
  // FlatBuffers 2.0.8 offsets are 32-bit (a 2 GiB limit the builder enforces by aborting): code
  // is megabytes, weights never go in, so a plan near the limit is a bug to report, not write.
  if (plan.code && plan.code->image.size() > (size_t{1} << 30)) {
    return make_error("the plan's code image is {} bytes, too large for a plan", plan.code->image.size());
  }
  plan.sidecar.reset();
  if (!repacked.empty()) {
    auto sidecar = std::make_unique<planfb::SidecarT>();
    sidecar->file_name = file_name_of(path) + kSidecarSuffix;
    std::vector<uint8_t> bytes;
    for (const RepackedBlob& blob : repacked) {
      bytes.resize((bytes.size() + kSidecarAlignment - 1) / kSidecarAlignment * kSidecarAlignment, 0);
      auto w = std::make_unique<planfb::RepackedWeightT>();
      w->tensor = blob.tensor;
      w->source = blob.source;
      w->dtype = blob.dtype;
      w->offset = bytes.size();
      w->bytes = blob.bytes.size();
      w->hash = xxh3_64(blob.bytes);
      bytes.insert(bytes.end(), blob.bytes.begin(), blob.bytes.end());
      sidecar->weights.push_back(std::move(w));
    }
    sidecar->file_size = bytes.size();
    const Hash128 h = xxh3_128(bytes);
    sidecar->hash = std::make_unique<planfb::Hash128>(h.lo, h.hi);
    plan.sidecar = std::move(sidecar);
    // The sidecar first: a plan is never visible before the weights it names. It is derived
    // from PATH's name, so it is written only beside a regular file (output_file.h): a plan
    // written to /dev/null or a pipe gets no /dev/null.weights.
    BITNET_ASSIGN_OR_RETURN(const gguf::OutputKind kind, gguf::output_kind(path));
    if (kind == gguf::OutputKind::kRegularFile) {
      const std::span<const uint8_t> part(bytes);
      BITNET_RETURN_IF_ERROR(write_file_atomically(path + kSidecarSuffix, std::span(&part, 1)));
    }
  }
  const std::vector<uint8_t> file = serialize_plan(plan);
  const std::span<const uint8_t> part(file);
  return write_file_atomically(path, std::span(&part, 1));
}

}  // namespace bitnet::runtime

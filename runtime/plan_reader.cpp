// Plan file checks and unpacking (see plan_reader.h).
#include "runtime/plan_reader.h"

#include "frontend_gguf/mapped_file.h"
#include "runtime/plan_format.h"

namespace bitnet::runtime {

Expected<std::unique_ptr<planfb::PlanT>> parse_plan(std::span<const uint8_t> file) {
  BITNET_RETURN_IF_ERROR(check_footer(file));
  const std::span<const uint8_t> body = file.first(file.size() - sizeof(PlanFooter));
  if (body.size() < 8 || !planfb::PlanBufferHasIdentifier(body.data())) {
    return make_error("not a plan: the file identifier is not '{}'", kPlanIdentifier);
  }
  // Limits above the defaults: a plan holds a few thousand tables; depth is small.
  flatbuffers::Verifier verifier(body.data(), body.size(), /*max_depth=*/64, /*max_tables=*/10'000'000);
  if (!planfb::VerifyPlanBuffer(verifier)) return make_error("the plan's FlatBuffer does not verify (corrupt)");
  const planfb::Plan* plan = planfb::GetPlan(body.data());
  if (plan->format_version() != kPlanFormatVersion) {
    return make_error("plan format version {} is not this runtime's version {}; recompile the plan",
                      plan->format_version(), kPlanFormatVersion);
  }
  if (plan->weight_layout_version() != kWeightLayoutVersion) {
    return make_error("the plan's weight layout version {} is not this runtime's version {}; recompile the plan",
                      plan->weight_layout_version(), kWeightLayoutVersion);
  }
  return std::unique_ptr<planfb::PlanT>(plan->UnPack());
}

Expected<std::unique_ptr<planfb::PlanT>> read_plan(const std::string& path) {
  auto mapping = gguf::MappedFile::open(path);
  if (!mapping.ok()) return mapping.error();
  auto plan = parse_plan((*mapping)->bytes());
  if (!plan.ok()) return make_error("{}: {}", path, plan.error().message);
  return plan;
}

}  // namespace bitnet::runtime

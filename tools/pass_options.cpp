// See pass_options.h.
#include "tools/pass_options.h"

#include <fmt/format.h>

namespace bitnet::tools {

passes::PassOptions to_pass_options(const PassFlags& flags) {
  passes::PassOptions o;
  o.print_after_all = flags.print_after_all;
  o.print_after = flags.print_after;
  o.time_passes = flags.time_passes;
  o.sink = [](std::string_view text) { fmt::print(stderr, "{}", text); };
  return o;
}

}  // namespace bitnet::tools

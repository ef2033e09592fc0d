// Links the relocatable objects the JIT produced (one per kernel, small code model + PIC) into
// one ELF shared object with lld inside this process (no system linker needed; TOOLCHAIN.md 2
// measured 1.3-4.5 ms). A plan stores the result; the runtime dlopens it without LLVM.
#pragma once

#include "ir/support/expected.h"

#include <string>
#include <utility>
#include <vector>

namespace bitnet::codegen {

// `objects`: (name, ELF object bytes). Returns the shared object's bytes, stripped of
// everything but what dlopen and dlsym need. Serialised internally: lld is not re-entrant.
Expected<std::string> link_shared_object(const std::vector<std::pair<std::string, std::string>>& objects);

}  // namespace bitnet::codegen

// Inside the library: messages go to the user's log callback (bitnet/log.h), or nowhere.
#pragma once

#include "bitnet/log.h"

namespace bitnet::api {

void log(LogLevel level, std::string_view message);

}  // namespace bitnet::api

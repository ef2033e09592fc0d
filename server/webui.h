// The chat page served at / (server/webui/index.html, embedded into the binary at build time).
#pragma once

#include <string_view>

namespace bitnet::server {

std::string_view webui_html();

}  // namespace bitnet::server

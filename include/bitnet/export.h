// BITNET_API marks what the shared library (lib/libbitnet.so) exports: the classes and
// functions of include/bitnet/. Everything else in it — the engine, and the library's own
// instantiations of standard templates — is compiled hidden (api/CMakeLists.txt).
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define BITNET_API __attribute__((visibility("default")))
#else
#define BITNET_API
#endif

// GCC 12's static libstdc++ references arc4random (std::random_device's default source), which
// would make the check binary require glibc 2.36. The check never uses std::random_device; this
// definition satisfies the reference and keeps the requirement at glibc 2.35 (Ubuntu 22.04),
// set by the static unwinder's _dl_find_object.
#include <sys/random.h>

#include <cstdint>

extern "C" uint32_t arc4random(void) {
  uint32_t value = 0;
  while (getrandom(&value, sizeof value, 0) != static_cast<ssize_t>(sizeof value)) {
  }
  return value;
}

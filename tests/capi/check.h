/* A minimal check macro for the C API tests: reports and counts failures, never aborts. */
#ifndef BITNET_CAPI_CHECK_H
#define BITNET_CAPI_CHECK_H

#include <stdio.h>

static int check_failures = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++check_failures;                                                        \
    }                                                                          \
  } while (0)

#endif

/* unit.h: the few checks the C unit tests need (run under ctest) */
#ifndef AI_UNIT_H
#define AI_UNIT_H

#include <stdio.h>
#include <stdlib.h>

static int unit_failures = 0;
static int unit_checks = 0;

#define CHECK(cond)                                                         \
  do {                                                                      \
    unit_checks++;                                                          \
    if (!(cond)) {                                                          \
      unit_failures++;                                                      \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                       \
  } while (0)

#define UNIT_DONE()                                                         \
  do {                                                                      \
    printf("%d checks, %d failed\n", unit_checks, unit_failures);           \
    return unit_failures == 0 ? 0 : 1;                                      \
  } while (0)

#endif

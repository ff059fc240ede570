/*
** clock.c: the monotonic clock of the core.
**
** Events store raw ticks; they become nanoseconds only when a report asks.
** On x86 with an invariant TSC (constant_tsc and nonstop_tsc) a tick is one
** rdtsc, a single instruction on the hot path; elsewhere it is
** clock_gettime(CLOCK_MONOTONIC) in nanoseconds.
*/
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ai_internal.h"

#if defined(__x86_64__) || defined(__i386__)
int ai_clock_tsc_ok = 0;
#endif

/* nanoseconds per tick, as a 32.32 fixed-point factor (exact for ns ticks) */
static uint64_t ns_per_tick_fp = (uint64_t)1 << 32;
static pthread_once_t calibrated = PTHREAD_ONCE_INIT;

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

ai_tick ai_clock_now(void) {
#if defined(__x86_64__) || defined(__i386__)
  if (ai_clock_tsc_ok) return (ai_tick)__rdtsc();
#endif
  return mono_ns();
}

#if defined(__x86_64__) || defined(__i386__)
/* the TSC is usable as a clock only when it neither varies with frequency
** nor stops in deep sleep; the kernel tells through cpu flags */
static int tsc_invariant(void) {
  char line[4096];
  int constant = 0, nonstop = 0;
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (f == NULL) return 0;
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, "flags", 5) != 0) continue;
    constant = strstr(line, " constant_tsc") != NULL;
    nonstop = strstr(line, " nonstop_tsc") != NULL;
    break;
  }
  fclose(f);
  return constant && nonstop;
}

/* measure ticks against CLOCK_MONOTONIC over a short busy interval */
static void calibrate_tsc(void) {
  uint64_t n0 = mono_ns(), t0 = __rdtsc(), n1, t1;
  do { n1 = mono_ns(); } while (n1 - n0 < 2000000u); /* 2 ms */
  t1 = __rdtsc();
  if (t1 <= t0) return;
  ns_per_tick_fp = (uint64_t)(((double)(n1 - n0) / (double)(t1 - t0)) * 4294967296.0);
  ai_clock_tsc_ok = 1;
}
#endif

static void calibrate(void) {
#if defined(__x86_64__) || defined(__i386__)
  if (tsc_invariant()) calibrate_tsc();
#endif
}

/* the calibration is a property of the machine, the same for every Lua
** state: computed once per process, written before any reader sees it */
void ai_clock_init(void) {
  pthread_once(&calibrated, calibrate);
}

uint64_t ai_clock_ns(ai_tick a, ai_tick b) {
  uint64_t d = b - a;
  /* split to keep 64-bit arithmetic without overflow */
  uint64_t hi = (d >> 32) * ns_per_tick_fp;
  uint64_t lo = ((d & 0xffffffffu) * ns_per_tick_fp) >> 32;
  return hi + lo;
}

int ai_clock_uses_tsc(void) {
#if defined(__x86_64__) || defined(__i386__)
  return ai_clock_tsc_ok;
#else
  return 0;
#endif
}

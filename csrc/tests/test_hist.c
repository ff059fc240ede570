/*
** test_hist.c: unit tests of the log-linear histograms (hist.c).
**
** What the profiler relies on: every quantile within 2% of the exact one over
** the whole range a duration in ns can take (1 ns .. 1e12 ns, about 17 minutes),
** for several shapes of distribution; merging equals recording everything in
** one; exact count, min and max; an empty histogram answers 0; bucket
** indices stay inside the fixed array for any 64-bit value.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ai_internal.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond, ...)                                   \
  do {                                                     \
    checks++;                                              \
    if (!(cond)) {                                         \
      failures++;                                          \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                        \
      fputc('\n', stderr);                                 \
    }                                                      \
  } while (0)

/* xorshift64*: deterministic samples */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void) {
  uint64_t x = rng_state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rng_state = x;
  return x * 0x2545f4914f6cdd1dull;
}

/* no libm: the test links only the core's objects */
static double fabs_(double x) { return x < 0 ? -x : x; }
#define fabs fabs_

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static double rel_err(uint64_t got, uint64_t want) {
  if (want == 0) return got == 0 ? 0.0 : 1.0;
  return fabs((double)got - (double)want) / (double)want;
}

/* the exact quantile with the rank rule of ai_hist_quantile: the value of
** rank floor(q * n) (0-based) among the sorted samples, min at 0, max at 1 */
static uint64_t exact_quantile(const uint64_t *sorted, size_t n, double q) {
  size_t rank;
  if (q <= 0) return sorted[0];
  if (q >= 1) return sorted[n - 1];
  rank = (size_t)(q * (double)n);
  if (rank >= n) rank = n - 1;
  return sorted[rank];
}

static const double QS[] = {0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999};
#define NQ (sizeof QS / sizeof QS[0])

/* record the samples, compare every quantile with the exact one */
static void check_distribution(const char *name, uint64_t *v, size_t n) {
  static ai_hist h;
  size_t i, k;
  double worst = 0;
  ai_hist_init(&h);
  for (i = 0; i < n; i++) ai_hist_record(&h, v[i]);
  qsort(v, n, sizeof v[0], cmp_u64);
  CHECK(h.count == n, "%s: count %llu, want %zu", name, (unsigned long long)h.count, n);
  CHECK(h.min == v[0], "%s: min %llu, want %llu", name, (unsigned long long)h.min,
        (unsigned long long)v[0]);
  CHECK(h.max == v[n - 1], "%s: max %llu, want %llu", name, (unsigned long long)h.max,
        (unsigned long long)v[n - 1]);
  CHECK(ai_hist_quantile(&h, 0) == v[0], "%s: q=0 is not the min", name);
  CHECK(ai_hist_quantile(&h, 1) == v[n - 1], "%s: q=1 is not the max", name);
  for (k = 0; k < NQ; k++) {
    uint64_t want = exact_quantile(v, n, QS[k]);
    uint64_t got = ai_hist_quantile(&h, QS[k]);
    double e = rel_err(got, want);
    if (e > worst) worst = e;
    CHECK(e < 0.02, "%s: q=%g gives %llu, exact %llu (error %.3f%%)", name, QS[k],
          (unsigned long long)got, (unsigned long long)want, e * 100);
  }
  printf("  %-28s n=%zu worst quantile error %.3f%%\n", name, n, worst * 100);
}

#define N 200000
static uint64_t samples[N];

static void test_distributions(void) {
  size_t i;
  /* uniform over 1 .. 1e6 */
  for (i = 0; i < N; i++) samples[i] = 1 + rng() % 1000000;
  check_distribution("uniform 1..1e6", samples, N);
  /* log-uniform over the whole range 1 .. 1e12: a power of two, then a value inside it */
  for (i = 0; i < N; i++) {
    uint64_t p2 = (uint64_t)1 << (rng() % 40);
    samples[i] = p2 + rng() % p2;
  }
  check_distribution("log-uniform 1..1e12", samples, N);
  /* geometric tail: each extra millisecond half as likely (coin flips), jittered */
  for (i = 0; i < N; i++)
    samples[i] = (uint64_t)__builtin_ctzll(rng() | (1ull << 40)) * 1000000 + rng() % 1000000 + 1;
  check_distribution("geometric 1ms steps", samples, N);
  /* bimodal: fast polls near 2 us, slow ones near 40 ms */
  for (i = 0; i < N; i++)
    samples[i] = (i % 10 == 0) ? 40000000 + rng() % 4000000 : 2000 + rng() % 200;
  check_distribution("bimodal 2us / 40ms", samples, N);
  /* small integers: one bucket each below 64, exact */
  for (i = 0; i < N; i++) samples[i] = rng() % 64;
  check_distribution("small 0..63", samples, N);
  /* the extremes of the range */
  for (i = 0; i < N; i++) samples[i] = (i & 1) ? 1 : 1000000000000ull;
  check_distribution("1 and 1e12", samples, N);
}

/* every value 1 .. 1e12 (log-spaced, and the edges of buckets) is reported
** within 1% by the bucket it falls in; every bucket index is in range */
static void test_bucket_error(void) {
  double v, worst = 0;
  uint64_t x;
  int shift;
  for (v = 1; v <= 1e12; v *= 1.0007) {
    x = (uint64_t)v;
    uint32_t b = ai_hist_bucket_of(x);
    double e = rel_err(ai_hist_bucket_value(b), x);
    if (e > worst) worst = e;
    CHECK(b < AI_HIST_BUCKETS, "bucket %u of %llu out of range", b, (unsigned long long)x);
    CHECK(e < 0.01, "value %llu reported as %llu", (unsigned long long)x,
          (unsigned long long)ai_hist_bucket_value(b));
  }
  for (shift = 6; shift < 64; shift++) { /* both ends of each power of two */
    uint64_t lo = (uint64_t)1 << shift, hi = lo + (lo - 1);
    CHECK(ai_hist_bucket_of(lo) < AI_HIST_BUCKETS, "2^%d out of range", shift);
    CHECK(ai_hist_bucket_of(hi) < AI_HIST_BUCKETS, "2^%d-1 out of range", shift + 1);
    CHECK(ai_hist_bucket_of(hi) >= ai_hist_bucket_of(lo), "buckets not monotonic at 2^%d", shift);
    CHECK(rel_err(ai_hist_bucket_value(ai_hist_bucket_of(hi)), hi) < 0.01, "2^%d-1 off", shift + 1);
  }
  CHECK(ai_hist_bucket_of(UINT64_MAX) == AI_HIST_BUCKETS - 1, "UINT64_MAX in bucket %u",
        ai_hist_bucket_of(UINT64_MAX));
  for (x = 0; x < AI_HIST_SUB; x++)
    CHECK(ai_hist_bucket_value(ai_hist_bucket_of(x)) == x, "small value %llu not exact",
          (unsigned long long)x);
  printf("  %-28s worst %.3f%%\n", "bucket midpoint error", worst * 100);
}

/* merging two histograms equals recording every sample in one */
static void test_merge(void) {
  static ai_hist a, b, all, empty;
  size_t i;
  ai_hist_init(&a);
  ai_hist_init(&b);
  ai_hist_init(&all);
  ai_hist_init(&empty);
  for (i = 0; i < 50000; i++) {
    uint64_t x = 1 + rng() % 5000, y = 1000000 + rng() % 90000000;
    ai_hist_record(&a, x);
    ai_hist_record(&all, x);
    ai_hist_record(&b, y);
    ai_hist_record(&all, y);
  }
  ai_hist_merge(&a, &b);
  CHECK(memcmp(a.buckets, all.buckets, sizeof a.buckets) == 0, "merged buckets differ");
  CHECK(a.count == all.count, "merged count %llu, want %llu", (unsigned long long)a.count,
        (unsigned long long)all.count);
  CHECK(a.min == all.min && a.max == all.max, "merged min/max differ");
  CHECK(fabs(a.sum - all.sum) <= 1e-9 * all.sum, "merged sum %.0f, want %.0f", a.sum, all.sum);
  for (i = 0; i < NQ; i++)
    CHECK(ai_hist_quantile(&a, QS[i]) == ai_hist_quantile(&all, QS[i]), "q=%g differs", QS[i]);
  /* merging an empty histogram changes nothing; merging into one copies */
  ai_hist_merge(&a, &empty);
  CHECK(a.count == all.count && a.min == all.min, "merging an empty histogram changed it");
  ai_hist_merge(&empty, &b);
  CHECK(empty.count == b.count && empty.min == b.min && empty.max == b.max,
        "merging into an empty histogram is not a copy");
  CHECK(memcmp(empty.buckets, b.buckets, sizeof b.buckets) == 0, "copied buckets differ");
}

static void test_empty_and_single(void) {
  static ai_hist h;
  ai_hist_init(&h);
  CHECK(h.count == 0 && h.min == 0 && h.max == 0, "fresh histogram not empty");
  CHECK(ai_hist_quantile(&h, 0.5) == 0, "empty p50 not 0");
  CHECK(ai_hist_quantile(&h, 0) == 0 && ai_hist_quantile(&h, 1) == 0, "empty extremes not 0");
  ai_hist_record(&h, 123456789);
  CHECK(h.count == 1, "count after one sample");
  CHECK(h.min == 123456789 && h.max == 123456789, "min/max of one sample");
  /* clamped to the exact extremes: one sample is reported exactly */
  CHECK(ai_hist_quantile(&h, 0.5) == 123456789, "p50 of one sample %llu",
        (unsigned long long)ai_hist_quantile(&h, 0.5));
  CHECK(ai_hist_quantile(&h, 0.999) == 123456789, "p99.9 of one sample");
  ai_hist_record(&h, 0);
  CHECK(h.min == 0 && h.count == 2, "zero is a value like any other");
}

/* scaling (ticks -> ns) keeps count and extremes and moves quantiles */
static void test_scale(void) {
  static ai_hist h, s;
  size_t i;
  ai_hist_init(&h);
  for (i = 0; i < 10000; i++) ai_hist_record(&h, 1000 + rng() % 1000000);
  ai_hist_scale(&s, &h, 0.5);
  CHECK(s.count == h.count, "scaled count");
  CHECK(s.min == h.min / 2 && s.max == h.max / 2, "scaled extremes");
  for (i = 0; i < NQ; i++) {
    uint64_t want = ai_hist_quantile(&h, QS[i]) / 2;
    CHECK(rel_err(ai_hist_quantile(&s, QS[i]), want) < 0.02, "scaled q=%g", QS[i]);
  }
}

/* the hot path's ai_hist_add keeps only buckets; settled, it must hold the
** same buckets and count as ai_hist_record, and min/max within a bucket */
static void test_hot_add(void) {
  static ai_hist fast, full;
  uint32_t i, b;
  int same = 1;
  ai_hist_init(&fast);
  ai_hist_init(&full);
  for (i = 0; i < 100000; i++) {
    uint64_t v = rng() >> (rng() % 64);
    ai_hist_add(&fast, v);
    ai_hist_record(&full, v);
  }
  ai_hist_settle(&fast);
  for (b = 0; b < AI_HIST_BUCKETS; b++) same = same && fast.buckets[b] == full.buckets[b];
  CHECK(same, "ai_hist_add and ai_hist_record fill different buckets");
  CHECK(fast.count == 100000, "settled count %llu", (unsigned long long)fast.count);
  CHECK(rel_err(fast.min, full.min) < 0.02 || fast.min == full.min, "min %llu vs %llu",
        (unsigned long long)fast.min, (unsigned long long)full.min);
  CHECK(rel_err(fast.max, full.max) < 0.02, "max %llu vs %llu", (unsigned long long)fast.max,
        (unsigned long long)full.max);
  /* a bucket goes past 2^32 (minutes of a busy program) without wrapping */
  b = ai_hist_bucket_of(1000);
  fast.buckets[b] = UINT32_MAX;
  ai_hist_add(&fast, 1000);
  CHECK(fast.buckets[b] == (uint64_t)UINT32_MAX + 1, "bucket wrapped at 2^32");
}

int main(void) {
  printf("test_hist\n");
  test_hot_add();
  test_empty_and_single();
  test_bucket_error();
  test_distributions();
  test_merge();
  test_scale();
  printf("%d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}

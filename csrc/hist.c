/*
** hist.c: log-linear histograms.
**
** Values below 64 have a bucket each; above, every power of two is split in
** 64 equal sub-buckets, so a bucket is at most 1/64 (1.6%) of its value wide
** and the midpoint reported is within 0.8%. Fixed memory, no allocation per
** sample, and two histograms merge by adding their buckets.
*/
#include <string.h>

#include "ai_internal.h"

void ai_hist_init(ai_hist *h) { memset(h, 0, sizeof *h); }

/* the midpoint of a bucket's range of values */
uint64_t ai_hist_bucket_value(uint32_t b) {
  uint32_t shift, sub;
  uint64_t low, width;
  if (b < AI_HIST_SUB) return b;
  shift = b / AI_HIST_SUB - 1;
  sub = b % AI_HIST_SUB + AI_HIST_SUB;
  low = (uint64_t)sub << shift;
  width = (uint64_t)1 << shift;
  return low + (width - 1) / 2;
}

void ai_hist_record(ai_hist *h, uint64_t v) {
  h->buckets[ai_hist_bucket_of(v)]++;
  if (h->count == 0 || v < h->min) h->min = v;
  if (v > h->max) h->max = v;
  h->count++;
  h->sum += (double)v;
}

void ai_hist_merge(ai_hist *into, const ai_hist *from) {
  uint32_t i;
  if (from->count == 0) return;
  for (i = 0; i < AI_HIST_BUCKETS; i++) into->buckets[i] += from->buckets[i];
  if (into->count == 0 || from->min < into->min) into->min = from->min;
  if (from->max > into->max) into->max = from->max;
  into->count += from->count;
  into->sum += from->sum;
}

uint64_t ai_hist_quantile(const ai_hist *h, double q) {
  uint64_t rank, seen = 0, v;
  uint32_t i;
  if (h->count == 0) return 0;
  if (q <= 0) return h->min;
  if (q >= 1) return h->max;
  rank = (uint64_t)(q * (double)h->count);
  if (rank >= h->count) rank = h->count - 1;
  for (i = 0; i < AI_HIST_BUCKETS; i++) {
    seen += h->buckets[i];
    if (seen > rank) break;
  }
  v = ai_hist_bucket_value(i);
  /* the exact extremes are known: never report beyond them */
  if (v < h->min) v = h->min;
  if (v > h->max) v = h->max;
  return v;
}

/* dst = src with every value multiplied by factor (ticks -> ns) */
void ai_hist_scale(ai_hist *dst, const ai_hist *src, double factor) {
  uint32_t i;
  ai_hist_init(dst);
  for (i = 0; i < AI_HIST_BUCKETS; i++) {
    if (src->buckets[i] == 0) continue;
    dst->buckets[ai_hist_bucket_of((uint64_t)((double)ai_hist_bucket_value(i) * factor))] +=
        src->buckets[i];
  }
  dst->count = src->count;
  dst->min = (uint64_t)((double)src->min * factor);
  dst->max = (uint64_t)((double)src->max * factor);
  dst->sum = src->sum * factor;
}

void ai_hist_settle(ai_hist *h) {
  uint32_t i;
  int first = 1;
  h->sum = 0;
  h->max = 0;
  h->count = 0;
  for (i = 0; i < AI_HIST_BUCKETS; i++) {
    uint64_t v;
    if (h->buckets[i] == 0) continue;
    h->count += h->buckets[i];
    v = ai_hist_bucket_value(i);
    if (first) {
      h->min = v;
      first = 0;
    }
    h->max = v;
    h->sum += (double)v * (double)h->buckets[i];
  }
}

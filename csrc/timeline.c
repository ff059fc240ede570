/*
** timeline.c: the ring buffer of events.
**
** Fixed capacity chosen at configuration; when full, the oldest event is
** overwritten and counted as dropped. Sequence numbers never repeat, even
** across a clear, so a reader that remembers the last seq it saw can stream
** new events (recording, remote console).
*/
#include <stdlib.h>

#include "ai_internal.h"

int ai_timeline_init(ai_timeline *T, uint64_t cap, ai_strings *strings) {
  T->ev = calloc((size_t)cap, sizeof *T->ev);
  if (T->ev == NULL) return 0;
  T->cap = cap;
  T->next_seq = 1;
  T->first_min = 1;
  T->reset_seq = 1;
  T->widx = 1 % cap;
  T->lost = 0;
  T->strings = strings;
  return 1;
}

/* drop the string references an event holds (AI_EV_OWNS) */
void ai_timeline_release_event(ai_timeline *T, ai_event *e) {
  uint8_t kind = ai_event_kind(e);
  if (kind == AI_EV_POINT || kind == AI_EV_NAME) ai_strings_release(T->strings, e->loc);
  ai_strings_release(T->strings, e->detail);
  e->loc = 0;
  e->detail = 0;
  e->tk = 0;
}

static void release_all(ai_timeline *T) {
  uint64_t seq;
  for (seq = ai_timeline_first(T); seq < T->next_seq; seq++) {
    ai_event *e = &T->ev[seq % T->cap];
    if (e->tk & AI_EV_OWNS) ai_timeline_release_event(T, e);
    e->tk = 0;
  }
}

void ai_timeline_free(ai_timeline *T) {
  if (T->ev == NULL) return;
  release_all(T);
  free(T->ev);
  T->ev = NULL;
}

void ai_timeline_clear(ai_timeline *T) {
  release_all(T);
  T->lost = 0;
  T->first_min = T->reset_seq = T->next_seq;
}

uint64_t ai_timeline_first(const ai_timeline *T) {
  uint64_t first = T->next_seq > T->cap ? T->next_seq - T->cap : 1;
  return first > T->first_min ? first : T->first_min;
}

/* every seq from first_min on was written into this ring; those no longer
** held were overwritten */
uint64_t ai_timeline_dropped(const ai_timeline *T) {
  return T->lost + (ai_timeline_first(T) - T->first_min);
}

const ai_event *ai_timeline_get(const ai_timeline *T, uint64_t seq) {
  if (seq < ai_timeline_first(T) || seq >= T->next_seq) return NULL;
  return &T->ev[seq % T->cap];
}

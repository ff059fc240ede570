/* the ring buffer: order, overwrite, drop counts, string ownership, clear */
#include <string.h>

#include "ai_internal.h"
#include "unit.h"

static void test_order_and_overwrite(void) {
  ai_strings *S = ai_strings_new();
  ai_timeline T;
  uint64_t i, seq;
  CHECK(ai_timeline_init(&T, 8, S));
  CHECK(ai_timeline_first(&T) == 1 && T.next_seq == 1);
  for (i = 1; i <= 5; i++) ai_timeline_push(&T, AI_EV_RESUME, i, 0, 0, 0, (ai_tick)(i * 10));
  CHECK(ai_timeline_first(&T) == 1);
  CHECK(ai_timeline_dropped(&T) == 0);
  for (seq = 1; seq <= 5; seq++) {
    const ai_event *e = ai_timeline_get(&T, seq);
    CHECK(e != NULL && ai_event_task(e) == seq && e->t == seq * 10);
    CHECK(e != NULL && ai_event_kind(e) == AI_EV_RESUME);
  }
  CHECK(ai_timeline_get(&T, 6) == NULL);
  CHECK(ai_timeline_get(&T, 0) == NULL);
  for (i = 6; i <= 20; i++) ai_timeline_push(&T, AI_EV_YIELD, i, 0, 0, 0, (ai_tick)i);
  CHECK(ai_timeline_dropped(&T) == 12);              /* 20 events, 8 kept */
  CHECK(ai_timeline_first(&T) == 13);
  CHECK(ai_timeline_get(&T, 12) == NULL);
  for (seq = 13; seq <= 20; seq++) {
    const ai_event *e = ai_timeline_get(&T, seq);
    CHECK(e != NULL && ai_event_task(e) == seq);
  }
  ai_timeline_free(&T);
  ai_strings_free(S);
}

static void test_strings_released_on_overwrite(void) {
  ai_strings *S = ai_strings_new();
  ai_timeline T;
  int i;
  CHECK(ai_timeline_init(&T, 4, S));
  for (i = 0; i < 4; i++) {
    char label[16];
    snprintf(label, sizeof label, "label-%d", i);
    /* a point owns its label and its detail */
    ai_timeline_push(&T, AI_EV_POINT, 1, 0, ai_strings_intern(S, label, strlen(label), 0),
                     ai_strings_intern(S, "detail", 6, 0), 0);
  }
  CHECK(ai_strings_count(S) == 5);     /* 4 labels + 1 shared detail */
  for (i = 0; i < 4; i++) ai_timeline_push(&T, AI_EV_RESUME, 2, 0, 0, 0, 0);
  CHECK(ai_strings_count(S) == 0);     /* every reference went with its event */
  ai_timeline_free(&T);
  ai_strings_free(S);
}

static void test_clear_keeps_sequence(void) {
  ai_strings *S = ai_strings_new();
  ai_timeline T;
  int i;
  CHECK(ai_timeline_init(&T, 4, S));
  for (i = 0; i < 6; i++) ai_timeline_push(&T, AI_EV_NAME, 1, 0, ai_strings_intern(S, "n", 1, 0), 0, 0);
  ai_timeline_clear(&T);
  CHECK(ai_strings_count(S) == 0);
  CHECK(ai_timeline_dropped(&T) == 0);
  CHECK(ai_timeline_first(&T) == 7 && T.next_seq == 7);
  ai_timeline_push(&T, AI_EV_SPAWN, 9, 0, 0, 0, 0);
  CHECK(ai_timeline_get(&T, 7) != NULL && ai_event_task(ai_timeline_get(&T, 7)) == 9);
  CHECK(ai_timeline_dropped(&T) == 0); /* overwriting cleared slots drops nothing */
  for (i = 0; i < 3; i++) ai_timeline_push(&T, AI_EV_SPAWN, 9, 0, 0, 0, 0);
  CHECK(ai_timeline_dropped(&T) == 0);
  ai_timeline_push(&T, AI_EV_SPAWN, 9, 0, 0, 0, 0);
  CHECK(ai_timeline_dropped(&T) == 1);
  ai_timeline_free(&T);
  ai_strings_free(S);
}

static void test_event_size(void) { CHECK(sizeof(ai_event) <= 32); }

int main(void) {
  test_order_and_overwrite();
  test_strings_released_on_overwrite();
  test_clear_keeps_sequence();
  test_event_size();
  UNIT_DONE();
}

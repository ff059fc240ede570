/* task records: ids, lookup through extraspace, retention and eviction */
#include <string.h>

#include "ai_internal.h"
#include "unit.h"

/* a stand-in for a lua_State: the registry only uses the pointer and the
** LUA_EXTRASPACE bytes before it */
typedef struct fake_thread {
  char extra[LUA_EXTRASPACE];
  char body[64];
} fake_thread;

#define AS_STATE(f) ((lua_State *)(void *)((f)->body))

/* the module supplies chunks as Lua userdata; here they come from calloc */
static ai_task *chunks[64];
static int nchunks = 0;

static ai_task *add(ai_registry *R, lua_State *co, uint64_t parent) {
  if (ai_registry_needs_chunk(R)) {
    ai_task *c = calloc(AI_CHUNK, sizeof(ai_task));
    CHECK(c != NULL && ai_registry_add_chunk(R, c));
    chunks[nchunks++] = c;
  }
  return ai_registry_add(R, co, parent, 0);
}

static void free_chunks(void) {
  while (nchunks > 0) free(chunks[--nchunks]);
}

static void finish(ai_registry *R, ai_task *t) {
  t->state = AI_COMPLETED;
  ai_registry_retire(R, t);
}

static void test_lookup_and_identity(void) {
  ai_strings *S = ai_strings_new();
  ai_registry R;
  fake_thread a, b;
  ai_task *ta, *tb;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  ai_registry_init(&R, 100, S, &R);
  ta = add(&R, AS_STATE(&a), 0);
  tb = add(&R, AS_STATE(&b), ta->id);
  CHECK(ta != NULL && tb != NULL && ta->id == 1 && tb->id == 2);
  CHECK(tb->parent == 1 && ta->owner == &R);
  CHECK(ai_registry_of(&R, AS_STATE(&a)) == ta);
  CHECK(ai_registry_of(&R, AS_STATE(&b)) == tb);
  CHECK(ai_registry_by_id(&R, 2) == tb);
  CHECK(ai_registry_by_id(&R, 3) == NULL);
  /* a thread whose extraspace points to another thread's record is unknown */
  *ai_extra(AS_STATE(&b)) = ta;
  CHECK(ai_registry_of(&R, AS_STATE(&b)) == NULL);
  ai_registry_free(&R);
  free_chunks();
  ai_strings_free(S);
}

static void test_retention(void) {
  ai_strings *S = ai_strings_new();
  ai_registry R;
  static fake_thread threads[3000];
  ai_task *live;
  uint64_t counts[AI_STATE_COUNT];
  int i;
  memset(threads, 0, sizeof threads);
  ai_registry_init(&R, 10, S, &R);
  live = add(&R, AS_STATE(&threads[0]), 0);
  live->state = AI_SUSPENDED;
  for (i = 1; i < 3000; i++) {
    ai_task *t = add(&R, AS_STATE(&threads[i]), 0);
    t->name = ai_strings_intern(S, "named", 5, 0);
    finish(&R, t);
  }
  CHECK(R.total == 3000);
  CHECK(R.used == 11);            /* the live one and the 10 newest finished */
  CHECK(R.evicted == 2989);
  CHECK(R.ended[AI_COMPLETED] == 2999);
  CHECK(ai_registry_of(&R, AS_STATE(&threads[0])) == live);
  CHECK(ai_registry_by_id(&R, 2) == NULL);
  CHECK(ai_registry_by_id(&R, 3000) != NULL);
  CHECK(ai_strings_count(S) == 1); /* evicted records released their names */
  CHECK(R.cap <= 2 * AI_CHUNK);    /* slots are reused, memory stays bounded */
  CHECK(nchunks <= 2);
  ai_registry_count_live(&R, counts);
  CHECK(counts[AI_SUSPENDED] == 1 && counts[AI_COMPLETED] == 2999);
  /* lowering the limit evicts at once */
  ai_registry_set_limit(&R, 2);
  CHECK(R.used == 3);
  ai_registry_clear(&R);
  CHECK(R.used == 0 && R.total == 0 && ai_strings_count(S) == 0);
  CHECK(ai_registry_of(&R, AS_STATE(&threads[0])) == NULL);
  /* ids never repeat after a clear */
  CHECK(add(&R, AS_STATE(&threads[1]), 0)->id == 3001);
  ai_registry_free(&R);
  free_chunks();
  ai_strings_free(S);
}

static void test_record_size(void) { CHECK(sizeof(ai_task) <= 128); }

int main(void) {
  test_lookup_and_identity();
  test_retention();
  test_record_size();
  UNIT_DONE();
}

/*
** registry.c: task records.
**
** A record is found from its coroutine in O(1) through the coroutine's
** extraspace (slot + 1), checked against the identity stored in the record,
** so a stale extraspace never reaches a foreign record and no reference to
** the coroutine is kept. Finished records are kept for history up to a
** limit, oldest evicted first; live records are never evicted.
*/
#include <stdlib.h>
#include <string.h>

#include "ai_internal.h"

int ai_registry_init(ai_registry *R, uint32_t max_finished, ai_strings *strings, void *owner) {
  memset(R, 0, sizeof *R);
  R->max_finished = max_finished;
  R->next_id = 1;
  R->strings = strings;
  R->owner = owner;
  return 1;
}

void ai_registry_count_live(const ai_registry *R, uint64_t counts[AI_STATE_COUNT]) {
  uint32_t slot;
  memset(counts, 0, AI_STATE_COUNT * sizeof counts[0]);
  for (slot = 0; slot < R->top; slot++) {
    const ai_task *t = ai_registry_slot(R, slot);
    if (t->id != 0 && !ai_state_finished(t->state)) counts[t->state]++;
  }
  for (slot = AI_COMPLETED; slot < AI_STATE_COUNT; slot++) counts[slot] = R->ended[slot];
}

static void release_strings(ai_registry *R, ai_task *t) {
  if (t->name) ai_strings_release(R->strings, t->name);
  if (t->await_label) ai_strings_release(R->strings, t->await_label);
  if (t->wait) ai_strings_release(R->strings, t->wait);
  if (t->error) ai_strings_release(R->strings, t->error);
  if (t->traceback) ai_strings_release(R->strings, t->traceback);
}

/* the chunks themselves belong to whoever supplied them (ai_registry_add_chunk) */
void ai_registry_free(ai_registry *R) {
  free(R->chunks);
  free(R->finished);
  memset(R, 0, sizeof *R);
}

void ai_registry_clear(ai_registry *R) {
  uint32_t slot;
  for (slot = 0; slot < R->top; slot++) {
    ai_task *t = ai_registry_slot(R, slot);
    if (t->id != 0) release_strings(R, t);
    memset(t, 0, sizeof *t);
    t->owner = R->owner; /* stale extraspace pointers still reach the inspector */
  }
  R->used = R->top = R->free_head = 0;
  R->fin_head = R->fin_count = 0;
  R->evicted = R->total = 0;
  memset(R->ended, 0, sizeof R->ended);
  /* ids keep increasing so an old id never names a new task */
}

int ai_registry_needs_chunk(const ai_registry *R) {
  return R->free_head == 0 && R->top == R->cap;
}

/* the finished ring, doubled until it holds `need` entries (a power of two,
** so positions wrap with a mask; doubling, so its reallocations, which
** are large, stay few), unrolled oldest first */
static int grow_finished(ai_registry *R, uint32_t need) {
  uint32_t ncap = R->fin_cap ? R->fin_cap : AI_CHUNK, i, *nf;
  while (ncap < need) ncap *= 2;
  nf = malloc((size_t)ncap * sizeof *nf);
  if (nf == NULL) return 0;
  for (i = 0; i < R->fin_count; i++) nf[i] = R->finished[(R->fin_head + i) & (R->fin_cap - 1)];
  free(R->finished);
  R->finished = nf;
  R->fin_head = 0;
  R->fin_cap = ncap;
  return 1;
}

/* room for AI_CHUNK more records in `chunk` (AI_CHUNK records, not
** necessarily zeroed: a slot is initialised when taken, and nothing reads a
** slot at or above top; kept alive by the caller for as long as any thread
** may point into it) */
int ai_registry_add_chunk(ai_registry *R, ai_task *chunk) {
  ai_task **nc = realloc(R->chunks, (R->nchunks + 1) * sizeof *nc);
  uint32_t ncap = R->cap + AI_CHUNK;
  if (nc == NULL) return 0;
  R->chunks = nc;
  nc[R->nchunks] = chunk;
  if (ncap > R->fin_cap && !grow_finished(R, ncap)) return 0;
  R->nchunks++;
  R->cap = ncap;
  return 1;
}

static uint32_t take_slot(ai_registry *R) {
  if (R->free_head != 0) {
    uint32_t slot = R->free_head - 1;
    R->free_head = ai_registry_slot(R, slot)->next_free;
    return slot;
  }
  if (R->top == R->cap) return UINT32_MAX; /* ai_registry_add_chunk first */
  return R->top++;
}

ai_task *ai_registry_add(ai_registry *R, lua_State *co, uint64_t parent, ai_tick now) {
  uint32_t slot = take_slot(R);
  ai_task *t;
  if (slot == UINT32_MAX) return NULL;
  t = ai_registry_slot(R, slot);
  memset(t, 0, sizeof *t);
  t->co = co;
  t->slot = slot;
  t->id = R->next_id++;
  t->parent = parent;
  t->owner = R->owner;
  t->created = t->last_change = now;
  t->state = AI_PENDING;
  R->used++;
  R->total++;
  if (co != NULL) *ai_extra(co) = t;
  return t;
}

static void evict_oldest(ai_registry *R) {
  uint32_t slot = R->finished[R->fin_head];
  ai_task *t = ai_registry_slot(R, slot);
  R->fin_head = (R->fin_head + 1) & (R->fin_cap - 1);
  R->fin_count--;
  release_strings(R, t);
  /* a free slot: id 0 (what every reader tests) and no thread, the rest is
  ** cleared when the slot is taken again (ai_registry_add) */
  t->id = 0;
  t->co = NULL;
  t->next_free = R->free_head;
  R->free_head = slot + 1;
  R->used--;
  R->evicted++;
}

void ai_registry_retire(ai_registry *R, ai_task *t) {
  uint32_t slot = t->slot;
  R->ended[t->state]++;
  /* the ring has room: it holds at most one entry per slot */
  R->finished[(R->fin_head + R->fin_count) & (R->fin_cap - 1)] = slot;
  R->fin_count++;
  while (R->fin_count > R->max_finished) evict_oldest(R);
}

void ai_registry_set_limit(ai_registry *R, uint32_t max_finished) {
  R->max_finished = max_finished;
  while (R->fin_count > R->max_finished) evict_oldest(R);
}

ai_task *ai_registry_at(const ai_registry *R, uint32_t slot) {
  ai_task *t;
  if (slot >= R->top) return NULL;
  t = ai_registry_slot(R, slot);
  return t->id != 0 ? t : NULL;
}

ai_task *ai_registry_by_id(const ai_registry *R, uint64_t id) {
  uint32_t slot;
  /* linear: used by queries and by the rare id lookups, never per resume */
  for (slot = 0; slot < R->top; slot++) {
    ai_task *t = ai_registry_slot(R, slot);
    if (t->id == id) return t;
  }
  return NULL;
}

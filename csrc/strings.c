/*
** strings.c: interned texts, identified by small integers.
**
** Events and task records hold 32-bit ids instead of Lua strings so the hot
** path never allocates. Locations are permanent (their number is bounded by
** the program's code); names, labels and error texts are reference counted
** and freed when the last record or event that uses them goes away.
*/
#include <stdlib.h>
#include <string.h>

#include "ai_internal.h"

typedef struct entry {
  char *text;       /* NUL-terminated copy; NULL for a free entry */
  size_t len;
  uint32_t hash;
  uint32_t refs;    /* ignored when permanent */
  uint32_t next_free;
  int permanent;
} entry;

struct ai_strings {
  entry *e;          /* e[id - 1] */
  uint32_t n, cap;   /* entries used (including free ones), allocated */
  uint32_t free_head;
  uint32_t live;
  uint32_t occupied; /* index slots not 0: live ids and tombstones */
  uint32_t *index;   /* open addressing: id or 0 */
  uint32_t index_cap; /* power of two */
};

static uint32_t hash_text(const char *s, size_t len) {
  uint32_t h = 2166136261u; /* FNV-1a */
  size_t i;
  for (i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h;
}

ai_strings *ai_strings_new(void) {
  ai_strings *S = calloc(1, sizeof *S);
  if (S == NULL) return NULL;
  S->index_cap = 256;
  S->index = calloc(S->index_cap, sizeof *S->index);
  if (S->index == NULL) { free(S); return NULL; }
  return S;
}

void ai_strings_free(ai_strings *S) {
  uint32_t i;
  if (S == NULL) return;
  for (i = 0; i < S->n; i++) free(S->e[i].text);
  free(S->e);
  free(S->index);
  free(S);
}

static uint32_t *find_slot(const ai_strings *S, const char *s, size_t len, uint32_t h) {
  uint32_t mask = S->index_cap - 1, i = h & mask;
  for (;;) {
    uint32_t id = S->index[i];
    if (id == 0) return &S->index[i];
    if (id != UINT32_MAX) {
      const entry *x = &S->e[id - 1];
      if (x->hash == h && x->len == len && memcmp(x->text, s, len) == 0)
        return &S->index[i];
    }
    i = (i + 1) & mask;
  }
}

/* rebuild the index without tombstones, doubling it when it is crowded */
static int rebuild_index(ai_strings *S) {
  uint32_t ncap = S->live * 2 >= S->index_cap ? S->index_cap * 2 : S->index_cap, i;
  uint32_t *nidx = calloc(ncap, sizeof *nidx);
  if (nidx == NULL) return 0;
  for (i = 0; i < S->n; i++) {
    entry *x = &S->e[i];
    uint32_t j;
    if (x->text == NULL) continue;
    for (j = x->hash & (ncap - 1); nidx[j] != 0; j = (j + 1) & (ncap - 1)) {}
    nidx[j] = i + 1;
  }
  free(S->index);
  S->index = nidx;
  S->index_cap = ncap;
  S->occupied = S->live;
  return 1;
}

static uint32_t new_entry(ai_strings *S) {
  if (S->free_head != 0) {
    uint32_t id = S->free_head;
    S->free_head = S->e[id - 1].next_free;
    return id;
  }
  if (S->n == S->cap) {
    uint32_t ncap = S->cap ? S->cap * 2 : 64;
    entry *ne = realloc(S->e, ncap * sizeof *ne);
    if (ne == NULL) return 0;
    S->e = ne;
    S->cap = ncap;
  }
  S->e[S->n].text = NULL;
  return ++S->n;
}

ai_str ai_strings_intern(ai_strings *S, const char *s, size_t len, int permanent) {
  uint32_t h = hash_text(s, len), *slot, id;
  entry *x;
  if ((S->occupied + 1) * 4 >= S->index_cap * 3 && !rebuild_index(S)) return 0;
  slot = find_slot(S, s, len, h);
  if (*slot != 0) {
    x = &S->e[*slot - 1];
    if (permanent) x->permanent = 1;
    else x->refs++;
    return *slot;
  }
  id = new_entry(S);
  if (id == 0) return 0;
  x = &S->e[id - 1];
  x->text = malloc(len + 1);
  if (x->text == NULL) {
    x->next_free = S->free_head;
    S->free_head = id;
    return 0;
  }
  memcpy(x->text, s, len);
  x->text[len] = '\0';
  x->len = len;
  x->hash = h;
  x->refs = permanent ? 0 : 1;
  x->permanent = permanent;
  if (*slot == 0) S->occupied++;
  *slot = id;
  S->live++;
  return id;
}

void ai_strings_ref(ai_strings *S, ai_str id) {
  if (id != 0 && id <= S->n && S->e[id - 1].text != NULL) S->e[id - 1].refs++;
}

/* removes the index entry with a tombstone so probe chains stay intact */
static void unindex(ai_strings *S, uint32_t id) {
  entry *x = &S->e[id - 1];
  uint32_t mask = S->index_cap - 1, i = x->hash & mask;
  while (S->index[i] != id) i = (i + 1) & mask;
  S->index[i] = UINT32_MAX;
}

void ai_strings_release(ai_strings *S, ai_str id) {
  entry *x;
  if (id == 0 || id > S->n) return;
  x = &S->e[id - 1];
  if (x->text == NULL || x->permanent || x->refs == 0) return;
  if (--x->refs > 0) return;
  unindex(S, id);
  free(x->text);
  x->text = NULL;
  x->next_free = S->free_head;
  S->free_head = id;
  S->live--;
}

const char *ai_strings_get(const ai_strings *S, ai_str id, size_t *len) {
  const entry *x;
  if (id == 0 || id > S->n) return NULL;
  x = &S->e[id - 1];
  if (x->text == NULL) return NULL;
  if (len) *len = x->len;
  return x->text;
}

size_t ai_strings_count(const ai_strings *S) { return S->live; }

/*
** ai_internal.h: types shared by the C files of the async_inspect core.
** Not installed; the one public header is async_inspect.h.
**
** Data flows one way: hooks.c records into registry.c (task records) and
** timeline.c (events); module.c turns both into Lua tables on request.
*/
#ifndef AI_INTERNAL_H
#define AI_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "lua.h"

/* ---- clock.c: monotonic ticks, converted to nanoseconds on read-out ---- */
typedef uint64_t ai_tick;

void ai_clock_init(void);
ai_tick ai_clock_now(void);
/* nanoseconds elapsed between two ticks (b >= a) */
uint64_t ai_clock_ns(ai_tick a, ai_tick b);
/* true when ticks come from the CPU counter, false for clock_gettime */
int ai_clock_uses_tsc(void);
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
extern int ai_clock_tsc_ok;
/* inline so the hot path pays one instruction for the time stamp */
static inline ai_tick ai_now(void) {
  return ai_clock_tsc_ok ? (ai_tick)__rdtsc() : ai_clock_now();
}
#else
static inline ai_tick ai_now(void) { return ai_clock_now(); }
#endif

/* ---- strings.c: interned texts (locations, names, labels, errors) ---- */
typedef uint32_t ai_str; /* 0 = no string */

typedef struct ai_strings ai_strings;
ai_strings *ai_strings_new(void);
void ai_strings_free(ai_strings *S);
/* intern text; permanent strings are never freed (locations), the others
** are reference counted (names, labels, errors) */
ai_str ai_strings_intern(ai_strings *S, const char *s, size_t len, int permanent);
void ai_strings_ref(ai_strings *S, ai_str id);
void ai_strings_release(ai_strings *S, ai_str id);
const char *ai_strings_get(const ai_strings *S, ai_str id, size_t *len);
size_t ai_strings_count(const ai_strings *S);

/* ---- timeline.c: ring buffer of fixed-size events ---- */
enum ai_event_kind {
  AI_EV_SPAWN = 1, AI_EV_RESUME, AI_EV_YIELD, AI_EV_COMPLETE, AI_EV_FAIL,
  AI_EV_CANCEL, AI_EV_DROP, AI_EV_POINT, AI_EV_NAME, AI_EV_KIND_COUNT
};

/* 32 bytes: the kind sits in the low byte of `tk` (task ids stay < 2^56) */
typedef struct ai_event {
  ai_tick t;        /* when */
  uint64_t tk;      /* task id << 8 | kind */
  uint64_t other;   /* spawn: parent; resume: resumer task (0: main thread) */
  ai_str loc;       /* spawn/yield: location; point: label; name: the name */
  ai_str detail;    /* resume: wake kind; yield: await label; point: detail;
                       fail: error text. Reference counted, 0 = none */
} ai_event;

#define ai_event_kind(e) ((uint8_t)((e)->tk & 0xff))
#define ai_event_task(e) ((e)->tk >> 8)

typedef struct ai_timeline {
  ai_event *ev;
  uint64_t cap;       /* capacity, > 0 */
  uint64_t next_seq;  /* seq of the next event; seqs start at 1 */
  uint64_t first_min; /* no seq below this is readable (after a clear) */
  uint64_t dropped;   /* overwritten events */
  ai_strings *strings;
} ai_timeline;

int ai_timeline_init(ai_timeline *T, uint64_t cap, ai_strings *strings);
void ai_timeline_free(ai_timeline *T);
void ai_timeline_clear(ai_timeline *T);
/* first seq still held (== next_seq when empty) */
uint64_t ai_timeline_first(const ai_timeline *T);
const ai_event *ai_timeline_get(const ai_timeline *T, uint64_t seq);
void ai_timeline_release_event(ai_timeline *T, ai_event *e);

/* record one event; the hot path: no allocation, no formatting.
** Takes over one reference of `detail` (and of `loc` for points and names). */
static inline void ai_timeline_push(ai_timeline *T, uint8_t kind, uint64_t task,
                                    uint64_t other, ai_str loc, ai_str detail,
                                    ai_tick t) {
  ai_event *e = &T->ev[T->next_seq % T->cap];
  if (e->tk != 0) { /* overwriting the oldest event */
    T->dropped++;
    if (e->detail != 0 || ai_event_kind(e) == AI_EV_POINT || ai_event_kind(e) == AI_EV_NAME)
      ai_timeline_release_event(T, e);
  }
  e->t = t; e->tk = task << 8 | kind; e->other = other;
  e->loc = loc; e->detail = detail;
  T->next_seq++;
}

/* ---- registry.c: task records ---- */
enum ai_state {
  AI_PENDING = 0, AI_RUNNING, AI_SUSPENDED, AI_NORMAL,
  AI_COMPLETED, AI_FAILED, AI_CANCELLED, AI_DROPPED, AI_STATE_COUNT
};
#define ai_state_finished(s) ((s) >= AI_COMPLETED)

enum ai_task_flags {
  AI_TF_ANCHORED = 1, /* has a collection sentinel (first yield seen) */
  AI_TF_BLOCK = 2,    /* ai.task() guard, no coroutine */
  AI_TF_HAS_EXTRA = 4 /* has error/traceback text in the Lua side table */
};

typedef struct ai_task {
  lua_State *co;          /* identity only, never dereferenced once dead */
  uint64_t id;
  uint64_t parent;
  ai_tick created, first_resume, last_change, ended, resume_start;
  uint64_t busy;          /* ticks spent inside resume */
  uint32_t resumes;
  ai_str name;            /* 0: default name = created_fn */
  ai_str created_at;      /* where coroutine.create was called */
  ai_str created_fn;      /* source:line of the coroutine's function */
  ai_str where;           /* yield location while suspended */
  ai_str await_label;     /* label of the pending/current await */
  ai_str wait;            /* what it waits for, when known */
  ai_str error;           /* error text of a failed task */
  ai_str traceback;       /* traceback of a failed coroutine */
  uint8_t state;
  uint8_t flags;
  uint16_t pad;
  uint32_t slot;          /* own index in the registry */
  uint32_t next_free;     /* free list link (slot index + 1) while free */
} ai_task;

/* records live in fixed chunks so a pointer to one stays valid while the
** registry grows (a resume may create tasks before it returns) */
#define AI_CHUNK_BITS 10
#define AI_CHUNK (1u << AI_CHUNK_BITS)

typedef struct ai_registry {
  ai_task **chunks;
  uint32_t nchunks;
  uint32_t cap;          /* slots available: nchunks * AI_CHUNK */
  uint32_t used;         /* slots in use */
  uint32_t free_head;    /* first free slot + 1, 0 = none */
  uint32_t top;          /* slots ever handed out (the rest are fresh) */
  uint32_t *finished;    /* ring of finished slot indices, oldest first */
  uint32_t fin_head, fin_count; /* ring has `cap` entries */
  uint32_t max_finished; /* retention limit for finished records */
  uint64_t next_id;
  uint64_t evicted;
  uint64_t counts[AI_STATE_COUNT];
  uint64_t total;        /* tasks tracked since start/reset */
  ai_strings *strings;
} ai_registry;

typedef void (*ai_evict_fn)(void *ud, const ai_task *t);

int ai_registry_init(ai_registry *R, uint32_t max_finished, ai_strings *strings);
void ai_registry_free(ai_registry *R);
void ai_registry_clear(ai_registry *R);
/* a new record in state pending, id assigned; NULL when out of memory */
ai_task *ai_registry_add(ai_registry *R, lua_State *co, uint64_t parent, ai_tick now);
/* after a task reached a finished state: keep it within the retention limit,
** evicting the oldest finished records; `on_evict` sees each before it goes */
void ai_registry_retire(ai_registry *R, ai_task *t, ai_evict_fn on_evict, void *ud);
void ai_registry_set_limit(ai_registry *R, uint32_t max_finished, ai_evict_fn on_evict,
                           void *ud);
ai_task *ai_registry_by_id(const ai_registry *R, uint64_t id);
/* iterate: slot index from 0 to R->top, NULL for free slots */
ai_task *ai_registry_at(const ai_registry *R, uint32_t slot);

static inline ai_task *ai_registry_slot(const ai_registry *R, uint32_t slot) {
  return &R->chunks[slot >> AI_CHUNK_BITS][slot & (AI_CHUNK - 1)];
}

static inline void ai_registry_set_state(ai_registry *R, ai_task *t, uint8_t state) {
  R->counts[t->state]--;
  R->counts[state]++;
  t->state = state;
}

/* extraspace of a coroutine holds slot+1 of its record, 0 = unknown,
** AI_SLOT_IGNORED = deliberately not tracked (sampled out) */
#define AI_SLOT_IGNORED ((uintptr_t)-1)

static inline uintptr_t *ai_extra(lua_State *co) {
  return (uintptr_t *)lua_getextraspace(co);
}

/* the record of a coroutine, or NULL; O(1), verified against identity */
static inline ai_task *ai_registry_of(const ai_registry *R, lua_State *co) {
  uintptr_t v = *ai_extra(co) - 1;
  if (v < (uintptr_t)R->top) {
    ai_task *t = ai_registry_slot(R, (uint32_t)v);
    if (t->co == co && t->id != 0) return t;
  }
  return NULL;
}

/* ---- hist.c: log-linear histograms (fixed memory, mergeable) ---- */
#define AI_HIST_SUB_BITS 6                 /* 64 sub-buckets: < 1.6% error */
#define AI_HIST_SUB (1u << AI_HIST_SUB_BITS)
#define AI_HIST_BUCKETS ((64 - AI_HIST_SUB_BITS + 1) * AI_HIST_SUB)

typedef struct ai_hist {
  uint64_t count, min, max;
  double sum;
  uint32_t buckets[AI_HIST_BUCKETS];
} ai_hist;

void ai_hist_init(ai_hist *h);
void ai_hist_record(ai_hist *h, uint64_t v);
void ai_hist_merge(ai_hist *into, const ai_hist *from);
/* value at quantile q in [0, 1]; 0 when empty */
uint64_t ai_hist_quantile(const ai_hist *h, double q);
uint32_t ai_hist_bucket_of(uint64_t v);
uint64_t ai_hist_bucket_value(uint32_t b);
void ai_hist_scale(ai_hist *dst, const ai_hist *src, double factor);

/* ---- sites: code position -> location cache (hooks.c) ---- */
#define AI_SITE_CACHE 1024 /* power of two */

typedef struct ai_site {
  const void *key;  /* saved pc of a frame, or a function prototype */
  uint32_t epoch;   /* GC epoch when cached; stale after a collection */
  ai_str loc;       /* "source:line" */
} ai_site;

/* an ai.task() block: the current task of `thread` until it is closed */
typedef struct ai_block {
  lua_State *thread;
  uint64_t id;
} ai_block;
#define AI_MAX_BLOCKS 256

/* collection sentinel of a suspended coroutine (hooks.c) */
struct ai_sentinel {
  uint64_t id;
  uint32_t slot;
};

/* ---- the inspector: one per Lua state ---- */
typedef struct ai_inspector {
  int enabled;           /* recording on */
  int locations;         /* record yield locations */
  int tracebacks;        /* capture the traceback of failed coroutines */
  int closed;            /* set by __gc; sentinels check it */
  int ci_layout_ok;      /* CallInfo savedpc layout verified at load */
  int cl_layout_ok;      /* LClosure proto layout verified at load */
  uint32_t sample_threshold; /* track a new task when rand < threshold; max = all */
  uint64_t rng;
  uint32_t epoch;        /* bumped after each GC cycle */
  uint64_t pending_task; /* task whose next yield gets pending_label/loc */
  ai_str pending_label;  /* reference held */
  ai_str pending_loc;    /* location chosen by a helper for the next yield */
  ai_str pending_wake;   /* wake kind for the next resume (reference held) */
  ai_tick start;         /* epoch of the clock (install or reset) */
  uint64_t long_poll_ticks; /* resumes longer than this are counted */
  uint64_t long_polls;
  ai_strings *strings;
  ai_registry reg;
  ai_timeline tl;
  ai_hist resume_hist;   /* all resume durations, ticks */
  ai_str *locfn;         /* location id -> function name id */
  uint32_t locfn_cap;
  uint32_t block_top;
  ai_block blocks[AI_MAX_BLOCKS];
  ai_site sites[AI_SITE_CACHE];  /* yield and creation sites by saved pc */
  ai_site protos[AI_SITE_CACHE]; /* function definitions by prototype */
} ai_inspector;

/* ---- hooks.c ---- */
#define AI_NHOOKS 4
extern const char *const ai_hook_names[AI_NHOOKS];
void ai_push_hooks(lua_State *L);
int ai_sentinel_gc(lua_State *L);
int ai_closethread(lua_State *co, lua_State *from);
int ai_resume(ai_inspector *I, lua_State *L, lua_State *co, int co_idx, int narg);
int ai_resume_raw(ai_inspector *I, lua_State *L, lua_State *co, int narg, int *nres);
ai_task *ai_adopt(ai_inspector *I, lua_State *L, lua_State *co);
uint64_t ai_current_task(ai_inspector *I, lua_State *L);
ai_task *ai_track(ai_inspector *I, lua_State *L, lua_State *co, int fn_idx, int site_level);
void ai_finish(ai_inspector *I, ai_task *t, uint8_t state, ai_str detail, ai_tick now);
ai_str ai_site_location(ai_inspector *I, lua_State *L, int level);
ai_str ai_error_text(ai_inspector *I, lua_State *L, int idx);
ai_str ai_locfn_get(const ai_inspector *I, ai_str loc);
int ai_hooks_check_layout(ai_inspector *I, lua_State *L);

#endif

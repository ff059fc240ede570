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

/* branch hints: luaconf.h has them from 5.4.3 on */
#if !defined(l_unlikely)
#if defined(__GNUC__)
#define l_unlikely(x) __builtin_expect(((x) != 0), 0)
#define l_likely(x) __builtin_expect(((x) != 0), 1)
#else
#define l_unlikely(x) (x)
#define l_likely(x) (x)
#endif
#endif

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
/* the trusted hook family exists only with a usable TSC (module.c), so
** there the test of ai_clock_tsc_ok is known to pass and is left out */
static inline __attribute__((always_inline)) ai_tick ai_now_in(int trusted) {
  return trusted ? (ai_tick)__rdtsc() : ai_now();
}
#define AI_CLOCK_TRUSTED_OK() (ai_clock_tsc_ok)
#else
static inline ai_tick ai_now(void) { return ai_clock_now(); }
static inline ai_tick ai_now_in(int trusted) { (void)trusted; return ai_clock_now(); }
#define AI_CLOCK_TRUSTED_OK() 1
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

#define ai_event_kind(e) ((uint8_t)((e)->tk & 0x7f))
#define ai_event_task(e) ((e)->tk >> 8)

typedef struct ai_timeline {
  ai_event *ev;
  uint64_t cap;       /* capacity, > 0 */
  uint64_t next_seq;  /* seq of the next event; seqs start at 1 */
  uint64_t first_min; /* no seq below this is readable (after a clear) */
  uint64_t reset_seq; /* first seq since the last clear: events_total counts from it */
  uint64_t widx;      /* slot of the next event: next_seq % cap, kept apart */
  uint64_t lost;      /* events dropped before first_min (a resize) */
  ai_strings *strings;
} ai_timeline;

int ai_timeline_init(ai_timeline *T, uint64_t cap, ai_strings *strings);
void ai_timeline_free(ai_timeline *T);
void ai_timeline_clear(ai_timeline *T);
/* first seq still held (== next_seq when empty) */
uint64_t ai_timeline_first(const ai_timeline *T);
/* events overwritten (or lost to a resize) since the last clear: counted
** from the seqs, so the hot path does not count them */
uint64_t ai_timeline_dropped(const ai_timeline *T);
const ai_event *ai_timeline_get(const ai_timeline *T, uint64_t seq);
void ai_timeline_release_event(ai_timeline *T, ai_event *e);

/* the kind byte's top bit: this event holds string references, released
** when it is overwritten (one test on the hot path instead of three) */
#define AI_EV_OWNS 0x80u

/* record one event; the hot path: no allocation, no formatting.
** Takes over one reference of `detail` (and of `loc` for points and names). */
static inline void ai_timeline_push(ai_timeline *T, uint8_t kind, uint64_t task,
                                    uint64_t other, ai_str loc, ai_str detail,
                                    ai_tick t) {
  ai_event *e = &T->ev[T->widx];
  uint64_t owns = (detail != 0 || kind == AI_EV_POINT || kind == AI_EV_NAME) ? AI_EV_OWNS : 0;
  if (++T->widx == T->cap) T->widx = 0;
  if (l_unlikely(e->tk & AI_EV_OWNS)) ai_timeline_release_event(T, e); /* the oldest */
  e->t = t; e->tk = task << 8 | kind | owns; e->other = other;
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
  AI_TF_WATCHED = 4   /* never resumed: in the watch table (hooks.c), its
                         resume_start holds its watch slot */
};

typedef struct ai_task {
  lua_State *co;          /* identity only, never dereferenced once dead */
  uint64_t id;
  uint64_t parent;
  ai_tick created, first_resume, resume_start;
  ai_tick last_change;    /* last state change; for a finished task its end */
  uint64_t busy;          /* ticks spent inside resume */
  union {                 /* anonymous: t->resumes, t->next_free */
    uint64_t resumes;     /* in use: resumes so far (a long-lived task passes 2^32) */
    uint32_t next_free;   /* free: free list link (slot index + 1) */
  };
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
  void *owner;            /* the inspector: hooks find it from any thread */
} ai_task;

/* records live in fixed chunks so a pointer to one stays valid while the
** registry grows (a resume may create tasks before it returns) */
#define AI_CHUNK_BITS 10
#define AI_CHUNK (1u << AI_CHUNK_BITS)
#define AI_CHUNKS_KEY "async_inspect.chunks" /* registry table of chunks */
#define AI_ANCHORS_KEY "async_inspect.anchors" /* registry: the anchor table */
#define AI_INSPECTOR_KEY "async_inspect.inspector"
#define AI_SENTINEL_MT "async_inspect.sentinel"
#define AI_WATCH_KEY "async_inspect.watch" /* registry: the watch table */

typedef struct ai_registry {
  ai_task **chunks;
  uint32_t nchunks;
  uint32_t cap;          /* slots available: nchunks * AI_CHUNK */
  uint32_t used;         /* slots in use */
  uint32_t free_head;    /* first free slot + 1, 0 = none */
  uint32_t top;          /* slots ever handed out (the rest are fresh) */
  uint32_t *finished;    /* ring of finished slot indices, oldest first */
  uint32_t fin_head, fin_count;
  uint32_t fin_cap;      /* the ring's size: a power of two >= cap */
  uint32_t max_finished; /* retention limit for finished records */
  uint64_t next_id;
  uint64_t evicted;
  uint64_t ended[AI_STATE_COUNT]; /* tasks that reached each final state */
  uint64_t total;        /* tasks tracked since start/reset */
  ai_strings *strings;
  void *owner;           /* copied into every record */
  const void *foreign;   /* extraspace value threads older than the module
                            may hold (Lua leaves it uninitialised): never
                            dereferenced; NULL when there was none */
} ai_registry;

int ai_registry_init(ai_registry *R, uint32_t max_finished, ai_strings *strings, void *owner);
/* live records per state (pending, running, suspended, normal): a scan,
** so the hot path keeps no counters */
void ai_registry_count_live(const ai_registry *R, uint64_t counts[AI_STATE_COUNT]);
void ai_registry_free(ai_registry *R);
void ai_registry_clear(ai_registry *R);
/* records live in chunks supplied by the owner (Lua userdata in the module,
** so they outlive every finaliser that could still reach them) */
int ai_registry_needs_chunk(const ai_registry *R);
int ai_registry_add_chunk(ai_registry *R, ai_task *chunk);
/* a new record in state pending, id assigned; NULL when there is no room
** (see ai_registry_needs_chunk) */
ai_task *ai_registry_add(ai_registry *R, lua_State *co, uint64_t parent, ai_tick now);
/* after a task reached a finished state (set with a plain store, as every
** state change): count it in R->ended and keep the finished records within
** the retention limit, evicting the oldest */
void ai_registry_retire(ai_registry *R, ai_task *t);
void ai_registry_set_limit(ai_registry *R, uint32_t max_finished);
ai_task *ai_registry_by_id(const ai_registry *R, uint64_t id);
/* iterate: slot index from 0 to R->top, NULL for free slots */
ai_task *ai_registry_at(const ai_registry *R, uint32_t slot);

static inline ai_task *ai_registry_slot(const ai_registry *R, uint32_t slot) {
  return &R->chunks[slot >> AI_CHUNK_BITS][slot & (AI_CHUNK - 1)];
}

/* A coroutine's extraspace (LUA_EXTRASPACE, pointer-sized, copied from the
** main thread into every new thread) holds a pointer to its record. The
** main thread's points to the inspector's pseudo-record, so every thread
** leads to the inspector in two loads; a sampled-out coroutine points to
** another pseudo-record. A record is trusted only if it names the thread. */
static inline ai_task **ai_extra(lua_State *co) {
  return (ai_task **)lua_getextraspace(co);
}

/* the record a thread's extraspace points to, or NULL for none or for the
** foreign value of threads older than the module */
static inline ai_task *ai_extra_record(const ai_registry *R, lua_State *co) {
  ai_task *t = *ai_extra(co);
  return ((const void *)t == R->foreign) ? NULL : t;
}

/* the record of a coroutine, or NULL; O(1), verified against identity */
static inline ai_task *ai_registry_of(const ai_registry *R, lua_State *co) {
  ai_task *t = ai_extra_record(R, co);
  return (t != NULL && t->co == co && t->id != 0) ? t : NULL;
}

/* ---- hist.c: log-linear histograms (fixed memory, mergeable) ---- */
#define AI_HIST_SUB_BITS 6                 /* 64 sub-buckets: < 1.6% error */
#define AI_HIST_SUB (1u << AI_HIST_SUB_BITS)
#define AI_HIST_BUCKETS ((64 - AI_HIST_SUB_BITS + 1) * AI_HIST_SUB)

typedef struct ai_hist {
  uint64_t count, min, max;
  double sum;
  /* 64-bit: a busy program passes 2^32 resumes of one duration in minutes */
  uint64_t buckets[AI_HIST_BUCKETS];
} ai_hist;

void ai_hist_init(ai_hist *h);
void ai_hist_record(ai_hist *h, uint64_t v);

/* the bucket of a value: below 64 one each, above 64 per power of two */
static inline uint32_t ai_hist_bucket_of(uint64_t v) {
  /* without a branch: or-ing SUB makes shift 0 below SUB, where v is its
  ** own bucket; above, (shift + 1) * SUB + (v >> shift) - SUB, as v >> shift
  ** has its top bit at SUB */
  int shift = 63 - __builtin_clzll(v | AI_HIST_SUB) - AI_HIST_SUB_BITS;
  return (uint32_t)(shift * AI_HIST_SUB) + (uint32_t)(v >> shift);
}

/* the hot path's version of ai_hist_record */
static inline void ai_hist_add(ai_hist *h, uint64_t v) {
  uint32_t b = ai_hist_bucket_of(v);
  /* no count, min, max or sum here: read-out derives them from the
  ** buckets (ai_hist_settle), within the buckets' 1.6% */
  h->buckets[b]++;
}
void ai_hist_merge(ai_hist *into, const ai_hist *from);
/* value at quantile q in [0, 1]; 0 when empty */
uint64_t ai_hist_quantile(const ai_hist *h, double q);
uint64_t ai_hist_bucket_value(uint32_t b);
void ai_hist_scale(ai_hist *dst, const ai_hist *src, double factor);
/* fill count, min, max and sum of a histogram fed by ai_hist_add */
void ai_hist_settle(ai_hist *h);

/* ---- long polls: the last few resumes longer than long_poll_ticks ---- */
/* kept in C so they survive an overflowing timeline; written only on the
** rare long-poll branch of a resume (hooks.c), read by core.long_polls() */
#define AI_LONG_POLL_LOG 64

typedef struct ai_long_poll {
  uint64_t task;
  ai_tick start;    /* when the resume began */
  uint64_t ran;     /* ticks inside that resume */
  ai_str name;      /* task name then (one reference held) */
  ai_str loc;       /* where it yielded or raised; 0 when it returned */
  uint8_t end;      /* AI_EV_YIELD, AI_EV_COMPLETE or AI_EV_FAIL */
} ai_long_poll;

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
  int value_layout_ok;   /* stack values read in place (tag, object), verified at load */
  unsigned char lcl_tag; /* the tag byte of a Lua closure, learnt at load */
  unsigned char thread_tag; /* the tag byte of a thread, learnt at load */
  int state_layout_ok;   /* lua_State status/ci layout verified at load */
  int fast_sites;        /* every private layout holds (value_layout_ok implies the
                            CallInfo and closure ones): sites read inline */
  int trusted;           /* the trusted hook family is installed (luaopen): every
                            fast path's condition holds */
  char co_typename[16];  /* "coroutine" or "thread", as this Lua says it */
  uint32_t sample_threshold; /* track a new task when rand < threshold; max = all */
  uint64_t rng;
  uint32_t epoch;        /* bumped after each GC cycle */
  uint32_t watched;      /* records flagged AI_TF_WATCHED */
  uint32_t watch_new;    /* watches taken since the last sweep */
  uint32_t swept_epoch;  /* epoch of the last sweep */
  uint32_t *watch;       /* watch slot -> record slot, or next free | top bit */
  uint32_t watch_top, watch_cap, watch_free;
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
  ai_task main_rec;      /* pseudo-record of the main thread (id 0) */
  ai_task ignored_rec;   /* pseudo-record of sampled-out coroutines (id 0) */
  ai_str *locfn;         /* location id -> function name id */
  uint32_t locfn_cap;
  uint32_t block_top;
  ai_block blocks[AI_MAX_BLOCKS];
  ai_site sites[AI_SITE_CACHE];  /* yield and creation sites by saved pc */
  ai_site protos[AI_SITE_CACHE]; /* function definitions by prototype */
  /* creation traces (hooks.c, creation_traces setting; off by default) */
  int creation_traces;
  struct ai_ctrace *ctraces; /* indexed by registry slot, grown on demand */
  uint32_t ctraces_cap;
  struct ai_wg *wg;      /* waitgraph.c: created on first use by the bindings */
  /* the last long polls (profiling): written only on the long-poll branch, kept
  ** at the end so the fields every resume touches stay together */
  ai_long_poll long_poll_log[AI_LONG_POLL_LOG]; /* ring: entry long_polls-1 is the newest */
} ai_inspector;

/* ---- hooks.c ---- */
#define AI_NHOOKS 4
extern const char *const ai_hook_names[AI_NHOOKS];
/* trusted: threads older than the module hold no foreign extraspace value,
** so the hooks may find the inspector through any thread's extraspace */
void ai_push_hooks(lua_State *L, int trusted);
int ai_sentinel_gc(lua_State *L);
int ai_closethread(lua_State *co, lua_State *from);
int ai_resume_values(ai_inspector *I, lua_State *L, lua_State *co, int narg);

/* coroutine.resume's results from a count r of values that follow the
** true the resume pushed before them, or r < 0: false and the error on
** L's top */
static inline int ai_resume_results(lua_State *L, int r) {
  if (r < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  return r + 1;
}
int ai_resume_raw(ai_inspector *I, lua_State *L, lua_State *co, int narg, int *nres);
/* track a coroutine created without the hooks; site_level: the level of
** L where it was created (0: unknown); fn_idx: the function in L whose
** definition is its default name (0: its own body's) */
ai_task *ai_adopt(ai_inspector *I, lua_State *L, lua_State *co, int site_level, int fn_idx);
/* "source:line" where the function at idx is defined ("[C]" for C) */
ai_str ai_function_location(ai_inspector *I, lua_State *L, int idx);
void ai_watch(ai_inspector *I, lua_State *L, int co_idx, ai_task *t);
void ai_unwatch(ai_inspector *I, ai_task *t);
void ai_watch_held(ai_inspector *I, lua_State *co);
void ai_sweep_watched(ai_inspector *I, lua_State *L);
void ai_settle_watched(ai_inspector *I, lua_State *L);
uint64_t ai_current_task(ai_inspector *I, lua_State *L);
ai_task *ai_track(ai_inspector *I, lua_State *L, lua_State *co, int fn_idx, int site_level);
int ai_grow_registry(ai_inspector *I, lua_State *L);
void ai_finish(ai_inspector *I, ai_task *t, uint8_t state, ai_str detail, ai_tick now);
ai_str ai_site_location(ai_inspector *I, lua_State *L, int level);
ai_str ai_error_text(ai_inspector *I, lua_State *L, int idx);
ai_str ai_locfn_get(const ai_inspector *I, ai_str loc);
int ai_hooks_check_layout(ai_inspector *I, lua_State *L);

/* ---- creation traces (hooks.c): where each task was created, as the
** location ids of the creating thread's frames; formatted only on demand.
** Captured only while I->creation_traces is set. 64 bytes a slot. ---- */
#define AI_CTRACE_DEPTH 13
typedef struct ai_ctrace {
  uint64_t id;       /* task whose trace this is (0: none) */
  uint16_t n;        /* frames held */
  uint16_t more;     /* 1 when the stack went deeper than AI_CTRACE_DEPTH */
  ai_str frames[AI_CTRACE_DEPTH]; /* "source:line", or "[C]: in ..." */
} ai_ctrace;
void ai_capture_creation(ai_inspector *I, lua_State *L, ai_task *t, int level);
const ai_ctrace *ai_creation_trace(const ai_inspector *I, uint64_t id);
/* forget the long-poll log, releasing its names (reset) */
void ai_long_polls_clear(ai_inspector *I);
void ai_hooks_learn_typename(ai_inspector *I, lua_State *L);

/* ---- waitgraph.c: resources, holders, waiters, the wait-for graph ----
** Tasks (by id) hold resources and wait for at most one resource at a
** time; a task waits for the holders of what it waits for. Deadlocks are
** searched for when a wait begins, from the waiting task only, so the cost
** is the part of the graph reachable from it. No Lua calls: the bindings
** (module.c) intern names and locations and look tasks up. Indices of
** resources, holds and nodes are stored + 1 so that 0 means "none". */
enum ai_res_kind {
  AI_RK_MUTEX = 0, AI_RK_RWLOCK, AI_RK_SEMAPHORE, AI_RK_CHANNEL, AI_RK_EVENT,
  AI_RK_CUSTOM, AI_RK_JOIN, AI_RK_COUNT
};
enum ai_wait_mode {
  AI_WM_NONE = 0, AI_WM_READ, AI_WM_WRITE, AI_WM_SEND, AI_WM_RECV, AI_WM_COUNT
};

/* a resource as Lua knows it: generation << 32 | index + 1 (0: none); a
** handle of a freed resource is refused even when its index is reused */
typedef uint64_t ai_wg_handle;

#define AI_WG_NO_SLOT UINT32_MAX /* registry slot of a task not known */

typedef struct ai_wg_res {
  ai_str name;            /* the bindings hold one reference */
  uint32_t gen;           /* 0: free; bumped at each reuse */
  uint8_t kind;
  uint8_t any;            /* a waiter needs any one holder to let go (semaphore) */
  uint16_t pad;
  uint32_t holders;       /* first hold */
  uint32_t nholders;      /* hold records (distinct holding tasks) */
  uint64_t held;          /* units held by recorded tasks (permits, read counts) */
  uint64_t anon;          /* units held by tasks without a record */
  uint32_t wait_head, wait_tail; /* waiting nodes, oldest first */
  uint32_t nwaiters;
  uint32_t next_free;     /* free list link while free */
  uint64_t join_target;   /* AI_RK_JOIN: the task being joined */
  uint64_t acquisitions, contended;
  uint64_t wait_total, wait_max; /* ticks */
} ai_wg_res;

typedef struct ai_wg_hold {
  uint32_t res, node;
  uint32_t rprev, rnext;  /* among the holders of res */
  uint32_t tprev, tnext;  /* among the holds of node; tnext links the free list */
  uint64_t count;
  ai_tick since;
  ai_str at;              /* where it was acquired (a permanent location) */
  uint8_t mode;
} ai_wg_hold;

typedef struct ai_wg_node { /* a task that holds or waits */
  uint64_t task;
  uint32_t slot;          /* registry slot when known, else AI_WG_NO_SLOT */
  uint32_t holds;         /* first hold */
  uint32_t wait_res;      /* resource waited for, 0: none */
  uint32_t wprev, wnext;  /* among the waiters of wait_res; wnext links the free list */
  uint32_t join_res;      /* the join resource this task holds for its joiners */
  uint32_t mark;          /* search epoch of the last visit */
  uint32_t dmark;         /* deadlock-set epoch: in the set when == G->depoch */
  uint32_t cnt;           /* deadlock-set scratch counter */
  uint32_t checked;       /* recheck pass that confirmed its cycle */
  uint8_t wait_mode;
  uint8_t in_cycle;       /* in a cycle reported since its wait began */
  uint8_t live;           /* in use (else on the free list) */
  ai_tick wait_since;
  ai_str wait_at;         /* where it waits (a permanent location) */
} ai_wg_node;

typedef struct ai_wg_step { /* one task of a detected cycle */
  uint64_t task;
  uint32_t slot;
  ai_wg_handle res;       /* what it waits for */
  uint8_t mode;
  ai_tick since;
  ai_str at;
  uint64_t held_by;       /* the next task of the cycle, holding res */
  uint32_t held_slot;
  uint8_t hold_mode;
  uint64_t hold_count;
  ai_tick held_since;
  ai_str acquired_at;
} ai_wg_step;

typedef struct ai_wg {
  ai_wg_res *res;   uint32_t nres, res_cap, res_free;
  ai_wg_hold *hold; uint32_t nhold, hold_cap, hold_free;
  ai_wg_node *node; uint32_t nnode, node_cap, node_free;
  uint32_t *tab;    uint32_t tab_mask, tab_used; /* task id -> node */
  uint32_t live_nodes;
  uint32_t epoch, depoch;
  uint32_t *stack;  uint32_t stack_cap;  /* search frames: node, next hold, via */
  uint32_t *work;   uint32_t work_cap;   /* reachable nodes, removal worklist */
  ai_wg_step *cycle; uint32_t cycle_cap; /* the last cycle found */
  uint64_t cycles;  /* deadlocks detected since init */
  uint32_t rechecks; /* ai_wg_recheck passes */
  ai_tick start_seen; /* the inspector's clock epoch when last used (reset check) */
} ai_wg;

int ai_wg_init(ai_wg *G);
void ai_wg_free(ai_wg *G);
/* forget every task (a reset): holds become anonymous units, waits and joins
** go, statistics restart; resources stay */
void ai_wg_forget_tasks(ai_wg *G);
ai_wg_handle ai_wg_new_resource(ai_wg *G, uint8_t kind, ai_str name);
/* the resource of a handle, NULL when stale */
ai_wg_res *ai_wg_res_of(const ai_wg *G, ai_wg_handle h);
ai_wg_handle ai_wg_handle_at(const ai_wg *G, uint32_t index);
/* free a resource and everything about it; returns its name for the caller
** to release (0 when the handle was stale) */
ai_str ai_wg_free_resource(ai_wg *G, ai_wg_handle h);
/* task acquires n units without waiting; 1 on success, 0 out of memory */
int ai_wg_acquire(ai_wg *G, ai_wg_handle h, uint64_t task, uint32_t slot, uint8_t mode,
                  uint64_t n, ai_str at, ai_tick now);
/* n units acquired by a task that has no record (untracked or recording off) */
void ai_wg_acquire_anon(ai_wg *G, ai_wg_handle h, uint64_t n);
/* task lets go of n units; 1 when a recorded hold was reduced, 0 when the
** units were counted as anonymous */
int ai_wg_release(ai_wg *G, ai_wg_handle h, uint64_t task, uint64_t n);
/* task starts waiting for h; returns the length of the deadlock cycle this
** wait closes (its steps in G->cycle, the waiting task first), 0 when none,
** -1 out of memory. A task already waiting stops waiting first. */
int ai_wg_wait(ai_wg *G, ai_wg_handle h, uint64_t task, uint32_t slot, uint8_t mode,
               ai_str at, ai_tick now);
/* the wait of task for h ends with success; hold: it now holds n units
** (acquired where it waited). Not waiting for h: counted as anonymous. */
int ai_wg_grant(ai_wg *G, ai_wg_handle h, uint64_t task, int hold, uint64_t n, ai_tick now);
/* the wait of task ends without success (timeout, cancel, join done) */
void ai_wg_unwait(ai_wg *G, uint64_t task);
/* waiter waits for task target to end: a join edge, as ai_wg_wait */
int ai_wg_wait_task(ai_wg *G, uint64_t waiter, uint32_t wslot, uint64_t target,
                    uint32_t tslot, ai_str at, ai_tick now);
/* the node of a task, NULL when it neither holds nor waits */
const ai_wg_node *ai_wg_node_of(const ai_wg *G, uint64_t task);
/* clear the deadlock mark of tasks whose cycle is broken since it was
** reported (a wait cancelled, a holder gone): a search from each marked task */
void ai_wg_recheck(ai_wg *G);

/* ---- sched.c: the ready queue and task states of async_inspect.luv ---- */
/* A scheduler and each of its tasks are userdata made by the bindings
** (module.c); the Lua scheduler keeps the slow paths, called back through
** the scheduler's uservalues. A task's state is its handle: one object per
** task, whose Lua fields are served by sched_fields (module.c). */
enum ai_stask_flags {
  AI_ST_DONE = 1,     /* ended (completed, failed, cancelled) */
  AI_ST_STARTED = 2,  /* its first resume happened */
  AI_ST_ADOPTED = 4,  /* a coroutine not spawned by the scheduler */
  AI_ST_MAIN = 8,     /* the main thread (adopted) */
  AI_ST_UNDO = 16,    /* its fields hold an undo of its wait, cleared at resume */
  AI_ST_WAITS = 32,   /* the wait text uservalue is set */
  AI_ST_OBSERVED = 64 /* its outcome was taken (joined), or nobody need see it */
};
/* how a task ended (ai_stask.done) */
enum { AI_SD_NONE, AI_SD_COMPLETED, AI_SD_FAILED, AI_SD_CANCELLED };
/* uservalues of a task */
enum {
  AI_ST_VAL = 1,  /* before the first resume: the body and its arguments; then
                  ** the value of the pending wake (packed table when several);
                  ** once completed: its results (the same way) */
  AI_ST_WAIT,     /* what it waits for (text, reports only) */
  AI_ST_CO,       /* the coroutine */
  AI_ST_TITLE,    /* its name, as given to spawn */
  AI_ST_EXT,      /* a table of the scheduler's other fields, made on first use */
  AI_ST_NUV = AI_ST_EXT
};
/* uservalues of a scheduler: the metatables of its tasks, then the Lua
** slow paths (its ring is in the registry) */
enum {
  AI_SC_CLASS = 1,   /* the metatable of its handles */
  AI_SC_ADOPTED,     /* the metatable of the coroutines it adopts */
  AI_SC_START_IDLE,  /* () the queue got its first entry */
  AI_SC_FAILED,      /* (handle, err) a resume of ours raised */
  AI_SC_RAW,         /* (handle) it yielded outside the helpers */
  AI_SC_MAIN,        /* (handle, n, value) wake the main thread */
  AI_SC_SPURIOUS,    /* (handle) a waiting task was resumed by other code; raises */
  AI_SC_NUV = AI_SC_SPURIOUS
};

/* A scheduler is anchored in the registry for good: its tasks point at it,
** and the ring is reached from there without a uservalue per task. */
typedef struct ai_sched {
  const void *magic;         /* ai_sched_magic */
  ai_inspector *I;
  int self_ref, queue_ref;   /* registry references: the scheduler, its ring */
  uint32_t head, count, cap; /* the ring: slot i at index i + 1, cap a power of two */
  uint32_t grown;            /* times the ring was replaced by a bigger one */
  int idle;                  /* the Lua side runs an idle handle that drains */
} ai_sched;

typedef struct ai_stask {
  const void *magic;     /* ai_stask_magic: tells a task from other userdata */
  ai_sched *sched;
  lua_State *co;         /* the coroutine, kept alive by the AI_ST_CO uservalue */
  uint64_t gen;          /* resumes by the scheduler so far */
  uint64_t qgen;         /* gen the pending wake is for (UINT64_MAX: none yet) */
  uint64_t wgen;         /* gen when it last waited in a helper (UINT64_MAX: never) */
  uint64_t tid;          /* its id in the core (0: not tracked) */
  ai_str qkind;          /* wake kind of the pending wake (reference held) */
  int qn;                /* values of the pending wake */
  int nres;              /* results of a completed task */
  uint8_t flags;
  uint8_t done;          /* AI_SD_* */
} ai_stask;

/* their addresses mark schedulers and task states: checking one costs less
** than a metatable lookup, and no Lua code can forge a userdata's bytes */
extern const char ai_sched_magic, ai_stask_magic;
void ai_sched_init(ai_sched *S, ai_inspector *I);
/* the full userdata at idx when it has `size` bytes and starts with the
** pointer `magic` (as ai_sched and ai_stask do), else NULL */
static inline void *ai_marked_udata(lua_State *L, int idx, size_t size, const void *magic) {
  void *p = lua_touserdata(L, idx);
  if (p == NULL || lua_type(L, idx) != LUA_TUSERDATA || lua_rawlen(L, idx) != size ||
      *(const void *const *)p != magic)
    return NULL;
  return p;
}
/* the scheduler at idx, or NULL when the value is something else */
static inline ai_sched *ai_sched_at(lua_State *L, int idx) {
  return (ai_sched *)ai_marked_udata(L, idx, sizeof(ai_sched), &ai_sched_magic);
}
/* the task at idx, or NULL when the value is something else */
static inline ai_stask *ai_sched_task_at(lua_State *L, int idx) {
  return (ai_stask *)ai_marked_udata(L, idx, sizeof(ai_stask), &ai_stask_magic);
}
void ai_sched_attribute(ai_inspector *I, lua_State *co, ai_str kind);
void ai_sched_enqueue(lua_State *L, ai_stask *s, int sidx, uint64_t gen, ai_str kind, int n,
                      int vidx);
void ai_sched_resume(lua_State *L, ai_stask *s, int sidx, ai_str kind, int n, int vidx);
int ai_sched_drain(lua_State *L, int sched_idx, int budget, int *empty, ai_tick *first,
                   ai_tick *last);
int ai_sched_wait(lua_State *L, ai_stask *s, int wait_idx);

#endif

/*
** sched.c: the hot path of async_inspect.luv's scheduler: the ready queue
** and the scheduling state of each task (generation counters, the pending
** wake, done/started flags), and the resume of a queued task through the
** core's resume (hooks.c).
**
** Why in C: the Lua version spent more on its own bookkeeping per resume
** (table fields, varargs, binding calls) than the resume itself costs. Here
** a wake, a pass over the queue and a wait touch a C struct; the Lua
** scheduler keeps the rare paths (errors, cancel, joins, adopted coroutines,
** the main thread, reports) and is called back for them.
**
** Lifetimes (no coroutine lives longer than with a Lua scheduler):
** - a task is one userdata (ai_stask), which is also the handle the Lua
**   side gives out: a spawn makes one object besides the coroutine. Its
**   uservalues hold the coroutine (whose stack holds the handle: a cycle,
**   collected together), its name, the wait text, one value slot (the body
**   and arguments until the first resume, then the pending wake's value,
**   then the results) and the Lua side's other fields, made on first use.
** - the queue is a Lua table, anchored in the registry with the scheduler,
**   used as a ring of tasks: a queued task is reachable through it until
**   its entry is taken. Values are released when taken.
** Nothing is allocated per resume: the ring grows geometrically.
*/
#include "lua.h"
#include "lauxlib.h"

#include "ai_internal.h"

#define SCHED_MIN_RING 64 /* power of two */

const char ai_sched_magic = 0, ai_stask_magic = 0;

void ai_sched_init(ai_sched *S, ai_inspector *I) {
  S->magic = &ai_sched_magic;
  S->I = I;
  S->self_ref = S->queue_ref = LUA_NOREF;
  S->grown = 0;
  S->head = S->count = 0;
  S->cap = SCHED_MIN_RING;
  S->idle = 0;
}

/* the wake kind of co's next resume, and co waits for nothing now (in the
** core's record); takes over the reference of kind */
void ai_sched_attribute(ai_inspector *I, lua_State *co, ai_str kind) {
  ai_task *t;
  if (!I->enabled || (t = ai_registry_of(&I->reg, co)) == NULL) { /* untracked: the kind
                                          would go to the next resume of another */
    ai_strings_release(I->strings, kind);
    return;
  }
  ai_strings_release(I->strings, I->pending_wake);
  I->pending_wake = kind;
  ai_strings_release(I->strings, t->wait);
  t->wait = 0;
}

/* push the scheduler's Lua slow path `which` (a uservalue of the
** scheduler, which is anchored in the registry) */
static void push_slow_path(lua_State *L, const ai_sched *S, int which) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->self_ref);
  lua_getiuservalue(L, -1, which);
  lua_remove(L, -2);
}

/* call the scheduler's Lua slow path `which` with the task at sidx and
** nargs values from the top */
static void call_back(lua_State *L, int sidx, int which, int nargs) {
  ai_stask *s = (ai_stask *)lua_touserdata(L, sidx);
  push_slow_path(L, s->sched, which);
  lua_pushvalue(L, sidx);
  if (nargs > 0) {
    lua_rotate(L, -(nargs + 2), 2); /* function, task, then the values */
  }
  lua_call(L, nargs + 1, 0);
}

/* a ring twice as big, the entries in order from slot 0 (rare); it replaces
** the one at qidx and in the registry */
static void grow_ring(lua_State *L, ai_sched *S, int qidx) {
  uint32_t i, ncap = S->cap * 2;
  lua_createtable(L, (int)ncap, 0);
  for (i = 0; i < S->count; i++) {
    lua_rawgeti(L, qidx, (lua_Integer)((S->head + i) & (S->cap - 1)) + 1);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_pushvalue(L, -1);
  lua_rawseti(L, LUA_REGISTRYINDEX, S->queue_ref);
  lua_replace(L, qidx);
  S->head = 0;
  S->cap = ncap;
  S->grown++;
}

/* schedule a resume of the task at sidx, unless it was resumed since `gen`
** or one is pending already, with n values (vidx: the value, or a packed
** table when n > 1; 0 when n == 0). Takes over the reference of kind. */
void ai_sched_enqueue(lua_State *L, ai_stask *s, int sidx, uint64_t gen, ai_str kind, int n,
                      int vidx) {
  ai_sched *S = s->sched;
  ai_strings *strs = S->I->strings;
  int qidx;
  /* void: resumed since, one pending, ended; or values before the first
  ** resume, which passes the body its arguments (the value slot holds them) */
  if (s->gen != gen || s->qgen == gen || (s->flags & AI_ST_DONE) ||
      (n > 0 && !(s->flags & AI_ST_STARTED))) {
    if (kind != 0) ai_strings_release(strs, kind);
    return;
  }
  if (s->qkind != 0) ai_strings_release(strs, s->qkind); /* a voided wake's, still held */
  s->qgen = gen;
  s->qkind = kind;
  if (n > 0 || s->qn > 0) { /* a voided wake's value may still be held */
    if (n > 0) lua_pushvalue(L, vidx);
    else lua_pushnil(L);
    lua_setiuservalue(L, sidx, AI_ST_VAL);
  }
  s->qn = n;
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->queue_ref);
  qidx = lua_gettop(L);
  if (S->count == S->cap) grow_ring(L, S, qidx);
  lua_pushvalue(L, sidx);
  lua_rawseti(L, qidx, (lua_Integer)((S->head + S->count) & (S->cap - 1)) + 1);
  S->count++;
  lua_pop(L, 1);
  if (!S->idle) { /* the first entry: the Lua side starts an idle handle that drains */
    S->idle = 1;
    push_slow_path(L, S, AI_SC_START_IDLE);
    lua_call(L, 0, 0);
  }
}

/* coroutine.status(co) == "suspended", seen from L (lcorolib's auxstatus) */
static int is_suspended(lua_State *L, lua_State *co) {
  lua_Debug ar;
  if (L == co) return 0;
  switch (lua_status(co)) {
    case LUA_YIELD: return 1;
    case LUA_OK: return !lua_getstack(co, 0, &ar) && lua_gettop(co) > 0;
    default: return 0;
  }
}

/* push the first resume's values: the task, the body, its arguments (which
** the task holds no longer): the value slot holds the body, or a table with
** the count at [0], the body at [1] and the arguments after it */
static int push_start(lua_State *L, int sidx) {
  int n = 0, i;
  lua_pushvalue(L, sidx);
  if (lua_getiuservalue(L, sidx, AI_ST_VAL) == LUA_TTABLE) {
    int packed = lua_gettop(L);
    lua_rawgeti(L, packed, 0); /* the count, as sched_spawn packed them */
    n = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (n < 0 || !lua_checkstack(L, n + LUA_MINSTACK))
      luaL_error(L, "async_inspect.luv: stack overflow (too many arguments for a task)");
    for (i = 1; i <= n + 1; i++) lua_rawgeti(L, packed, i);
    lua_remove(L, packed);
  }
  lua_pushnil(L);
  lua_setiuservalue(L, sidx, AI_ST_VAL);
  return n + 2;
}

/* forget the undo of the task's last wait (its fields undo, undo_arg,
** wait_handle), unless run_undo took it meanwhile */
static void clear_undo(lua_State *L, int sidx) {
  int top = lua_gettop(L);
  if (lua_getiuservalue(L, sidx, AI_ST_EXT) == LUA_TTABLE &&
      lua_getfield(L, -1, "undo") != LUA_TNIL) {
    lua_pushnil(L);
    lua_setfield(L, -3, "undo");
    lua_pushnil(L);
    lua_setfield(L, -3, "undo_arg");
    lua_pushnil(L);
    lua_setfield(L, -3, "wait_handle");
  }
  lua_settop(L, top);
}

/* Resume the task at sidx, attributing the wake to `kind` (reference taken
** over), with n values as for ai_sched_enqueue. Every resume of ours moves
** gen on; a task about to wait in a helper stores its gen in wgen. So after
** a resume, wgen == gen says "it waits in a helper" (else it yielded on its
** own), and in the helper an unchanged gen says "resumed by someone else". */
void ai_sched_resume(lua_State *L, ai_stask *s, int sidx, ai_str kind, int n, int vidx) {
  ai_inspector *I = s->sched->I;
  lua_State *co = s->co;
  uint64_t gen = ++s->gen;
  int top = lua_gettop(L), narg, r;
  if (s->flags & AI_ST_WAITS) { /* it waits for nothing now */
    s->flags &= (uint8_t)~AI_ST_WAITS;
    lua_pushnil(L);
    lua_setiuservalue(L, sidx, AI_ST_WAIT);
  }
  if (s->flags & AI_ST_UNDO) { /* what it waited on needs no undoing now */
    s->flags &= (uint8_t)~AI_ST_UNDO;
    clear_undo(L, sidx);
  }
  if (s->flags & AI_ST_ADOPTED) { /* the main thread, or a plain coroutine that used a helper */
    if (s->flags & AI_ST_MAIN) {
      ai_strings_release(I->strings, kind);
      lua_pushinteger(L, n);
      if (n > 0) lua_pushvalue(L, vidx);
      else lua_pushnil(L);
      call_back(L, sidx, AI_SC_MAIN, 2);
      return;
    }
    if (!is_suspended(L, co)) {
      ai_strings_release(I->strings, kind);
      return;
    }
  }
  if (!lua_checkstack(L, (n > 0 ? n : 0) + LUA_MINSTACK))
    luaL_error(L, "async_inspect.luv: stack overflow (too many values for a resume)");
  if (!(s->flags & AI_ST_STARTED)) { /* the body gets its arguments, never a wake's values */
    s->flags |= AI_ST_STARTED;
    narg = push_start(L, sidx);
  } else if (n == 1) {
    lua_pushvalue(L, vidx);
    narg = 1;
  } else if (n > 1) {
    int i;
    for (i = 1; i <= n; i++) lua_rawgeti(L, vidx, i);
    narg = n;
  } else {
    narg = 0;
  }
  ai_sched_attribute(I, co, kind);
  r = ai_resume_values(I, L, co, narg);
  if (r < 0) {
    call_back(L, sidx, AI_SC_FAILED, 1); /* the error on the top */
  } else if (s->wgen != gen && !(s->flags & (AI_ST_DONE | AI_ST_ADOPTED))) {
    lua_settop(L, top);
    call_back(L, sidx, AI_SC_RAW, 0); /* it yielded on its own: luv-style code */
  }
  lua_settop(L, top);
}

/* The time a pass spent resuming, for the slow-callback report, without
** reading the clock again: a resume the core recorded already holds its
** start and end in the task's record. Only a resume the core did not record
** (tracking disabled, an untracked coroutine) is timed here. */
typedef struct pass_clock {
  ai_task *t;      /* the resumed task's record, NULL when untracked */
  uint64_t id, resumes;
} pass_clock;

static void pass_before(ai_inspector *I, lua_State *co, pass_clock *c, ai_tick *first) {
  c->t = I->enabled ? ai_registry_of(&I->reg, co) : NULL;
  if (c->t == NULL) {
    if (*first == 0) *first = ai_now();
    return;
  }
  c->id = c->t->id;
  c->resumes = c->t->resumes;
}

static void pass_after(const pass_clock *c, ai_tick *first, ai_tick *last) {
  const ai_task *t = c->t;
  if (t == NULL) {
    *last = ai_now();
  } else if (t->id == c->id && t->resumes == c->resumes + 1 && t->state != AI_RUNNING &&
             t->state != AI_NORMAL) { /* recorded, and over */
    if (*first == 0 || t->resume_start < *first) *first = t->resume_start;
    if (t->last_change > *last) *last = t->last_change;
  }
}

/* one pass over the ready queue of the scheduler at sched_idx: at most
** `budget` entries are taken; returns how many, *empty: nothing is left,
** [*first, *last]: the span of its resumes (both 0: none ran) */
int ai_sched_drain(lua_State *L, int sched_idx, int budget, int *empty, ai_tick *first,
                   ai_tick *last) {
  ai_sched *S = (ai_sched *)lua_touserdata(L, sched_idx);
  ai_strings *strs = S->I->strings;
  int taken = 0, top, qidx;
  uint32_t grown = S->grown;
  lua_checkstack(L, LUA_MINSTACK);
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->queue_ref);
  qidx = top = lua_gettop(L);
  while (S->count > 0 && taken < budget) {
    ai_stask *s;
    int sidx, n, slot = (int)S->head + 1;
    if (grown != S->grown) { /* a resume grew the ring: a new table */
      grown = S->grown;
      lua_rawgeti(L, LUA_REGISTRYINDEX, S->queue_ref);
      lua_replace(L, qidx);
    }
    lua_rawgeti(L, qidx, slot);
    lua_pushnil(L);
    lua_rawseti(L, qidx, slot);
    S->head = (S->head + 1) & (S->cap - 1);
    S->count--;
    taken++;
    sidx = lua_gettop(L);
    s = (ai_stask *)lua_touserdata(L, sidx);
    n = s->qn;
    s->qn = 0;
    if (n > 0) { /* take the value: released once delivered (or voided) */
      lua_getiuservalue(L, sidx, AI_ST_VAL);
      lua_pushnil(L);
      lua_setiuservalue(L, sidx, AI_ST_VAL);
    } else {
      lua_pushnil(L);
    }
    if (s->qgen == s->gen && !(s->flags & AI_ST_DONE)) {
      ai_str kind = s->qkind;
      pass_clock c;
      s->qkind = 0;
      pass_before(S->I, s->co, &c, first);
      ai_sched_resume(L, s, sidx, kind, n, sidx + 1);
      pass_after(&c, first, last);
    } else { /* resumed or ended meanwhile: the wake is void */
      ai_strings_release(strs, s->qkind);
      s->qkind = 0;
    }
    lua_settop(L, top);
  }
  if (S->count == 0) {
    S->head = 0;
    S->idle = 0; /* the Lua side closes its idle handle */
  }
  lua_settop(L, top - 1);
  *empty = S->count == 0;
  return taken;
}

/* after the resume that ended a wait: resumed by our scheduler (gen moved
** on) or by other code, which the Lua side reports as an error */
static int suspend_k(lua_State *L, int status, lua_KContext ctx) {
  ai_stask *s = (ai_stask *)lua_touserdata(L, 1);
  (void)status;
  if (__builtin_expect(s->gen == (uint64_t)ctx, 0)) {
    call_back(L, 1, AI_SC_SPURIOUS, 0); /* raises */
  }
  return lua_gettop(L) - 1; /* the values of the wake */
}

/* the task at index 1 waits in a helper: remember its gen, what it waits
** for (the text at wait_idx, for reports) and yield; its state stays at 1 */
int ai_sched_wait(lua_State *L, ai_stask *s, int wait_idx) {
  uint64_t gen = s->gen;
  s->wgen = gen;
  if (!lua_isnil(L, wait_idx) || (s->flags & AI_ST_WAITS)) {
    s->flags = (uint8_t)(lua_isnil(L, wait_idx) ? s->flags & ~AI_ST_WAITS : s->flags | AI_ST_WAITS);
    lua_pushvalue(L, wait_idx);
    lua_setiuservalue(L, 1, AI_ST_WAIT);
  }
  lua_settop(L, 1);
  return lua_yieldk(L, 0, (lua_KContext)gen, suspend_k);
}

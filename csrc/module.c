/*
** module.c: luaopen_async_inspect_core, the Lua bindings of the C core.
**
** This is the only file that turns C records into Lua values. One inspector
** per Lua state lives in a full userdata kept in the registry; every binding
** gets it as its first upvalue. Queries copy records into fresh plain
** tables, so nothing handed to Lua aliases C memory.
*/
#include <stdlib.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"

#include "ai_internal.h"
#include "async_inspect.h"

#define INSPECTOR_KEY AI_INSPECTOR_KEY
#define l_unlikely_closed(x) __builtin_expect((x) != 0, 0)
#define SENTINEL_MT AI_SENTINEL_MT
#define EPOCH_MT "async_inspect.epoch"
#define HIST_MT "async_inspect.hist"

#define DEFAULT_RING (1u << 20)      /* 1,048,576 events, 32 MiB */
#define DEFAULT_MAX_TASKS 100000u    /* finished records kept */
#define MAX_RING ((uint64_t)1 << 31)

static const char *const state_names[AI_STATE_COUNT] = {
  "pending", "running", "suspended", "normal",
  "completed", "failed", "cancelled", "dropped"};

static const char *const kind_names[AI_EV_KIND_COUNT] = {
  "?", "spawn", "resume", "yield", "complete", "fail",
  "cancel", "drop", "point", "name"};

/* the inspector of this state; after its finaliser ran (the state is
** closing) its records are gone, so every binding refuses to run */
static ai_inspector *inspector(lua_State *L) {
  ai_inspector *I = (ai_inspector *)lua_touserdata(L, lua_upvalueindex(1));
  if (l_unlikely_closed(I->closed)) luaL_error(L, "async_inspect: the Lua state is closing");
  return I;
}

static lua_Integer to_ns(const ai_inspector *I, ai_tick t) {
  if (t <= I->start) return 0;
  return (lua_Integer)ai_clock_ns(I->start, t);
}

static void push_str(lua_State *L, const ai_inspector *I, ai_str id) {
  size_t len;
  const char *s = ai_strings_get(I->strings, id, &len);
  if (s) lua_pushlstring(L, s, len);
  else lua_pushnil(L);
}

static void set_str(lua_State *L, const ai_inspector *I, const char *field, ai_str id) {
  if (id == 0) return;
  push_str(L, I, id);
  lua_setfield(L, -2, field);
}

static void set_int(lua_State *L, const char *field, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, field);
}

static void set_time(lua_State *L, const ai_inspector *I, const char *field, ai_tick t) {
  if (t == 0) return;
  set_int(L, field, to_ns(I, t));
}

/* ---------------------------------------------------------------------- */
/* tasks                                                                    */
/* ---------------------------------------------------------------------- */

static void push_task(lua_State *L, const ai_inspector *I, const ai_task *t) {
  uint64_t busy = t->busy;
  lua_createtable(L, 0, 24);
  set_int(L, "id", (lua_Integer)t->id);
  if (t->name) set_str(L, I, "name", t->name);
  else if (t->created_fn) set_str(L, I, "name", t->created_fn);
  else {
    lua_pushliteral(L, "?");
    lua_setfield(L, -2, "name");
  }
  if (t->parent) set_int(L, "parent", (lua_Integer)t->parent);
  lua_pushstring(L, state_names[t->state]);
  lua_setfield(L, -2, "state");
  lua_pushstring(L, (t->flags & AI_TF_BLOCK) ? "block" : "coroutine");
  lua_setfield(L, -2, "kind");
  set_time(L, I, "created", t->created);
  set_str(L, I, "created_at", t->created_at);
  set_str(L, I, "function", t->created_fn);
  set_time(L, I, "first_resume", t->first_resume);
  /* the hot path leaves last_change alone on resume: a running task's last
  ** change is the start of its current resume */
  set_time(L, I, "last_change",
           (t->state == AI_RUNNING || t->state == AI_NORMAL) && t->resume_start > t->last_change
               ? t->resume_start : t->last_change);
  if (ai_state_finished(t->state)) set_time(L, I, "ended", t->last_change);
  set_int(L, "resumes", (lua_Integer)t->resumes);
  /* a running task's busy time includes the resume in progress */
  if (t->state == AI_RUNNING || t->state == AI_NORMAL) busy += ai_now() - t->resume_start;
  set_int(L, "busy", (lua_Integer)ai_clock_ns(0, busy));
  if (t->state == AI_SUSPENDED || t->state == AI_DROPPED || t->state == AI_CANCELLED) {
    set_str(L, I, "where", t->where);
    set_str(L, I, "where_fn", ai_locfn_get(I, t->where));
  }
  set_str(L, I, "await", t->await_label);
  set_str(L, I, "wait", t->wait);
  set_str(L, I, "error", t->error);
  set_str(L, I, "traceback", t->traceback);
}

static int state_of_name(const char *s) {
  int i;
  for (i = 0; i < AI_STATE_COUNT; i++)
    if (strcmp(s, state_names[i]) == 0) return i;
  return -1;
}

/* tasks([state]) -> array of task tables, by id */
static int by_id(const void *a, const void *b) {
  uint64_t x = (*(const ai_task *const *)a)->id, y = (*(const ai_task *const *)b)->id;
  return x < y ? -1 : x > y;
}

/* the matching records in id (creation) order: slots are reused, so slot
** order is not creation order. The array is a userdata pushed on L, so an
** error while the tables are built cannot leak it. */
static const ai_task **sorted_tasks(lua_State *L, const ai_inspector *I, int want,
                                    uint32_t *count) {
  const ai_task **list =
      (const ai_task **)lua_newuserdatauv(L, (I->reg.used + 1) * sizeof *list, 0);
  uint32_t slot, n = 0;
  for (slot = 0; slot < I->reg.top; slot++) {
    const ai_task *t = ai_registry_at(&I->reg, slot);
    if (t != NULL && (want < 0 || t->state == want)) list[n++] = t;
  }
  qsort(list, n, sizeof *list, by_id);
  *count = n;
  return list;
}

/* tasks([state]) -> array of task tables, by id */
static int l_tasks(lua_State *L) {
  ai_inspector *I = inspector(L);
  const char *state = luaL_optstring(L, 1, NULL);
  int want = -1;
  uint32_t i, n = 0;
  const ai_task **list;
  if (state != NULL && (want = state_of_name(state)) < 0)
    return luaL_argerror(L, 1, lua_pushfstring(L, "unknown state '%s'", state));
  ai_settle_watched(I, L);
  list = sorted_tasks(L, I, want, &n);
  lua_createtable(L, (int)(n < 1u << 24 ? n : 1u << 24), 0);
  for (i = 0; i < n; i++) {
    push_task(L, I, list[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* co's record, adopting it if it has none; an adopted coroutine that never
** ran is watched like a created one (ai_watch) */
static ai_task *record_of(lua_State *L, ai_inspector *I, int arg) {
  lua_State *co = lua_tothread(L, arg);
  ai_task *t = ai_registry_of(&I->reg, co);
  if (t == NULL && I->enabled && co != L) {
    t = ai_adopt(I, L, co, 0, 0);
    if (t != NULL) ai_watch(I, L, arg, t); /* only if it never ran */
  }
  return t;
}

static ai_task *check_task(lua_State *L, ai_inspector *I, int arg) {
  ai_task *t;
  if (lua_type(L, arg) == LUA_TTHREAD) {
    t = record_of(L, I, arg);
  } else {
    lua_Integer id = luaL_checkinteger(L, arg);
    t = id > 0 ? ai_registry_by_id(&I->reg, (uint64_t)id) : NULL;
  }
  return t;
}

/* task(co_or_id) -> task table or nil */
static int l_task(lua_State *L) {
  ai_inspector *I = inspector(L);
  ai_task *t;
  luaL_argexpected(L, lua_type(L, 1) == LUA_TTHREAD || lua_isinteger(L, 1), 1,
                   "coroutine or task id");
  ai_settle_watched(I, L);
  t = check_task(L, I, 1);
  if (t == NULL) lua_pushnil(L);
  else push_task(L, I, t);
  return 1;
}

/* current() -> id of the current task (innermost block or coroutine), or nil */
static int l_current(lua_State *L) {
  uint64_t id = ai_current_task(inspector(L), L);
  if (id == 0) lua_pushnil(L);
  else lua_pushinteger(L, (lua_Integer)id);
  return 1;
}

/* track(co) -> id: make sure a coroutine has a record (adopting it) */
static int l_track(lua_State *L) {
  ai_inspector *I = inspector(L);
  lua_State *co = lua_tothread(L, 1);
  ai_task *t;
  luaL_argexpected(L, co != NULL, 1, "coroutine");
  t = record_of(L, I, 1);
  if (t == NULL) lua_pushnil(L);
  else lua_pushinteger(L, (lua_Integer)t->id);
  return 1;
}

static ai_str check_text(lua_State *L, ai_inspector *I, int arg, size_t max) {
  size_t len;
  const char *s = luaL_checklstring(L, arg, &len);
  ai_str id = ai_strings_intern(I->strings, s, len > max ? max : len, 0);
  if (id == 0) luaL_error(L, "not enough memory");
  return id;
}

/* t is named by the string at arg: in the record and by a name event */
static void name_task(lua_State *L, ai_inspector *I, ai_task *t, int arg) {
  ai_str name = check_text(L, I, arg, 1024);
  ai_strings_release(I->strings, t->name);
  t->name = name;
  ai_strings_ref(I->strings, name); /* one for the record, one for the event */
  ai_timeline_push(&I->tl, AI_EV_NAME, t->id, 0, name, 0, ai_now());
}

/* name(co_or_id, name) -> true when a record was named */
static int l_name(lua_State *L) {
  ai_inspector *I = inspector(L);
  ai_task *t = check_task(L, I, 1);
  luaL_checkstring(L, 2);
  if (t != NULL) name_task(L, I, t, 2);
  lua_pushboolean(L, t != NULL);
  return 1;
}

/* point(label [, detail]): an inspection point in the current task */
static int l_point(lua_State *L) {
  ai_inspector *I = inspector(L);
  ai_str label, detail = 0;
  luaL_checkstring(L, 1);
  if (!lua_isnoneornil(L, 2)) luaL_checkstring(L, 2);
  if (!I->enabled) return 0;
  label = check_text(L, I, 1, 1024);
  if (!lua_isnoneornil(L, 2)) detail = check_text(L, I, 2, 4096);
  ai_timeline_push(&I->tl, AI_EV_POINT, ai_current_task(I, L), 0, label, detail, ai_now());
  return 0;
}

/* the next yield of task t is the await point `label` (a reference the
** inspector takes over), located at `loc` (0: where it yields) */
static void announce_await(ai_inspector *I, const ai_task *t, ai_str label, ai_str loc) {
  ai_strings_release(I->strings, I->pending_label);
  I->pending_label = label;
  I->pending_loc = loc;
  I->pending_task = t->id;
}

/* forget an announced await point that no yield took */
static void drop_announced_await(ai_inspector *I) {
  ai_strings_release(I->strings, I->pending_label);
  I->pending_label = I->pending_loc = 0;
  I->pending_task = 0;
}

/* await_point(label [, level]): label (and locate at `level` of the caller)
** the next yield of the current coroutine task */
static int l_await_point(lua_State *L) {
  ai_inspector *I = inspector(L);
  ai_task *t;
  lua_Integer level = luaL_optinteger(L, 2, 0);
  luaL_checkstring(L, 1);
  luaL_argcheck(L, level >= 0 && level < 1000, 2, "level out of range");
  if (!I->enabled || (t = ai_registry_of(&I->reg, L)) == NULL) return 0;
  announce_await(I, t, check_text(L, I, 1, 1024),
                 level > 0 ? ai_site_location(I, L, (int)level + 1) : 0);
  return 0;
}

/* wake(kind): the next resume was caused by this kind of event (luv) */
static int l_wake(lua_State *L) {
  ai_inspector *I = inspector(L);
  luaL_checkstring(L, 1);
  if (!I->enabled) return 0;
  ai_strings_release(I->strings, I->pending_wake);
  I->pending_wake = check_text(L, I, 1, 256);
  return 0;
}

/* set_wait(co_or_id, text|nil): what a task waits for */
static int l_set_wait(lua_State *L) {
  ai_inspector *I = inspector(L);
  ai_task *t = check_task(L, I, 1);
  ai_str w = lua_isnoneornil(L, 2) ? 0 : check_text(L, I, 2, 1024);
  if (t == NULL) {
    ai_strings_release(I->strings, w);
    return 0;
  }
  ai_strings_release(I->strings, t->wait);
  t->wait = w;
  return 0;
}

/* ---------------------------------------------------------------------- */
/* blocks: ai.task() guards                                                 */
/* ---------------------------------------------------------------------- */

/* block_open(name [, level]) -> id: a task for a block of code in the
** current thread, created at `level` of the caller (default 1) */
static int l_block_open(lua_State *L) {
  ai_inspector *I = inspector(L);
  ai_task *t;
  ai_str name;
  lua_Integer level = luaL_optinteger(L, 2, 1);
  luaL_checkstring(L, 1);
  luaL_argcheck(L, level >= 0 && level < 1000, 2, "level out of range");
  if (!I->enabled) return 0;
  name = check_text(L, I, 1, 1024);
  t = ai_track(I, L, NULL, 0, (int)level);
  if (t == NULL) {
    ai_strings_release(I->strings, name);
    return luaL_error(L, "not enough memory");
  }
  t->flags |= AI_TF_BLOCK;
  t->name = name;
  t->first_resume = t->resume_start = t->created;
  t->resumes = 1;
  t->state = AI_RUNNING;
  if (I->block_top < AI_MAX_BLOCKS) {
    I->blocks[I->block_top].thread = L;
    I->blocks[I->block_top].id = t->id;
    I->block_top++;
  }
  lua_pushinteger(L, (lua_Integer)t->id);
  return 1;
}

static void remove_block(ai_inspector *I, uint64_t id) {
  uint32_t i;
  for (i = I->block_top; i > 0; i--) {
    if (I->blocks[i - 1].id != id) continue;
    memmove(&I->blocks[i - 1], &I->blocks[i], (I->block_top - i) * sizeof I->blocks[0]);
    I->block_top--;
    return;
  }
}

/* finish(id, "completed"|"failed"|"cancelled" [, err]) -> true if it ended */
static int l_finish(lua_State *L) {
  static const char *const how[] = {"completed", "failed", "cancelled", NULL};
  static const uint8_t states[] = {AI_COMPLETED, AI_FAILED, AI_CANCELLED};
  ai_inspector *I = inspector(L);
  lua_Integer id = luaL_checkinteger(L, 1);
  int h = luaL_checkoption(L, 2, NULL, how);
  ai_task *t = id > 0 ? ai_registry_by_id(&I->reg, (uint64_t)id) : NULL;
  ai_tick now = ai_now();
  ai_str err = 0;
  if (t == NULL || ai_state_finished(t->state)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (states[h] == AI_FAILED) err = ai_error_text(I, L, 3);
  if (t->flags & AI_TF_BLOCK) {
    remove_block(I, t->id);
    t->busy = now - t->created;
  }
  ai_finish(I, t, states[h], err, now);
  lua_pushboolean(L, 1);
  return 1;
}

/* ---------------------------------------------------------------------- */
/* events                                                                   */
/* ---------------------------------------------------------------------- */

/* push an interned text through a per-iteration cache table (upvalue) so
** a location repeated a million times becomes one Lua string */
static void push_cached(lua_State *L, const ai_inspector *I, ai_str id, int cache) {
  if (id == 0) {
    lua_pushnil(L);
    return;
  }
  if (lua_rawgeti(L, cache, id) != LUA_TNIL) return;
  lua_pop(L, 1);
  push_str(L, I, id);
  lua_pushvalue(L, -1);
  lua_rawseti(L, cache, id);
}

/* seq, t, task, kind, loc, other, detail of one event */
static int push_event_row(lua_State *L, const ai_inspector *I, uint64_t seq,
                          const ai_event *e, int cache) {
  uint8_t kind = ai_event_kind(e);
  lua_pushinteger(L, (lua_Integer)seq);
  lua_pushinteger(L, to_ns(I, e->t));
  lua_pushinteger(L, (lua_Integer)ai_event_task(e));
  lua_pushstring(L, kind_names[kind < AI_EV_KIND_COUNT ? kind : 0]);
  push_cached(L, I, e->loc, cache);
  if ((kind == AI_EV_SPAWN || kind == AI_EV_RESUME) && e->other != 0)
    lua_pushinteger(L, (lua_Integer)e->other);
  else
    lua_pushnil(L);
  push_cached(L, I, e->detail, cache);
  return 7;
}

static int iter_events_next(lua_State *L) {
  ai_inspector *I = inspector(L);
  uint64_t seq = (uint64_t)lua_tointeger(L, lua_upvalueindex(2));
  const ai_event *e;
  if (seq < ai_timeline_first(&I->tl)) seq = ai_timeline_first(&I->tl);
  e = ai_timeline_get(&I->tl, seq);
  if (e == NULL) return 0;
  lua_pushinteger(L, (lua_Integer)(seq + 1));
  lua_replace(L, lua_upvalueindex(2));
  return push_event_row(L, I, seq, e, lua_upvalueindex(3));
}

/* iter_events([from_seq]) -> iterator of seq, t, task, kind, loc, other, detail */
static int l_iter_events(lua_State *L) {
  lua_Integer from = luaL_optinteger(L, 1, 1);
  luaL_argcheck(L, from >= 1, 1, "sequence numbers start at 1");
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushinteger(L, from);
  lua_createtable(L, 0, 64);
  lua_pushcclosure(L, iter_events_next, 3);
  return 1;
}

/* event_range() -> first seq held, next seq to be written */
static int l_event_range(lua_State *L) {
  ai_inspector *I = inspector(L);
  lua_pushinteger(L, (lua_Integer)ai_timeline_first(&I->tl));
  lua_pushinteger(L, (lua_Integer)I->tl.next_seq);
  return 2;
}

/* ---------------------------------------------------------------------- */
/* stats, clock, configuration                                              */
/* ---------------------------------------------------------------------- */

static int l_now(lua_State *L) {
  lua_pushinteger(L, to_ns(inspector(L), ai_now()));
  return 1;
}

static int l_stats(lua_State *L) {
  ai_inspector *I = inspector(L);
  uint64_t c[AI_STATE_COUNT];
  int i;
  ai_settle_watched(I, L);
  ai_registry_count_live(&I->reg, c);
  lua_createtable(L, 0, 20);
  set_int(L, "tasks", (lua_Integer)I->reg.total);
  set_int(L, "active", (lua_Integer)(c[AI_PENDING] + c[AI_RUNNING] + c[AI_SUSPENDED] + c[AI_NORMAL]));
  for (i = 0; i < AI_STATE_COUNT; i++) set_int(L, state_names[i], (lua_Integer)c[i]);
  set_int(L, "events", (lua_Integer)(I->tl.next_seq - ai_timeline_first(&I->tl)));
  set_int(L, "events_total", (lua_Integer)(I->tl.next_seq - I->tl.reset_seq));
  set_int(L, "events_dropped", (lua_Integer)ai_timeline_dropped(&I->tl));
  set_int(L, "evicted", (lua_Integer)I->reg.evicted);
  set_int(L, "retained", (lua_Integer)I->reg.used);
  set_int(L, "uptime", to_ns(I, ai_now()));
  set_int(L, "long_polls", (lua_Integer)I->long_polls);
  set_int(L, "strings", (lua_Integer)ai_strings_count(I->strings));
  set_int(L, "ring_capacity", (lua_Integer)I->tl.cap);
  set_int(L, "max_tasks", (lua_Integer)I->reg.max_finished);
  set_int(L, "task_record_bytes", (lua_Integer)sizeof(ai_task));
  set_int(L, "event_bytes", (lua_Integer)sizeof(ai_event));
  lua_pushboolean(L, ai_clock_uses_tsc());
  lua_setfield(L, -2, "clock_tsc");
  lua_pushboolean(L, I->fast_sites); /* every private layout verified */
  lua_setfield(L, -2, "fast_locations");
  return 1;
}

static int l_enable(lua_State *L) {
  ai_inspector *I = inspector(L);
  luaL_checktype(L, 1, LUA_TBOOLEAN);
  I->enabled = lua_toboolean(L, 1);
  return 0;
}

static int l_enabled(lua_State *L) {
  lua_pushboolean(L, inspector(L)->enabled);
  return 1;
}

static void clear_pending(ai_inspector *I) {
  drop_announced_await(I);
  ai_strings_release(I->strings, I->pending_wake);
  I->pending_wake = 0;
}

/* reset(): forget every task and event; the clock restarts */
static int l_reset(lua_State *L) {
  ai_inspector *I = inspector(L);
  clear_pending(I);
  ai_timeline_clear(&I->tl);
  ai_registry_clear(&I->reg);
  /* the records are gone, and their flags: every watch slot is free again
  ** (the table's stale weak values are overwritten as slots are taken) */
  I->watched = I->watch_new = I->watch_top = I->watch_free = 0;
  ai_hist_init(&I->resume_hist);
  I->block_top = 0;
  ai_long_polls_clear(I);
  I->start = ai_now();
  return 0;
}

static uint64_t ns_to_ticks(uint64_t ns) {
  /* ticks per ns from the clock's own conversion of a large span */
  uint64_t probe = (uint64_t)1 << 40, ns_probe = ai_clock_ns(0, probe);
  if (ns_probe == 0) return ns;
  return (uint64_t)((double)ns * ((double)probe / (double)ns_probe));
}

static lua_Integer opt_field_int(lua_State *L, const char *field, lua_Integer lo,
                                 lua_Integer hi, int *present) {
  lua_Integer v;
  int isnum;
  *present = lua_getfield(L, 1, field) != LUA_TNIL;
  if (!*present) {
    lua_pop(L, 1);
    return 0;
  }
  v = lua_tointegerx(L, -1, &isnum);
  if (!isnum || v < lo || v > hi)
    luaL_error(L, "bad argument #1 to 'configure' (field '%s' must be an integer from %I to %I)",
               field, lo, hi);
  lua_pop(L, 1);
  return v;
}

static int opt_field_bool(lua_State *L, const char *field, int *present) {
  int v;
  int t = lua_getfield(L, 1, field);
  *present = t != LUA_TNIL;
  if (*present && t != LUA_TBOOLEAN)
    luaL_error(L, "bad argument #1 to 'configure' (field '%s' must be a boolean)", field);
  v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

static int resize_ring(lua_State *L, ai_inspector *I, uint64_t cap) {
  ai_timeline nt;
  if (cap == I->tl.cap) return 0;
  if (!ai_timeline_init(&nt, cap, I->strings))
    return luaL_error(L, "not enough memory for a ring of %I events", (lua_Integer)cap);
  nt.next_seq = nt.first_min = I->tl.next_seq; /* seqs go on increasing */
  nt.widx = nt.next_seq % nt.cap;
  nt.reset_seq = I->tl.reset_seq;
  /* the events of the old ring are lost: they count as dropped */
  nt.lost = ai_timeline_dropped(&I->tl) + (I->tl.next_seq - ai_timeline_first(&I->tl));
  ai_timeline_free(&I->tl);
  I->tl = nt;
  return 0;
}

/* configure{ring_capacity=, max_tasks=, locations=, tracebacks=, sample=,
**            long_poll_ms=, seed=}: settings in C; unknown keys are the Lua
** layer's business */
static int l_configure(lua_State *L) {
  ai_inspector *I = inspector(L);
  int has;
  lua_Integer v;
  luaL_checktype(L, 1, LUA_TTABLE);
  v = opt_field_int(L, "ring_capacity", 16, (lua_Integer)MAX_RING, &has);
  if (has) resize_ring(L, I, (uint64_t)v);
  v = opt_field_int(L, "max_tasks", 0, UINT32_MAX - 1, &has);
  if (has) ai_registry_set_limit(&I->reg, (uint32_t)v);
  v = opt_field_bool(L, "locations", &has);
  if (has) I->locations = (int)v;
  v = opt_field_bool(L, "tracebacks", &has);
  if (has) I->tracebacks = (int)v;
  v = opt_field_bool(L, "creation_traces", &has);
  if (has) I->creation_traces = (int)v;
  v = opt_field_int(L, "long_poll_ns", 0, (lua_Integer)1 << 50, &has);
  if (has) I->long_poll_ticks = ns_to_ticks((uint64_t)v);
  v = opt_field_int(L, "seed", 1, LUA_MAXINTEGER, &has);
  if (has) I->rng = (uint64_t)v;
  if (lua_getfield(L, 1, "sample") != LUA_TNIL) {
    int isnum;
    lua_Number f = lua_tonumberx(L, -1, &isnum);
    if (!isnum || !(f >= 0 && f <= 1))
      return luaL_error(L, "bad argument #1 to 'configure' (field 'sample' must be a number from 0 to 1)");
    I->sample_threshold = f >= 1 ? UINT32_MAX : (uint32_t)(f * 4294967295.0);
  }
  lua_pop(L, 1);
  return 0;
}

/* settings() -> the C settings in force */
static int l_settings(lua_State *L) {
  ai_inspector *I = inspector(L);
  lua_createtable(L, 0, 8);
  set_int(L, "ring_capacity", (lua_Integer)I->tl.cap);
  set_int(L, "max_tasks", (lua_Integer)I->reg.max_finished);
  lua_pushboolean(L, I->locations);
  lua_setfield(L, -2, "locations");
  lua_pushboolean(L, I->tracebacks);
  lua_setfield(L, -2, "tracebacks");
  lua_pushboolean(L, I->creation_traces);
  lua_setfield(L, -2, "creation_traces");
  lua_pushnumber(L, I->sample_threshold == UINT32_MAX ? 1.0
                                                      : (double)I->sample_threshold / 4294967295.0);
  lua_setfield(L, -2, "sample");
  set_int(L, "long_poll_ns", (lua_Integer)ai_clock_ns(0, I->long_poll_ticks));
  return 1;
}

/* ---------------------------------------------------------------------- */
/* threads of suspended tasks (for tracebacks and locals, on demand)        */
/* ---------------------------------------------------------------------- */

/* thread_of(id) -> the coroutine of a task if it is still alive, else nil.
** Found through the weak anchor table, so no reference is ever kept. */
static int l_thread_of(lua_State *L) {
  ai_inspector *I = inspector(L);
  lua_Integer id = luaL_checkinteger(L, 1);
  lua_pushvalue(L, lua_upvalueindex(2)); /* anchors */
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    lua_State *co = lua_tothread(L, -2);
    ai_task *t = co ? ai_registry_of(&I->reg, co) : NULL;
    lua_pop(L, 1);
    if (t != NULL && (lua_Integer)t->id == id) return 1; /* the key */
  }
  lua_pushnil(L);
  return 1;
}

/* threads() -> { [id] = coroutine } of every anchored (suspended once) task */
static int l_threads(lua_State *L) {
  ai_inspector *I = inspector(L);
  ai_settle_watched(I, L);
  lua_newtable(L);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    lua_State *co = lua_tothread(L, -2);
    ai_task *t = co ? ai_registry_of(&I->reg, co) : NULL;
    lua_pop(L, 1);
    if (t == NULL) continue;
    lua_pushvalue(L, -1);
    lua_rawseti(L, -4, (lua_Integer)t->id);
  }
  lua_pop(L, 1);
  return 1;
}

/* ---------------------------------------------------------------------- */
/* creation traces and function names of locations (on demand)              */
/* ---------------------------------------------------------------------- */

/* creation_trace(id) -> { {loc=, fn=}, ..., more=true|nil } of the frames
** that created the task (innermost first), or nil when none was captured */
static int l_creation_trace(lua_State *L) {
  ai_inspector *I = inspector(L);
  lua_Integer id = luaL_checkinteger(L, 1);
  const ai_ctrace *c = id > 0 ? ai_creation_trace(I, (uint64_t)id) : NULL;
  int i;
  if (c == NULL) {
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, c->n, 1);
  for (i = 0; i < c->n; i++) {
    lua_createtable(L, 0, 2);
    set_str(L, I, "loc", c->frames[i]);
    set_str(L, I, "fn", ai_locfn_get(I, c->frames[i]));
    lua_rawseti(L, -2, i + 1);
  }
  if (c->more) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "more");
  }
  return 1;
}

/* location_names() -> { ["source:line"] = function name } for every code
** location whose function name is known (yield and creation sites) */
static int l_location_names(lua_State *L) {
  ai_inspector *I = inspector(L);
  ai_str loc;
  lua_newtable(L);
  for (loc = 1; loc < I->locfn_cap; loc++) {
    if (I->locfn[loc] == 0 || ai_strings_get(I->strings, loc, NULL) == NULL) continue;
    push_str(L, I, loc);
    push_str(L, I, I->locfn[loc]);
    lua_rawset(L, -3);
  }
  return 1;
}

/* ---------------------------------------------------------------------- */
/* histograms                                                               */
/* ---------------------------------------------------------------------- */

static ai_hist *check_hist(lua_State *L, int arg) {
  return (ai_hist *)luaL_checkudata(L, arg, HIST_MT);
}

static ai_hist *new_hist(lua_State *L) {
  ai_hist *h = (ai_hist *)lua_newuserdatauv(L, sizeof *h, 0);
  ai_hist_init(h);
  luaL_setmetatable(L, HIST_MT);
  return h;
}

static int l_hist_new(lua_State *L) {
  new_hist(L);
  return 1;
}

static int l_hist_record(lua_State *L) {
  ai_hist *h = check_hist(L, 1);
  lua_Integer v = luaL_checkinteger(L, 2);
  lua_Integer n = luaL_optinteger(L, 3, 1);
  luaL_argcheck(L, v >= 0, 2, "value must not be negative");
  luaL_argcheck(L, n >= 1 && n <= 1000000, 3, "count out of range");
  while (n-- > 0) ai_hist_record(h, (uint64_t)v);
  return 0;
}

static int l_hist_merge(lua_State *L) {
  ai_hist_merge(check_hist(L, 1), check_hist(L, 2));
  lua_settop(L, 1);
  return 1;
}

static int l_hist_quantile(lua_State *L) {
  ai_hist *h = check_hist(L, 1);
  lua_Number q = luaL_checknumber(L, 2);
  luaL_argcheck(L, q >= 0 && q <= 1, 2, "quantile must be from 0 to 1");
  lua_pushinteger(L, (lua_Integer)ai_hist_quantile(h, q));
  return 1;
}

static int l_hist_summary(lua_State *L) {
  ai_hist *h = check_hist(L, 1);
  lua_createtable(L, 0, 9);
  set_int(L, "count", (lua_Integer)h->count);
  set_int(L, "min", (lua_Integer)h->min);
  set_int(L, "max", (lua_Integer)h->max);
  lua_pushnumber(L, h->count ? h->sum / (double)h->count : 0);
  lua_setfield(L, -2, "mean");
  set_int(L, "p50", (lua_Integer)ai_hist_quantile(h, 0.5));
  set_int(L, "p90", (lua_Integer)ai_hist_quantile(h, 0.9));
  set_int(L, "p99", (lua_Integer)ai_hist_quantile(h, 0.99));
  set_int(L, "p999", (lua_Integer)ai_hist_quantile(h, 0.999));
  return 1;
}

/* resume_hist() -> a histogram (ns) of every resume recorded */
static int l_resume_hist(lua_State *L) {
  ai_inspector *I = inspector(L);
  ai_hist *h = new_hist(L);
  double ns_per_tick = (double)ai_clock_ns(0, (uint64_t)1 << 40) / (double)((uint64_t)1 << 40);
  ai_hist settled = I->resume_hist;
  ai_hist_settle(&settled);
  ai_hist_scale(h, &settled, ns_per_tick);
  return 1;
}

/* ---------------------------------------------------------------------- */
/* long polls (profiling): the log kept by hooks.c                          */
/* ---------------------------------------------------------------------- */

static const char *long_poll_end(uint8_t end) {
  return end == AI_EV_YIELD ? "yield" : end == AI_EV_COMPLETE ? "complete" : "fail";
}

/* long_polls() -> array of the last resumes longer than long_poll_ns,
** oldest first: {task=, name=, t=start ns, duration=ns, loc=, ended=} */
static int l_long_polls(lua_State *L) {
  ai_inspector *I = inspector(L);
  uint64_t total = I->long_polls, i;
  uint64_t first = total > AI_LONG_POLL_LOG ? total - AI_LONG_POLL_LOG : 0;
  lua_createtable(L, (int)(total - first), 0);
  for (i = first; i < total; i++) {
    const ai_long_poll *p = &I->long_poll_log[i % AI_LONG_POLL_LOG];
    lua_createtable(L, 0, 6);
    set_int(L, "task", (lua_Integer)p->task);
    set_str(L, I, "name", p->name);
    set_int(L, "t", to_ns(I, p->start));
    set_int(L, "duration", (lua_Integer)ai_clock_ns(0, p->ran));
    set_str(L, I, "loc", p->loc);
    lua_pushstring(L, long_poll_end(p->end));
    lua_setfield(L, -2, "ended");
    lua_rawseti(L, -2, (lua_Integer)(i - first + 1));
  }
  return 1;
}

/* ---------------------------------------------------------------------- */
/* schedulers (async_inspect.luv): where a spawned task really comes from   */
/* ---------------------------------------------------------------------- */

/* a tracked coroutine's creation site is the frame `level` of L: in the
** record, and in its spawn event when that is still the newest event */
static void relocate_spawn(ai_inspector *I, lua_State *L, ai_task *t, int level) {
  ai_str loc = ai_site_location(I, L, level);
  const ai_event *e;
  if (loc == 0) return; /* locations are permanent strings: no reference moves */
  t->created_at = loc;
  e = ai_timeline_get(&I->tl, I->tl.next_seq - 1);
  if (e != NULL && ai_event_kind(e) == AI_EV_SPAWN && ai_event_task(e) == t->id)
    ((ai_event *)e)->loc = loc;
}

/* spawned(co, level [, fn [, name [, held]]]) -> task id or nil. A
** scheduler has just created co on behalf of its caller: the creation site
** becomes the frame `level` above the caller of spawned (1: the caller's
** caller); with fn, the task's default name becomes where fn is defined
** instead of the scheduler's body function; with name, the task is named as
** by name(co, name). A coroutine created with Lua's own create (the cheap
** way, as async_inspect.luv does) is tracked here and located once; it is
** watched until it runs unless `held` says the caller keeps it until then
** (a ready queue). One created through the hooks gets its site and spawn
** event corrected. */
static int l_spawned(lua_State *L) {
  ai_inspector *I = inspector(L);
  lua_Integer level = luaL_checkinteger(L, 2);
  lua_State *co = lua_tothread(L, 1);
  int fn_idx = lua_isnoneornil(L, 3) ? 0 : 3;
  ai_task *t;
  luaL_argexpected(L, co != NULL, 1, "coroutine");
  luaL_argcheck(L, level >= 1 && level < 1000, 2, "level out of range");
  if (fn_idx != 0) luaL_checktype(L, 3, LUA_TFUNCTION);
  if (!lua_isnoneornil(L, 4)) luaL_checktype(L, 4, LUA_TSTRING);
  if (!I->enabled) {
    t = NULL;
  } else if ((t = ai_registry_of(&I->reg, co)) != NULL) { /* created through the hooks */
    relocate_spawn(I, L, t, (int)level + 1);
    if (fn_idx != 0) t->created_fn = ai_function_location(I, L, fn_idx);
  } else if (co != L && (t = ai_adopt(I, L, co, (int)level + 1, fn_idx)) != NULL &&
             !lua_toboolean(L, 5)) {
    ai_watch(I, L, 1, t); /* only if it never ran */
  }
  if (t == NULL) {
    lua_pushnil(L);
    return 1;
  }
  if (!lua_isnoneornil(L, 4)) name_task(L, I, t, 4);
  lua_pushinteger(L, (lua_Integer)t->id);
  return 1;
}

/* The scheduler's waits and wakes (async_inspect.luv). Texts: a pinned text
** is a light userdata that holds its id (permanent, so never counted); any
** other text is a string. */

/* pin(text) -> id: intern a text for good. For the few texts a scheduler
** passes over and over (wake kinds, await labels, waits): passing the id
** costs no hashing and no reference counting. */
static int l_pin(lua_State *L) {
  ai_inspector *I = inspector(L);
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  ai_str id;
  luaL_argcheck(L, len <= 1024, 1, "text longer than 1024 bytes");
  id = ai_strings_intern(I->strings, s, len, 1);
  if (id == 0) return luaL_error(L, "not enough memory");
  lua_pushlightuserdata(L, (void *)(uintptr_t)id);
  return 1;
}

static int is_text(lua_State *L, int arg) {
  int t = lua_type(L, arg);
  return t == LUA_TSTRING || t == LUA_TLIGHTUSERDATA;
}

/* a text argument checked by is_text; the id returned is owned by the caller
** (a reference for a string; a pinned text needs none) */
static ai_str sched_text(lua_State *L, ai_inspector *I, int arg) {
  if (lua_type(L, arg) == LUA_TLIGHTUSERDATA) {
    uintptr_t id = (uintptr_t)lua_touserdata(L, arg);
    if (id == 0 || id > UINT32_MAX || ai_strings_get(I->strings, (ai_str)id, NULL) == NULL)
      luaL_argerror(L, arg, "unknown text id");
    return (ai_str)id;
  }
  return check_text(L, I, arg, 1024);
}

/* sched_resume(co, kind, ...) -> as coroutine.resume(co, ...); the resume is
** attributed to `kind` (the wake kind) and the task no longer waits. */
static int l_sched_resume(lua_State *L) {
  ai_inspector *I = inspector(L);
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co != NULL, 1, "coroutine");
  luaL_argexpected(L, is_text(L, 2), 2, "string or pinned text");
  ai_sched_attribute(I, co, sched_text(L, I, 2)); /* the kind; co waits for nothing now */
  lua_remove(L, 2);
  return ai_resume_results(L, ai_resume_values(I, L, co, lua_gettop(L) - 1));
}

/* the running coroutine L is about to wait in a scheduler: its next yield
** is an await point labelled by the text at label_arg and located `level`
** frames above the binding's caller, and it waits for the text at wait_arg
** (nil: nothing known); the texts are checked by the caller */
static void announce_wait(lua_State *L, ai_inspector *I, int label_arg, lua_Integer level,
                          int wait_arg) {
  ai_task *t;
  if (!lua_isyieldable(L))
    luaL_error(L, "attempt to yield from outside a coroutine or across a C-call boundary");
  if (I->enabled && (t = ai_registry_of(&I->reg, L)) != NULL) {
    ai_str label = sched_text(L, I, label_arg);
    ai_str wait = lua_isnoneornil(L, wait_arg) ? 0 : sched_text(L, I, wait_arg);
    announce_await(I, t, label, ai_site_location(I, L, (int)level + 1));
    ai_strings_release(I->strings, t->wait);
    t->wait = wait;
  }
}

/* sched_yield(label, level [, wait]) -> what the resume passes. A scheduler's
** wait in one call: the next yield is an await point labelled `label` and
** located `level` frames above the caller (as await_point), the task waits
** for `wait` (texts: strings or pinned), and the coroutine yields. */
static int l_sched_yield(lua_State *L) {
  ai_inspector *I = inspector(L);
  int isnum;
  lua_Integer level = lua_tointegerx(L, 2, &isnum);
  luaL_argexpected(L, is_text(L, 1), 1, "string or pinned text");
  luaL_argcheck(L, isnum && level >= 1 && level < 1000, 2, "level from 1 to 999 expected");
  luaL_argexpected(L, lua_isnoneornil(L, 3) || is_text(L, 3), 3, "string or pinned text");
  announce_wait(L, I, 1, level, 3);
  return lua_yield(L, 0);
}

/* ---------------------------------------------------------------------- */
/* async_inspect.luv's ready queue and tasks (sched.c)                      */
/* ---------------------------------------------------------------------- */
static ai_stask *check_stask(lua_State *L, int arg) {
  ai_stask *s = ai_sched_task_at(L, arg);
  if (s == NULL) luaL_typeerror(L, arg, "scheduler task");
  return s;
}

static ai_sched *check_sched(lua_State *L, int arg) {
  ai_sched *S = ai_sched_at(L, arg);
  if (S == NULL) luaL_typeerror(L, arg, "scheduler");
  return S;
}

/* the values of a wake: n (arg), then the value (n == 1) or a packed table
** (n > 1) at arg + 1; returns n, *vidx the value's index (0: none) */
static int check_values(lua_State *L, int arg, int *vidx) {
  lua_Integer n = luaL_checkinteger(L, arg);
  luaL_argcheck(L, n >= 0 && n <= 1000000, arg, "value count from 0 to 1000000 expected");
  if (n > 1) luaL_checktype(L, arg + 1, LUA_TTABLE);
  *vidx = n > 0 ? arg + 1 : 0;
  return (int)n;
}

/* sched_new(class, adopted_class, start_idle, failed, raw, main, spurious)
** -> a scheduler: class is the metatable of its tasks, adopted_class that of
** the coroutines it adopts, the functions its slow paths (ai_internal.h,
** AI_SC_*). It is anchored in the registry for good: its tasks point at it. */
static int l_sched_new(lua_State *L) {
  ai_inspector *I = inspector(L);
  ai_sched *S;
  int i;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  for (i = 3; i <= AI_SC_NUV; i++) luaL_checktype(L, i, LUA_TFUNCTION);
  lua_settop(L, AI_SC_NUV);
  S = (ai_sched *)lua_newuserdatauv(L, sizeof *S, AI_SC_NUV);
  ai_sched_init(S, I);
  for (i = 1; i <= AI_SC_NUV; i++) {
    lua_pushvalue(L, i);
    lua_setiuservalue(L, -2, i);
  }
  lua_createtable(L, (int)S->cap, 0);
  S->queue_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  S->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

/* a new task of the scheduler at 1 for the coroutine at co_arg, with the
** core's id at tid_arg (nil: untracked); its metatable is the scheduler's
** class, or its adopted class */
static ai_stask *new_task(lua_State *L, ai_sched *S, int co_arg, int tid_arg, uint8_t flags) {
  ai_stask *s;
  lua_State *co = lua_tothread(L, co_arg);
  lua_Integer tid = 0;
  luaL_argexpected(L, co != NULL, co_arg, "coroutine");
  if (!lua_isnoneornil(L, tid_arg)) {
    tid = luaL_checkinteger(L, tid_arg);
    luaL_argcheck(L, tid > 0, tid_arg, "task id expected");
  }
  s = (ai_stask *)lua_newuserdatauv(L, sizeof *s, AI_ST_NUV);
  s->magic = &ai_stask_magic;
  s->sched = S;
  s->co = co;
  s->gen = 0;
  s->wgen = s->qgen = UINT64_MAX; /* never waited, nothing pending */
  s->tid = (uint64_t)tid;
  s->qkind = 0;
  s->qn = s->nres = 0;
  s->flags = flags;
  s->done = AI_SD_NONE;
  lua_pushvalue(L, co_arg); /* s->co stays valid whatever the program does */
  lua_setiuservalue(L, -2, AI_ST_CO);
  lua_getiuservalue(L, 1, (flags & AI_ST_ADOPTED) ? AI_SC_ADOPTED : AI_SC_CLASS);
  lua_setmetatable(L, -2);
  return s;
}

/* the first resume's function and arguments, from first_arg to the top, in
** the task's value slot: the body alone, or packed (count at [0], body at
** [1], then the arguments) */
static void hold_start(lua_State *L, int sidx, int first_arg, int last_arg) {
  int nargs = last_arg - first_arg, i;
  if (nargs == 0) {
    lua_pushvalue(L, first_arg);
  } else {
    lua_createtable(L, nargs + 1, 1);
    for (i = 0; i <= nargs; i++) {
      lua_pushvalue(L, first_arg + i);
      lua_rawseti(L, -2, i + 1);
    }
    lua_pushinteger(L, nargs);
    lua_rawseti(L, -2, 0);
  }
  lua_setiuservalue(L, sidx, AI_ST_VAL);
}

/* sched_spawn(S, co, tid, name, kind, fn, ...) -> task: the handle of a task
** whose first resume, (task, fn, ...), is queued */
static int l_sched_spawn(lua_State *L) {
  ai_inspector *I = inspector(L);
  ai_sched *S = check_sched(L, 1);
  ai_stask *s;
  int top = lua_gettop(L), sidx;
  luaL_argexpected(L, lua_isnoneornil(L, 4) || lua_type(L, 4) == LUA_TSTRING, 4, "string or nil");
  luaL_argexpected(L, is_text(L, 5), 5, "string or pinned text");
  luaL_checktype(L, 6, LUA_TFUNCTION);
  s = new_task(L, S, 2, 3, 0);
  sidx = lua_gettop(L);
  ai_watch_held(I, s->co); /* the task, queued until it runs, holds co */
  if (!lua_isnoneornil(L, 4)) {
    lua_pushvalue(L, 4);
    lua_setiuservalue(L, sidx, AI_ST_TITLE);
  }
  hold_start(L, sidx, 6, top);
  ai_sched_enqueue(L, s, sidx, 0, sched_text(L, I, 5), 0, 0);
  lua_settop(L, sidx);
  return 1;
}

/* sched_adopt(S, co, tid [, main]) -> the scheduler's state of a coroutine
** it did not spawn (main: the main thread) */
static int l_sched_adopt(lua_State *L) {
  ai_sched *S;
  (void)inspector(L);
  S = check_sched(L, 1);
  lua_settop(L, 4);
  new_task(L, S, 2, 3, (uint8_t)(AI_ST_ADOPTED | AI_ST_STARTED | (lua_toboolean(L, 4) ? AI_ST_MAIN : 0)));
  return 1;
}

/* The fields of a task, as its metatable serves them (sched_fields): a few
** live in the task itself and are read-only but `observed`; any other goes
** to a table made on first use. Methods come first: a field never hides one. */
enum task_field { F_OTHER, F_CO, F_TITLE, F_TID, F_DONE, F_OBSERVED, F_ADOPTED, F_MAIN };

static int is_key(const char *k, size_t len, const char *name, size_t name_len) {
  return len == name_len && memcmp(k, name, len) == 0;
}
#define IS_KEY(k, len, lit) is_key(k, len, "" lit, sizeof(lit) - 1)

static enum task_field field_of(lua_State *L, int arg) {
  size_t len;
  const char *k;
  if (lua_type(L, arg) != LUA_TSTRING) return F_OTHER;
  k = lua_tolstring(L, arg, &len);
  switch (k[0]) {
    case 'c': return IS_KEY(k, len, "co") ? F_CO : F_OTHER;
    case 't': return IS_KEY(k, len, "tid") ? F_TID : IS_KEY(k, len, "title") ? F_TITLE : F_OTHER;
    case 'd': return IS_KEY(k, len, "done") ? F_DONE : F_OTHER;
    case 'o': return IS_KEY(k, len, "observed") ? F_OBSERVED : F_OTHER;
    case 'a': return IS_KEY(k, len, "adopted") ? F_ADOPTED : F_OTHER;
    case 'm': return IS_KEY(k, len, "main") ? F_MAIN : F_OTHER;
    default: return F_OTHER;
  }
}

/* true, or nil as an unset field would be */
static void push_flag(lua_State *L, int set) {
  if (set) lua_pushboolean(L, 1);
  else lua_pushnil(L);
}

static const char *const done_names[] = {"completed", "failed", "cancelled", NULL};

/* __index(task, key): upvalue 1 holds the methods */
static int task_index(lua_State *L) {
  ai_stask *s = check_stask(L, 1);
  switch (field_of(L, 2)) {
    case F_CO: lua_getiuservalue(L, 1, AI_ST_CO); return 1;
    case F_TITLE: lua_getiuservalue(L, 1, AI_ST_TITLE); return 1;
    case F_TID:
      if (s->tid != 0) lua_pushinteger(L, (lua_Integer)s->tid);
      else lua_pushnil(L);
      return 1;
    case F_DONE:
      if (s->done != AI_SD_NONE) lua_pushstring(L, done_names[s->done - 1]);
      else lua_pushnil(L);
      return 1;
    case F_OBSERVED: push_flag(L, s->flags & AI_ST_OBSERVED); return 1;
    case F_ADOPTED: push_flag(L, s->flags & AI_ST_ADOPTED); return 1;
    case F_MAIN: push_flag(L, s->flags & AI_ST_MAIN); return 1;
    case F_OTHER: break;
  }
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  if (lua_getiuservalue(L, 1, AI_ST_EXT) != LUA_TTABLE) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

/* __newindex(task, key, value) */
static int task_newindex(lua_State *L) {
  ai_stask *s = check_stask(L, 1);
  switch (field_of(L, 2)) {
    case F_OTHER: break;
    case F_OBSERVED:
      if (lua_toboolean(L, 3)) s->flags |= AI_ST_OBSERVED;
      else s->flags &= (uint8_t)~AI_ST_OBSERVED;
      return 0;
    default: return luaL_error(L, "the field '%s' of a task is read-only", lua_tostring(L, 2));
  }
  lua_settop(L, 3);
  if (lua_getiuservalue(L, 1, AI_ST_EXT) != LUA_TTABLE) {
    if (lua_isnil(L, 3)) return 0; /* nothing to clear */
    lua_pop(L, 1);
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, AI_ST_EXT);
  }
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_rawset(L, -3);
  return 0;
}

/* sched_fields(methods) -> __index, __newindex for a class of tasks */
static int l_sched_fields(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_pushcclosure(L, task_index, 1);
  lua_pushcfunction(L, task_newindex);
  return 2;
}

/* wake the task at 1 with n values (as ai_sched_enqueue) unless something
** resumes it first; pushes false when it has ended (the enqueue is void) */
static int push_wake(lua_State *L, ai_stask *s, ai_str kind, int n, int vidx) {
  int ended = s->flags & AI_ST_DONE;
  ai_sched_enqueue(L, s, 1, s->gen, kind, n, vidx);
  lua_pushboolean(L, !ended);
  return 1;
}

/* sched_wake(task, kind, n [, value]) -> false when the task has ended, else
** true: a resume with the values is queued unless one is pending */
static int l_sched_wake(lua_State *L) {
  ai_inspector *I = inspector(L);
  ai_stask *s = check_stask(L, 1);
  int vidx, n;
  luaL_argexpected(L, is_text(L, 2), 2, "string or pinned text");
  n = check_values(L, 3, &vidx);
  return push_wake(L, s, sched_text(L, I, 2), n, vidx);
}

#define UV_WK_KIND lua_upvalueindex(1)
#define UV_WK_SLOW lua_upvalueindex(2)

/* the function sched_waker makes: wake(target, ...). The common case (a
** spawned task, no more than one value) here; the rest goes to the slow
** function with the same arguments */
static int sched_wake_fn(lua_State *L) {
  int n = lua_gettop(L) - 1;
  ai_stask *s;
  if (n <= 1 && (s = ai_sched_task_at(L, 1)) != NULL && !(s->flags & AI_ST_ADOPTED)) {
    /* the kind is pinned (checked by sched_waker): no reference */
    return push_wake(L, s, (ai_str)(uintptr_t)lua_touserdata(L, UV_WK_KIND), n, n > 0 ? 2 : 0);
  }
  lua_pushvalue(L, UV_WK_SLOW);
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

/* sched_waker(kind, slow) -> wake(target, ...): a wake for spawned tasks
** attributed to the pinned text `kind`; other targets, or more than one
** value, go to slow(target, ...) */
static int l_sched_waker(lua_State *L) {
  ai_inspector *I = inspector(L);
  uintptr_t kind;
  luaL_argexpected(L, lua_type(L, 1) == LUA_TLIGHTUSERDATA, 1, "pinned text");
  kind = (uintptr_t)lua_touserdata(L, 1);
  luaL_argcheck(L, kind != 0 && kind <= UINT32_MAX &&
                   ai_strings_get(I->strings, (ai_str)kind, NULL) != NULL, 1, "unknown text id");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  lua_pushcclosure(L, sched_wake_fn, 2);
  return 1;
}

/* sched_enqueue(task, gen, kind, n [, value]): as wake, void unless the task
** has not been resumed since gen (a joiner registered then) */
static int l_sched_enqueue(lua_State *L) {
  ai_inspector *I = inspector(L);
  ai_stask *s = check_stask(L, 1);
  lua_Integer gen = luaL_checkinteger(L, 2);
  int vidx, n;
  luaL_argexpected(L, is_text(L, 3), 3, "string or pinned text");
  n = check_values(L, 4, &vidx);
  ai_sched_enqueue(L, s, 1, (uint64_t)gen, sched_text(L, I, 3), n, vidx);
  return 0;
}

/* sched_run(task, kind, n [, value]): resume the task now (a luv callback) */
static int l_sched_run(lua_State *L) {
  ai_inspector *I = inspector(L);
  ai_stask *s = check_stask(L, 1);
  int vidx, n;
  luaL_argexpected(L, is_text(L, 2), 2, "string or pinned text");
  n = check_values(L, 3, &vidx);
  lua_settop(L, vidx > 0 ? vidx : 3);
  ai_sched_resume(L, s, 1, sched_text(L, I, 2), n, vidx);
  return 0;
}

/* sched_suspend(task, label, level [, wait [, wait_text]]) -> the values of
** the wake. The running task waits in a helper: the yield is an await point
** labelled `label` and located `level` frames above the caller (as
** await_point), the task waits for `wait` (texts: strings or pinned), and
** wait_text is kept for reports. A resume by other code calls the
** scheduler's spurious path. */
static int l_sched_suspend(lua_State *L) {
  ai_inspector *I = inspector(L);
  ai_stask *s = check_stask(L, 1);
  int isnum;
  lua_Integer level = lua_tointegerx(L, 3, &isnum);
  luaL_argexpected(L, is_text(L, 2), 2, "string or pinned text");
  luaL_argcheck(L, isnum && level >= 1 && level < 1000, 3, "level from 1 to 999 expected");
  luaL_argexpected(L, lua_isnoneornil(L, 4) || is_text(L, 4), 4, "string or pinned text");
  luaL_argexpected(L, lua_isnoneornil(L, 5) || lua_type(L, 5) == LUA_TSTRING, 5, "string or nil");
  luaL_argcheck(L, s->co == L, 1, "not the running task");
  announce_wait(L, I, 2, level, 4);
  lua_settop(L, 5);
  return ai_sched_wait(L, s, 5);
}

/* sched_drain(S, budget) -> entries taken, queue empty, ns spent resuming,
** when the first resume began (ns since start; 0 0: none ran): one pass over
** the ready queue (the idle callback) */
static int l_sched_drain(lua_State *L) {
  ai_inspector *I = inspector(L);
  ai_tick first = 0, last = 0;
  lua_Integer budget;
  int empty, taken;
  check_sched(L, 1);
  budget = luaL_checkinteger(L, 2);
  luaL_argcheck(L, budget >= 0 && budget <= INT32_MAX, 2, "budget out of range");
  lua_settop(L, 1);
  taken = ai_sched_drain(L, 1, (int)budget, &empty, &first, &last);
  lua_pushinteger(L, taken);
  lua_pushboolean(L, empty);
  lua_pushinteger(L, last > first ? (lua_Integer)ai_clock_ns(first, last) : 0);
  lua_pushinteger(L, to_ns(I, first));
  return 4;
}

/* sched_info(task) -> gen, waits in a helper (wgen == gen), what it waits
** for, started (its first resume happened) */
static int l_sched_info(lua_State *L) {
  ai_stask *s = check_stask(L, 1);
  lua_pushinteger(L, (lua_Integer)s->gen);
  lua_pushboolean(L, s->wgen == s->gen);
  lua_getiuservalue(L, 1, AI_ST_WAIT);
  lua_pushboolean(L, s->flags & AI_ST_STARTED);
  return 4;
}

/* sched_done(task, how, ...) -> whether the task has fields beyond its own
** (sched_fields). The task ended, `how` ("completed" with its results `...`,
** "failed", "cancelled"): no resume of ours any more; a pending value, or
** the body and arguments of a task that never started, go. */
static int l_sched_done(lua_State *L) {
  ai_stask *s = check_stask(L, 1);
  int how = luaL_checkoption(L, 2, NULL, done_names) + 1, n = lua_gettop(L) - 2, i;
  luaL_argcheck(L, !(s->flags & AI_ST_DONE), 1, "the task has ended already");
  s->flags |= AI_ST_DONE;
  s->done = (uint8_t)how;
  s->qn = 0;
  if (how != AI_SD_COMPLETED || n == 0) {
    lua_pushnil(L);
  } else if (n == 1) {
    lua_pushvalue(L, 3);
  } else {
    lua_createtable(L, n, 0);
    for (i = 1; i <= n; i++) {
      lua_pushvalue(L, 2 + i);
      lua_rawseti(L, -2, i);
    }
  }
  if (how == AI_SD_COMPLETED) s->nres = n;
  lua_setiuservalue(L, 1, AI_ST_VAL);
  lua_pushboolean(L, lua_getiuservalue(L, 1, AI_ST_EXT) == LUA_TTABLE);
  return 1;
}

/* sched_completed(v) -> true when v is a task that completed */
static int l_sched_completed(lua_State *L) {
  ai_stask *s = ai_sched_task_at(L, 1);
  lua_pushboolean(L, s != NULL && s->done == AI_SD_COMPLETED);
  return 1;
}

/* sched_results(task) -> the results of a completed task, which counts as
** observed from now on */
static int l_sched_results(lua_State *L) {
  ai_stask *s = check_stask(L, 1);
  int n = s->nres, i;
  luaL_argcheck(L, s->done == AI_SD_COMPLETED, 1, "the task has not completed");
  s->flags |= AI_ST_OBSERVED;
  if (n == 0) return 0;
  lua_getiuservalue(L, 1, AI_ST_VAL);
  if (n == 1) return 1;
  if (!lua_checkstack(L, n)) return luaL_error(L, "too many results to unpack");
  for (i = 1; i <= n; i++) lua_rawgeti(L, 2, i);
  return n;
}

/* sched_bump(task) -> gen: whatever was scheduled for the task is void */
static int l_sched_bump(lua_State *L) {
  ai_stask *s = check_stask(L, 1);
  lua_pushinteger(L, (lua_Integer)++s->gen);
  return 1;
}

/* sched_set(task, what): "undo" (its fields hold an undo of its wait,
** cleared at the next resume) or "nowait" (what it waits for is forgotten) */
static int l_sched_set(lua_State *L) {
  static const char *const whats[] = {"undo", "nowait", NULL};
  ai_stask *s = check_stask(L, 1);
  if (luaL_checkoption(L, 2, NULL, whats) == 0) {
    s->flags |= AI_ST_UNDO;
  } else {
    s->flags &= (uint8_t)~AI_ST_WAITS;
    lua_pushnil(L);
    lua_setiuservalue(L, 1, AI_ST_WAIT);
  }
  return 0;
}

/* sched_queued(S) -> entries in the ready queue */
static int l_sched_queued(lua_State *L) {
  ai_sched *S = check_sched(L, 1);
  lua_pushinteger(L, (lua_Integer)S->count);
  return 1;
}

static const luaL_Reg sched_funcs[] = {
  {"sched_new", l_sched_new}, {"sched_spawn", l_sched_spawn}, {"sched_adopt", l_sched_adopt},
  {"sched_fields", l_sched_fields}, {"sched_wake", l_sched_wake}, {"sched_waker", l_sched_waker},
  {"sched_enqueue", l_sched_enqueue}, {"sched_run", l_sched_run},
  {"sched_suspend", l_sched_suspend}, {"sched_drain", l_sched_drain},
  {"sched_info", l_sched_info}, {"sched_done", l_sched_done},
  {"sched_completed", l_sched_completed}, {"sched_results", l_sched_results},
  {"sched_bump", l_sched_bump}, {"sched_set", l_sched_set}, {"sched_queued", l_sched_queued},
  {NULL, NULL}};

/* ---------------------------------------------------------------------- */
/* wait-for graph (waitgraph.c): resources, holds, waits, deadlock cycles   */
/* ---------------------------------------------------------------------- */

static const char *const wg_kind_names[] = {
  "mutex", "rwlock", "semaphore", "channel", "event", "custom", "join", NULL};
/* what a waiting task's `wait` field says, by kind: "lock:NAME", ... */
static const char *const wg_wait_prefix[] = {
  "lock", "rwlock", "semaphore", "channel", "event", "resource", "join"};
static const char *const wg_mode_names[] = {NULL, "read", "write", "send", "recv"};

#define WG_NO_TASK UINT64_MAX /* a task id no node ever has */

static void wg_forget(ai_inspector *I, ai_wg *G) {
  ai_wg_forget_tasks(G);
  G->start_seen = I->start;
}

/* the graph of this inspector, created on first use; after ai.reset() (the
** clock epoch moved) the old task ids mean nothing: forget them */
static ai_wg *wg_of(lua_State *L, ai_inspector *I) {
  ai_wg *G = I->wg;
  if (G != NULL) {
    if (G->start_seen != I->start) wg_forget(I, G);
    return G;
  }
  if (I->closed) luaL_error(L, "async_inspect is closed");
  G = (ai_wg *)malloc(sizeof *G);
  if (G == NULL || !ai_wg_init(G)) {
    free(G);
    luaL_error(L, "not enough memory");
  }
  G->start_seen = I->start;
  I->wg = G;
  return G;
}

static void wg_close(ai_inspector *I) {
  if (I->wg == NULL) return;
  ai_wg_free(I->wg);
  free(I->wg);
  I->wg = NULL;
}

/* the task running L for the graph: its coroutine's record, or the main
** thread (id 0); 0 when it has no record (not tracked, recording off) */
static int wg_self(ai_inspector *I, lua_State *L, uint64_t *id, uint32_t *slot) {
  ai_task *t = ai_registry_of(&I->reg, L);
  if (t != NULL) {
    *id = t->id;
    *slot = t->slot;
    return 1;
  }
  *slot = AI_WG_NO_SLOT;
  *id = L == I->main_rec.co ? 0 : WG_NO_TASK;
  return *id == 0;
}

static ai_wg_handle wg_check(lua_State *L, int arg) {
  lua_Integer h = luaL_checkinteger(L, arg);
  luaL_argcheck(L, h > 0, arg, "resource handle expected");
  return (ai_wg_handle)h;
}

static uint8_t wg_opt_mode(lua_State *L, int arg) {
  lua_Integer m = luaL_optinteger(L, arg, AI_WM_NONE);
  luaL_argcheck(L, m >= AI_WM_NONE && m < AI_WM_COUNT, arg, "mode out of range");
  return (uint8_t)m;
}

static uint64_t wg_opt_units(lua_State *L, int arg) {
  lua_Integer n = luaL_optinteger(L, arg, 1);
  luaL_argcheck(L, n >= 1, arg, "count must be positive");
  return (uint64_t)n;
}

/* a stack level argument (an integer, default dflt) */
static int wg_level(lua_State *L, int arg, int dflt) {
  lua_Integer level = luaL_optinteger(L, arg, dflt);
  luaL_argcheck(L, level >= 0 && level < 1000, arg, "level out of range");
  return (int)level;
}

/* "source:line" of L at a stack level (0 when locations are off) */
static ai_str wg_where(lua_State *L, ai_inspector *I, int level) {
  return I->locations ? ai_site_location(I, L, level) : 0;
}

/* a task's record, found in O(1) through the slot the graph remembered */
static ai_task *wg_record(ai_inspector *I, uint64_t id, uint32_t slot) {
  ai_task *t;
  if (slot == AI_WG_NO_SLOT) return NULL;
  t = ai_registry_at(&I->reg, slot);
  return t != NULL && t->id == id ? t : NULL;
}

static void wg_set_wait_text(ai_inspector *I, ai_task *t, ai_str text) {
  if (t == NULL) {
    ai_strings_release(I->strings, text);
    return;
  }
  ai_strings_release(I->strings, t->wait);
  t->wait = text;
}

static void wg_push_name(lua_State *L, ai_inspector *I, uint64_t id, uint32_t slot) {
  ai_task *t = wg_record(I, id, slot);
  if (id == 0) lua_pushliteral(L, "main");
  else if (t != NULL && (t->name || t->created_fn)) push_str(L, I, t->name ? t->name : t->created_fn);
  else lua_pushfstring(L, "task %I", (lua_Integer)id);
}

static void wg_set_mode(lua_State *L, uint8_t mode) {
  if (mode == AI_WM_NONE || mode >= AI_WM_COUNT) return;
  lua_pushstring(L, wg_mode_names[mode]);
  lua_setfield(L, -2, "mode");
}

static void wg_set_duration(lua_State *L, const char *field, uint64_t ticks) {
  set_int(L, field, (lua_Integer)ai_clock_ns(0, ticks));
}

/* wg_new(name, kind) -> handle of a new resource */
static int l_wg_new(lua_State *L) {
  ai_inspector *I = inspector(L);
  int kind;
  ai_wg *G;
  ai_str name;
  ai_wg_handle h;
  luaL_checkstring(L, 1);
  kind = luaL_checkoption(L, 2, NULL, wg_kind_names);
  luaL_argcheck(L, kind != AI_RK_JOIN, 2, "joins are made by wg_wait_task");
  G = wg_of(L, I);
  name = check_text(L, I, 1, 1024);
  h = ai_wg_new_resource(G, (uint8_t)kind, name);
  if (h == 0) {
    ai_strings_release(I->strings, name);
    return luaL_error(L, "not enough memory");
  }
  lua_pushinteger(L, (lua_Integer)h);
  return 1;
}

/* wg_free(handle): forget a resource (its holds and waits with it) */
static int l_wg_free(lua_State *L) {
  ai_inspector *I = inspector(L);
  ai_wg_handle h = wg_check(L, 1);
  if (I->closed || I->wg == NULL) return 0;
  ai_strings_release(I->strings, ai_wg_free_resource(wg_of(L, I), h));
  return 0;
}

/* wg_acquire(handle [, mode [, n [, level]]]): the running task holds n
** more units, acquired at stack level `level` (default 2: the caller of the
** Lua function calling this) */
static int l_wg_acquire(lua_State *L) {
  ai_inspector *I = inspector(L);
  ai_wg_handle h = wg_check(L, 1);
  uint8_t mode = wg_opt_mode(L, 2);
  uint64_t n = wg_opt_units(L, 3), id;
  int level = wg_level(L, 4, 2);
  uint32_t slot;
  ai_wg *G;
  if (I->closed) return 0;
  G = wg_of(L, I);
  if (!I->enabled || !wg_self(I, L, &id, &slot)) ai_wg_acquire_anon(G, h, n);
  else if (!ai_wg_acquire(G, h, id, slot, mode, n, wg_where(L, I, level), ai_now()))
    return luaL_error(L, "not enough memory");
  return 0;
}

/* wg_release(handle [, n]) -> true when the running task's recorded hold
** was reduced (always applied, recording on or off) */
static int l_wg_release(lua_State *L) {
  ai_inspector *I = inspector(L);
  ai_wg_handle h = wg_check(L, 1);
  uint64_t n = wg_opt_units(L, 2), id;
  uint32_t slot;
  if (I->closed) return 0;
  wg_self(I, L, &id, &slot);
  lua_pushboolean(L, ai_wg_release(wg_of(L, I), h, id, n));
  return 1;
}

/* every holder of r, as task ids (a semaphore or read lock has several) */
static void wg_push_holder_ids(lua_State *L, const ai_wg *G, const ai_wg_res *r) {
  uint32_t h;
  int i = 0;
  lua_createtable(L, (int)r->nholders, 0);
  for (h = r->holders; h != 0; h = G->hold[h - 1].rnext) {
    lua_pushinteger(L, (lua_Integer)G->node[G->hold[h - 1].node - 1].task);
    lua_rawseti(L, -2, ++i);
  }
  lua_setfield(L, -2, "holders");
}

/* one step of a cycle: who waits for what, held by whom, since when */
static void wg_push_step(lua_State *L, ai_inspector *I, ai_wg *G, const ai_wg_step *s,
                         ai_tick now) {
  const ai_wg_res *r = ai_wg_res_of(G, s->res);
  lua_createtable(L, 0, 16);
  set_int(L, "task", (lua_Integer)s->task);
  wg_push_name(L, I, s->task, s->slot);
  lua_setfield(L, -2, "name");
  set_int(L, "resource", (lua_Integer)s->res);
  if (r != NULL) {
    lua_pushstring(L, wg_kind_names[r->kind]);
    lua_setfield(L, -2, "kind");
    if (r->kind == AI_RK_JOIN) lua_pushfstring(L, "task %I", (lua_Integer)r->join_target);
    else push_str(L, I, r->name);
    lua_setfield(L, -2, "waits_for");
    wg_push_holder_ids(L, G, r);
  }
  wg_set_mode(L, s->mode);
  set_str(L, I, "at", s->at);
  set_time(L, I, "since", s->since);
  wg_set_duration(L, "waited", now > s->since ? now - s->since : 0);
  set_int(L, "held_by", (lua_Integer)s->held_by);
  wg_push_name(L, I, s->held_by, s->held_slot);
  lua_setfield(L, -2, "held_by_name");
  if (s->hold_mode != AI_WM_NONE) {
    lua_pushstring(L, wg_mode_names[s->hold_mode]);
    lua_setfield(L, -2, "hold_mode");
  }
  set_int(L, "count", (lua_Integer)s->hold_count);
  set_str(L, I, "acquired_at", s->acquired_at);
  set_time(L, I, "held_since", s->held_since);
}

/* the cycle found (len steps) as an array, or nil; raises when out of memory */
static int wg_push_result(lua_State *L, ai_inspector *I, ai_wg *G, int len, ai_tick now) {
  int i;
  if (len < 0) return luaL_error(L, "not enough memory");
  if (len == 0) {
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, len, 0);
  for (i = 0; i < len; i++) {
    wg_push_step(L, I, G, &G->cycle[i], now);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* "KIND NAME" text for a waiting task's await label and wait field */
static ai_str wg_text(lua_State *L, ai_inspector *I, const char *prefix, char sep,
                      ai_str name) {
  const char *s;
  size_t len;
  ai_str id;
  const char *n = ai_strings_get(I->strings, name, NULL);
  lua_pushfstring(L, "%s%c%s", prefix, sep, n ? n : "?");
  s = lua_tolstring(L, -1, &len);
  id = ai_strings_intern(I->strings, s, len > 1024 ? 1024 : len, 0);
  lua_pop(L, 1);
  return id;
}

/* the next yield of task t waits for r: its await label and place */
static void wg_announce(lua_State *L, ai_inspector *I, ai_task *t, const ai_wg_res *r,
                        ai_str at) {
  ai_str label = lua_isstring(L, 4) ? check_text(L, I, 4, 1024)
                                    : wg_text(L, I, wg_kind_names[r->kind], ' ', r->name);
  wg_set_wait_text(I, t, wg_text(L, I, wg_wait_prefix[r->kind], ':', r->name));
  announce_await(I, t, label, at);
}

/* wg_wait(handle [, mode [, level [, label]]]) -> task id or nil, cycle or
** nil: the running task starts waiting for the resource (it waits at stack
** level `level`, default 2); its next yield gets the await label (default
** "KIND NAME") and that place. The cycle: the deadlock this wait closes. */
static int l_wg_wait(lua_State *L) {
  ai_inspector *I = inspector(L);
  ai_wg_handle h = wg_check(L, 1);
  uint8_t mode = wg_opt_mode(L, 2);
  int level = wg_level(L, 3, 2);
  uint64_t id;
  uint32_t slot;
  ai_wg *G;
  const ai_wg_res *r;
  ai_task *t;
  ai_tick now = ai_now();
  ai_str at;
  int len;
  if (!lua_isnoneornil(L, 4)) luaL_checkstring(L, 4);
  if (I->closed || !I->enabled || !wg_self(I, L, &id, &slot)) return 0;
  G = wg_of(L, I);
  if ((r = ai_wg_res_of(G, h)) == NULL) return 0;
  at = wg_where(L, I, level);
  if ((t = wg_record(I, id, slot)) != NULL) wg_announce(L, I, t, r, at);
  len = ai_wg_wait(G, h, id, slot, mode, at, now);
  lua_pushinteger(L, (lua_Integer)id);
  wg_push_result(L, I, G, len, now);
  return 2;
}

/* a task's wait ended: clear its `wait` text, and the await label announced
** for a yield it did not make */
static void wg_clear_wait_text(ai_inspector *I, const ai_wg_node *x) {
  if (x == NULL) return;
  wg_set_wait_text(I, wg_record(I, x->task, x->slot), 0);
  if (I->pending_task == x->task && x->task != 0) drop_announced_await(I);
}

static uint64_t wg_opt_task(lua_State *L, int arg) {
  lua_Integer id;
  if (lua_isnoneornil(L, arg) || (lua_isboolean(L, arg) && !lua_toboolean(L, arg)))
    return WG_NO_TASK;
  id = luaL_checkinteger(L, arg);
  luaL_argcheck(L, id >= 0, arg, "task id expected");
  return (uint64_t)id;
}

/* wg_grant(handle, task_id|false [, hold [, n]]) -> true when that task's
** wait was recorded: its wait ends with success, holding n units when hold
** (default true) where it waited */
static int l_wg_grant(lua_State *L) {
  ai_inspector *I = inspector(L);
  ai_wg_handle h = wg_check(L, 1);
  uint64_t id = wg_opt_task(L, 2);
  int hold = lua_isnoneornil(L, 3) || lua_toboolean(L, 3);
  uint64_t n = wg_opt_units(L, 4);
  ai_wg *G;
  if (I->closed) return 0;
  G = wg_of(L, I);
  wg_clear_wait_text(I, ai_wg_node_of(G, id));
  lua_pushboolean(L, ai_wg_grant(G, h, id, hold, n, ai_now()));
  return 1;
}

/* wg_unwait(task_id): its wait ends without success (cancel, timeout, join
** over) */
static int l_wg_unwait(lua_State *L) {
  ai_inspector *I = inspector(L);
  uint64_t id = wg_opt_task(L, 1);
  ai_wg *G;
  if (I->closed || I->wg == NULL) return 0;
  G = wg_of(L, I);
  wg_clear_wait_text(I, ai_wg_node_of(G, id));
  ai_wg_unwait(G, id);
  return 0;
}

/* wg_wait_task(waiter, target [, at]) -> cycle or nil: waiter (coroutine or
** id) waits for task target to end (a join, an await of a known task); at:
** "source:line" or a stack level of the running thread (default 2) */
static int l_wg_wait_task(lua_State *L) {
  ai_inspector *I = inspector(L);
  ai_task *w, *t;
  ai_str at;
  ai_wg *G;
  ai_tick now = ai_now();
  int len, text = lua_type(L, 3) == LUA_TSTRING, level = text ? 0 : wg_level(L, 3, 2);
  luaL_argexpected(L, lua_type(L, 1) == LUA_TTHREAD || lua_isinteger(L, 1), 1, "coroutine or task id");
  luaL_argexpected(L, lua_type(L, 2) == LUA_TTHREAD || lua_isinteger(L, 2), 2, "coroutine or task id");
  if (I->closed || !I->enabled) return 0;
  w = check_task(L, I, 1);
  t = check_task(L, I, 2);
  if (w == NULL || t == NULL) return 0;
  if (text) {
    size_t n;
    const char *s = lua_tolstring(L, 3, &n);
    at = ai_strings_intern(I->strings, s, n > 1024 ? 1024 : n, 1); /* a location: permanent */
  } else {
    at = wg_where(L, I, level);
  }
  G = wg_of(L, I);
  len = ai_wg_wait_task(G, w->id, w->slot, t->id, t->slot, at, now);
  if (len >= 0) {
    lua_pushfstring(L, "join:%I", (lua_Integer)t->id);
    wg_set_wait_text(I, w, check_text(L, I, -1, 64));
    lua_pop(L, 1);
  }
  return wg_push_result(L, I, G, len, now);
}

static void wg_push_holders(lua_State *L, ai_inspector *I, const ai_wg *G, const ai_wg_res *r) {
  uint32_t h;
  int i = 0;
  lua_createtable(L, (int)r->nholders, 0);
  for (h = r->holders; h != 0; h = G->hold[h - 1].rnext) {
    const ai_wg_hold *x = &G->hold[h - 1];
    const ai_wg_node *nd = &G->node[x->node - 1];
    lua_createtable(L, 0, 6);
    set_int(L, "task", (lua_Integer)nd->task);
    set_time(L, I, "since", x->since);
    set_str(L, I, "at", x->at);
    set_int(L, "count", (lua_Integer)x->count);
    wg_set_mode(L, x->mode);
    lua_rawseti(L, -2, ++i);
  }
  lua_setfield(L, -2, "holders");
}

/* waiters oldest first; *dead set when one is in a reported cycle */
static void wg_push_waiters(lua_State *L, ai_inspector *I, const ai_wg *G, const ai_wg_res *r,
                            int *dead) {
  uint32_t w;
  int i = 0;
  lua_createtable(L, (int)r->nwaiters, 0);
  for (w = r->wait_head; w != 0; w = G->node[w - 1].wnext) {
    const ai_wg_node *nd = &G->node[w - 1];
    lua_createtable(L, 0, 5);
    set_int(L, "task", (lua_Integer)nd->task);
    set_time(L, I, "since", nd->wait_since);
    set_str(L, I, "at", nd->wait_at);
    wg_set_mode(L, nd->wait_mode);
    if (nd->in_cycle) {
      *dead = 1;
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "deadlocked");
    }
    lua_rawseti(L, -2, ++i);
  }
  lua_setfield(L, -2, "waiters");
}

/* one resource as docs/internals.md describes it (plus handle and anon) */
static void wg_push_resource(lua_State *L, ai_inspector *I, const ai_wg *G, uint32_t index) {
  const ai_wg_res *r = &G->res[index];
  int dead = 0;
  lua_createtable(L, 0, 14);
  set_int(L, "id", (lua_Integer)ai_wg_handle_at(G, index));
  if (r->kind == AI_RK_JOIN) {
    lua_pushfstring(L, "task %I", (lua_Integer)r->join_target);
    lua_setfield(L, -2, "name");
    set_int(L, "target", (lua_Integer)r->join_target);
  } else {
    set_str(L, I, "name", r->name);
  }
  lua_pushstring(L, wg_kind_names[r->kind]);
  lua_setfield(L, -2, "kind");
  wg_push_holders(L, I, G, r);
  wg_push_waiters(L, I, G, r, &dead);
  set_int(L, "acquisitions", (lua_Integer)r->acquisitions);
  set_int(L, "contended", (lua_Integer)r->contended);
  wg_set_duration(L, "wait_total", r->wait_total);
  wg_set_duration(L, "wait_max", r->wait_max);
  set_int(L, "held", (lua_Integer)(r->held + r->anon));
  if (r->anon) set_int(L, "anonymous", (lua_Integer)r->anon);
  lua_pushboolean(L, dead);
  lua_setfield(L, -2, "deadlocked");
}

/* wg_resources([joins]) -> array of resources (joins too when asked) */
static int l_wg_resources(lua_State *L) {
  ai_inspector *I = inspector(L);
  int joins = lua_toboolean(L, 1), n = 0;
  uint32_t i;
  ai_wg *G;
  if (I->closed) return 0;
  G = wg_of(L, I);
  ai_wg_recheck(G);
  lua_createtable(L, (int)(G->nres < 1u << 20 ? G->nres : 1u << 20), 0);
  for (i = 0; i < G->nres; i++) {
    if (G->res[i].kind == AI_RK_COUNT || (G->res[i].kind == AI_RK_JOIN && !joins)) continue;
    wg_push_resource(L, I, G, i);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

/* wg_resource(handle) -> one resource, or nil when the handle is stale */
static int l_wg_resource(lua_State *L) {
  ai_inspector *I = inspector(L);
  ai_wg_handle h = wg_check(L, 1);
  ai_wg *G;
  if (I->closed) return 0;
  G = wg_of(L, I);
  ai_wg_recheck(G);
  if (ai_wg_res_of(G, h) == NULL) lua_pushnil(L);
  else wg_push_resource(L, I, G, (uint32_t)(h & 0xffffffffu) - 1);
  return 1;
}

/* wg_stats() -> sizes of the graph: resources, nodes, holds, cycles */
static int l_wg_stats(lua_State *L) {
  ai_inspector *I = inspector(L);
  ai_wg *G;
  uint32_t i, live = 0;
  if (I->closed) return 0;
  G = wg_of(L, I);
  for (i = 0; i < G->nres; i++) live += G->res[i].kind != AI_RK_COUNT;
  lua_createtable(L, 0, 4);
  set_int(L, "resources", (lua_Integer)live);
  set_int(L, "nodes", (lua_Integer)G->live_nodes);
  set_int(L, "cycles", (lua_Integer)G->cycles);
  return 1;
}

/* ---------------------------------------------------------------------- */
/* life of the inspector                                                    */
/* ---------------------------------------------------------------------- */

static int inspector_gc(lua_State *L) {
  ai_inspector *I = (ai_inspector *)lua_touserdata(L, 1);
  if (I->closed) return 0;
  I->closed = 1;
  I->enabled = 0;
  clear_pending(I);
  ai_timeline_free(&I->tl);
  ai_registry_free(&I->reg);
  ai_strings_free(I->strings);
  I->strings = NULL;
  free(I->locfn);
  I->locfn = NULL;
  free(I->ctraces);
  I->ctraces = NULL;
  I->ctraces_cap = 0;
  free(I->watch);
  I->watch = NULL;
  I->watched = I->watch_top = I->watch_cap = I->watch_free = 0;
  wg_close(I);
  return 0;
}

/* a userdata that dies with every collection cycle and comes back: each
** death moves the epoch on, invalidating cached code positions */
static int epoch_gc(lua_State *L) {
  ai_inspector *I;
  lua_getiuservalue(L, 1, 1);
  I = (ai_inspector *)lua_touserdata(L, -1);
  if (I == NULL || I->closed) return 0;
  I->epoch++;
  /* coroutines collected before they ever ran (hooks.c, watch table): swept
  ** once as many were watched since the last sweep as half of those watched
  ** now, so a sweep costs O(1) per watch, and records of dropped ones are
  ** at most a constant factor of the live ones; reads sweep first anyway */
  if (I->watched > 0 && I->watch_new * 2 >= I->watched) ai_sweep_watched(I, L);
  lua_newuserdatauv(L, 1, 1);
  lua_pushvalue(L, -2);
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, EPOCH_MT);
  return 0;
}

static void arm_epoch(lua_State *L, int ins) {
  lua_newuserdatauv(L, 1, 1);
  lua_pushvalue(L, ins);
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, EPOCH_MT);
  lua_pop(L, 1);
}

static ai_inspector *new_inspector(lua_State *L) {
  ai_inspector *I = (ai_inspector *)lua_newuserdatauv(L, sizeof *I, 0);
  memset(I, 0, sizeof *I);
  ai_clock_init();
  I->strings = ai_strings_new();
  if (I->strings == NULL || !ai_timeline_init(&I->tl, DEFAULT_RING, I->strings)) {
    ai_strings_free(I->strings);
    luaL_error(L, "not enough memory for the async_inspect timeline");
  }
  ai_registry_init(&I->reg, DEFAULT_MAX_TASKS, I->strings, I);
  /* pseudo-records: the main thread's (so every thread leads to I) and the
  ** one sampled-out coroutines point to; both have id 0 */
  I->main_rec.owner = I->ignored_rec.owner = I;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  I->main_rec.co = lua_tothread(L, -1);
  lua_pop(L, 1);
  ai_hist_init(&I->resume_hist);
  I->enabled = 1;
  I->locations = 1;
  I->tracebacks = 1;
  I->sample_threshold = UINT32_MAX;
  I->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)I;
  I->long_poll_ticks = ns_to_ticks(10000000u); /* 10 ms */
  I->start = ai_now();
  if (luaL_newmetatable(L, "async_inspect.inspector")) {
    lua_pushcfunction(L, inspector_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushliteral(L, "async_inspect.inspector");
    lua_setfield(L, -2, "__name");
  }
  lua_setmetatable(L, -2);
  ai_hooks_check_layout(I, L);
  ai_hooks_learn_typename(I, L);
  return I;
}

static void new_metatables(lua_State *L) {
  static const luaL_Reg hist_methods[] = {
    {"record", l_hist_record}, {"merge", l_hist_merge},
    {"quantile", l_hist_quantile}, {"summary", l_hist_summary}, {NULL, NULL}};
  if (luaL_newmetatable(L, SENTINEL_MT)) {
    lua_pushcfunction(L, ai_sentinel_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, EPOCH_MT)) {
    lua_pushcfunction(L, epoch_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, HIST_MT)) {
    luaL_newlib(L, hist_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
}

/* C API for schedulers that call lua_resume themselves (async_inspect.h):
** found by them in the registry as a light userdata */
static int api_resume(lua_State *L, lua_State *co, int narg, int *nres) {
  ai_inspector *I;
  lua_getfield(L, LUA_REGISTRYINDEX, INSPECTOR_KEY);
  I = (ai_inspector *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (I == NULL || I->closed) return lua_resume(co, L, narg, nres);
  return ai_resume_raw(I, L, co, narg, nres);
}

static const async_inspect_api c_api = {ASYNC_INSPECT_API_VERSION, api_resume};

static const luaL_Reg funcs[] = {
  {"tasks", l_tasks}, {"task", l_task}, {"current", l_current}, {"track", l_track},
  {"name", l_name}, {"point", l_point}, {"await_point", l_await_point},
  {"wake", l_wake}, {"set_wait", l_set_wait},
  {"block_open", l_block_open}, {"finish", l_finish},
  {"iter_events", l_iter_events}, {"event_range", l_event_range},
  {"now", l_now}, {"stats", l_stats}, {"enable", l_enable}, {"enabled", l_enabled},
  {"reset", l_reset}, {"configure", l_configure}, {"settings", l_settings},
  {"thread_of", l_thread_of}, {"threads", l_threads},
  {"creation_trace", l_creation_trace}, {"location_names", l_location_names},
  {"resume_hist", l_resume_hist},
  {"long_polls", l_long_polls},
  {"spawned", l_spawned}, {"pin", l_pin},
  {"sched_yield", l_sched_yield}, {"sched_resume", l_sched_resume},
  /* wait-for graph */
  {"wg_new", l_wg_new}, {"wg_free", l_wg_free}, {"wg_acquire", l_wg_acquire},
  {"wg_release", l_wg_release}, {"wg_wait", l_wg_wait}, {"wg_grant", l_wg_grant},
  {"wg_unwait", l_wg_unwait}, {"wg_wait_task", l_wg_wait_task},
  {"wg_resources", l_wg_resources}, {"wg_resource", l_wg_resource},
  {"wg_stats", l_wg_stats},
  {NULL, NULL}};

/* every thread copies the main thread's extraspace when it is created, so
** pointing it to the main pseudo-record leads any thread to the inspector.
** Lua leaves the main thread's area uninitialised (lua_newstate), so there
** is nothing to check: async_inspect owns LUA_EXTRASPACE (docs/c-api.md). */
static void claim_extraspace(ai_inspector *I) {
  ai_task **main_extra = ai_extra(I->main_rec.co);
  /* threads created before now copied this value: remember it, never
  ** dereference it (ai_extra_record) */
  if (*main_extra != NULL && *main_extra != &I->main_rec) I->reg.foreign = *main_extra;
  *main_extra = &I->main_rec;
}

/* a new table with weak `mode` ("k" or "v"), narr array slots */
static void push_weak_table(lua_State *L, int narr, const char *mode) {
  lua_createtable(L, narr, 0);
  lua_createtable(L, 0, 1);
  lua_pushstring(L, mode);
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
}

/* the bindings of `list` into the table on top, each a closure over the
** inspector and the anchor table */
static void set_bindings(lua_State *L, const luaL_Reg *list, int ins, int anchors) {
  for (; list->name != NULL; list++) {
    lua_pushvalue(L, ins);
    lua_pushvalue(L, anchors);
    lua_pushcclosure(L, list->func, 2);
    lua_setfield(L, -2, list->name);
  }
}

__attribute__((visibility("default"))) int luaopen_async_inspect_core(lua_State *L) {
  int ins, anchors, watch;
  int i;
  ai_inspector *I;
  new_metatables(L);
  if (lua_getfield(L, LUA_REGISTRYINDEX, INSPECTOR_KEY) != LUA_TUSERDATA) {
    lua_pop(L, 1);
    I = new_inspector(L);
    claim_extraspace(I);
    lua_newtable(L); /* record chunks, freed by Lua only when the state closes */
    lua_setfield(L, LUA_REGISTRYINDEX, AI_CHUNKS_KEY);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, INSPECTOR_KEY);
    arm_epoch(L, lua_gettop(L));
    lua_pushlightuserdata(L, (void *)&c_api);
    lua_setfield(L, LUA_REGISTRYINDEX, ASYNC_INSPECT_API_KEY);
  } else {
    I = (ai_inspector *)lua_touserdata(L, -1);
  }
  ins = lua_gettop(L);
  /* the anchor table: weak keys (coroutines), values are their sentinels */
  push_weak_table(L, 0, "k");
  anchors = lua_gettop(L);
  lua_pushvalue(L, anchors); /* for resumes from C schedulers (anchor_thread) */
  lua_setfield(L, LUA_REGISTRYINDEX, AI_ANCHORS_KEY);
  /* the watch table (hooks.c): weak values, coroutines that never ran; one
  ** per state, kept when the module is opened again (its slots are in use) */
  if (lua_getfield(L, LUA_REGISTRYINDEX, AI_WATCH_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    push_weak_table(L, 256, "v");
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, AI_WATCH_KEY);
  }
  watch = lua_gettop(L);

  lua_createtable(L, 0, 60);
  set_bindings(L, funcs, ins, anchors);
  set_bindings(L, sched_funcs, ins, anchors);
  lua_pushcfunction(L, l_hist_new);
  lua_setfield(L, -2, "hist");

  /* the hooks: create, wrap, resume, close */
  lua_createtable(L, 0, AI_NHOOKS);
  lua_pushvalue(L, ins);
  lua_pushvalue(L, anchors);
  lua_pushvalue(L, watch);
  I->trusted = I->reg.foreign == NULL && I->fast_sites && AI_CLOCK_TRUSTED_OK();
  ai_push_hooks(L, I->trusted);
  for (i = AI_NHOOKS - 1; i >= 0; i--) lua_setfield(L, -(i + 2), ai_hook_names[i]);
  lua_setfield(L, -2, "hooks");
  return 1;
}

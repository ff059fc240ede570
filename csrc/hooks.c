/*
** hooks.c: the replacements of coroutine.create, wrap, resume and close.
**
** They behave exactly as Lua 5.4's own (lcorolib.c): same results, same
** error objects and messages, same status rules; on top of that they record
** task records and events. The inspector is the first upvalue of every hook
** closure, the weak-keyed anchor table the second, the metatable of
** collection sentinels the third.
**
** Hot path (resume + the yield seen from the resumer's side): one O(1)
** lookup, a few stores, two time stamps, two fixed-size events. No Lua
** allocation, no table access, no formatting, except once per task at its
** first yield (the collection sentinel) and once per yield site (location).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"

#include "ai_internal.h"

#define UV_INSPECTOR lua_upvalueindex(1)
#define UV_ANCHORS lua_upvalueindex(2)
#define UV_WATCH lua_upvalueindex(3)

/* ---------------------------------------------------------------------- */
/* closing a coroutine: the API changed within 5.4                          */
/* ---------------------------------------------------------------------- */

int ai_closethread(lua_State *co, lua_State *from) {
#if LUA_VERSION_RELEASE_NUM >= 50406
  return lua_closethread(co, from);
#elif LUA_VERSION_RELEASE_NUM >= 50405
  (void)from;
  return lua_resetthread(co, from);
#else
  (void)from;
  return lua_resetthread(co);
#endif
}

/* ---------------------------------------------------------------------- */
/* yield locations                                                          */
/* ---------------------------------------------------------------------- */

/* Lua 5.4.0 to 5.4.8 lay a CallInfo out as func, top, previous, next, then
** the union whose Lua member starts with savedpc; a Lua closure as the GC
** header, nupvalues, gclist, then its prototype. Both are private layouts,
** verified at load time by ai_hooks_check_layout(); when a check fails the
** cache is not used and every lookup goes through lua_getinfo. */
struct ci_prefix {
  void *func, *top, *previous, *next;
  const void *savedpc; /* Lua frame: next instruction; C frame: continuation */
};

struct closure_prefix {
  void *next;
  unsigned char tt, marked, nupvalues;
  void *gclist;
  const void *proto;
};

/* lua_State starts with the GC header, status, allowhook, nci, then top,
** l_G, ci and (5.4.2 to 5.4.8) stack_last; checked at load like the
** layouts above. A stack slot is AI_SLOT bytes. */
struct state_prefix {
  void *next;
  unsigned char tt, marked, status, allowhook;
  unsigned short nci;
  const char *top;
  void *l_G;
  const struct ci_prefix *ci;
  const char *stack_last;
};

#define state_of(L) ((const struct state_prefix *)(const void *)(L))
#define AI_SLOT 16

/* a stack value: the object, then the tag byte; a function's values start
** one slot above its CallInfo's func (checked at load) */
struct value_prefix {
  const void *gc;
  unsigned char tt;
};

/* the value at index idx (> 0, at most the top) of L's running function */
static inline const struct value_prefix *value_at(lua_State *L, int idx) {
  return (const struct value_prefix *)(const void *)((const char *)state_of(L)->ci->func +
                                                     (size_t)idx * AI_SLOT);
}

/* the frame of ci runs a Lua function (its savedpc is a pc) */
static inline int lua_frame(const ai_inspector *I, const struct ci_prefix *ci) {
  return ((const struct value_prefix *)ci->func)->tt == I->lcl_tag;
}

/* lua_gettop in place; fast: the layouts hold */
static inline __attribute__((always_inline)) int gettop_in(lua_State *L, int fast) {
  if (fast) {
    const struct state_prefix *s = state_of(L);
    return (int)((s->top - (const char *)s->ci->func) / AI_SLOT) - 1;
  }
  return lua_gettop(L);
}

/* lua_checkstack(L, n) without the call where it would do nothing: room for
** n more slots below stack_last and the frame's top already that high (the
** call's own test and its frame adjustment). fast: the layouts hold. */
static inline __attribute__((always_inline)) int checkstack_in(lua_State *L, int n, int fast) {
  if (fast) {
    const struct state_prefix *s = state_of(L);
    ptrdiff_t need = (ptrdiff_t)n * AI_SLOT;
    if (l_likely(s->stack_last - s->top > need && (const char *)s->ci->top >= s->top + need))
      return 1;
  }
  return lua_checkstack(L, n);
}

/* lua_status without a call, once the layout is verified */
/* fast: the hook family chosen at load knows the layouts hold (FAST_HOOKS) */
static inline __attribute__((always_inline)) int fast_status(const ai_inspector *I, lua_State *co,
                                                              int fast) {
  if (fast) return state_of(co)->status;
  return l_likely(I->state_layout_ok) ? state_of(co)->status : lua_status(co);
}

static const void *frame_key(const lua_Debug *ar) {
  return ((const struct ci_prefix *)(const void *)ar->i_ci)->savedpc;
}

static const void *proto_key(lua_State *L, int idx) {
  return ((const struct closure_prefix *)lua_topointer(L, idx))->proto;
}

static ai_str intern_location(ai_inspector *I, const char *src, int line) {
  char buf[LUA_IDSIZE + 32];
  int n = snprintf(buf, sizeof buf, "%s:%d", src, line);
  if (n < 0) return 0;
  if ((size_t)n >= sizeof buf) n = (int)sizeof buf - 1;
  return ai_strings_intern(I->strings, buf, (size_t)n, 1);
}

/* location id -> function name id, written on cache misses only */
static void locfn_set(ai_inspector *I, ai_str loc, const char *name) {
  if (loc == 0 || name == NULL) return;
  if (loc >= I->locfn_cap) {
    uint32_t ncap = I->locfn_cap ? I->locfn_cap : 256;
    ai_str *n;
    while (ncap <= loc) ncap *= 2;
    n = (ai_str *)realloc(I->locfn, ncap * sizeof *n);
    if (n == NULL) return;
    memset(n + I->locfn_cap, 0, (ncap - I->locfn_cap) * sizeof *n);
    I->locfn = n;
    I->locfn_cap = ncap;
  }
  if (I->locfn[loc] == 0)
    I->locfn[loc] = ai_strings_intern(I->strings, name, strlen(name), 1);
}

ai_str ai_locfn_get(const ai_inspector *I, ai_str loc) {
  return loc < I->locfn_cap ? I->locfn[loc] : 0;
}

/* the name of a Lua frame's function as tracebacks give it: the name the
** call site uses, else "main chunk" or "function <source:line>" */
static const char *frame_name(const lua_Debug *ar, char *buf, size_t size) {
  if (ar->name != NULL) return ar->name;
  if (*ar->what == 'm') return "main chunk";
  if (snprintf(buf, size, "function <%s:%d>", ar->short_src, ar->linedefined) < 0) return NULL;
  return buf;
}

/* location of the first Lua frame at or above `level`: the slow path */
static ai_str locate_slow(ai_inspector *I, lua_State *co, int level, int *is_c) {
  lua_Debug ar;
  *is_c = 0;
  for (; lua_getstack(co, level, &ar); level++) {
    if (!lua_getinfo(co, "Sln", &ar)) break;
    if (ar.currentline >= 0) {
      char buf[LUA_IDSIZE + 32];
      ai_str loc = intern_location(I, ar.short_src, ar.currentline);
      locfn_set(I, loc, frame_name(&ar, buf, sizeof buf));
      return loc;
    }
    *is_c = 1; /* a C function (pcall, a C library) stands between */
  }
  return 0;
}

static inline uint32_t key_hash(const void *key) {
  uintptr_t p = (uintptr_t)key;
  return (uint32_t)((p >> 2) ^ (p >> 13)) & (AI_SITE_CACHE - 1);
}

/* the caches of locations (sites by a Lua frame's saved pc, definitions by
** prototype): an entry is valid for one GC epoch, so code freed by a
** collection cannot hand its address, and a stale location, to new code */
static inline const ai_site *cache_hit(const ai_inspector *I, const ai_site *cache,
                                       const void *key) {
  const ai_site *s = &cache[key_hash(key)];
  return (s->key == key && s->epoch == I->epoch && key != NULL) ? s : NULL;
}

static void cache_put(ai_inspector *I, ai_site *cache, const void *key, ai_str loc) {
  ai_site *s = &cache[key_hash(key)];
  s->key = key;
  s->epoch = I->epoch;
  s->loc = loc;
}

/* where the frame at `level` of L stands now: for a suspended coroutine
** level 1 is the caller of the yielding C function; for a running thread
** inside a hook level 1 is the Lua caller. Cached by the frame's saved pc. */
ai_str ai_site_location(ai_inspector *I, lua_State *L, int level) {
  lua_Debug ar;
  const ai_site *s;
  const void *pc;
  int is_c;
  ai_str loc;
  const struct ci_prefix *ci;
  if (!I->value_layout_ok) return locate_slow(I, L, level, &is_c); /* implies ci_layout_ok */
  if (I->state_layout_ok) { /* lua_getstack's walk, without the call */
    int n = level;
    ci = state_of(L)->ci;
    while (n > 0 && ci->previous != NULL) {
      ci = (const struct ci_prefix *)ci->previous;
      n--;
    }
    /* the base CallInfo (no previous) is not a frame */
    if (n > 0 || ci->previous == NULL) return locate_slow(I, L, level - 1, &is_c);
  } else {
    if (!lua_getstack(L, level, &ar)) return locate_slow(I, L, level - 1, &is_c);
    ci = (const struct ci_prefix *)(const void *)ar.i_ci;
  }
  /* a C frame's savedpc field is its continuation, often stale (set only by
  ** a yieldable lua_callk): it is no key, the slow path finds the Lua frame */
  if (!lua_frame(I, ci)) return locate_slow(I, L, level, &is_c);
  pc = ci->savedpc;
  if (l_likely((s = cache_hit(I, I->sites, pc)) != NULL)) return s->loc;
  loc = locate_slow(I, L, level, &is_c);
  if (!is_c && pc != NULL) cache_put(I, I->sites, pc, loc); /* C frames share keys */
  return loc;
}

/* where the caller of co's running C function stands: a suspended
** coroutine's yield site, or a hook's caller. The cache hit inline (three
** loads to the caller's saved pc, one probe); anything else goes through
** ai_site_location */
static inline __attribute__((always_inline)) ai_str caller_site(ai_inspector *I, lua_State *co,
                                                                int fast) {
  if (fast || l_likely(I->fast_sites)) {
    const struct ci_prefix *up = (const struct ci_prefix *)state_of(co)->ci->previous;
    if (l_likely(up->previous != NULL && lua_frame(I, up))) {
      const ai_site *s = cache_hit(I, I->sites, up->savedpc);
      if (l_likely(s != NULL)) return s->loc;
    }
  }
  return ai_site_location(I, co, 1);
}

/* "source:line" where the function at idx is defined: the default task
** name; cached by prototype like yield sites. A Lua closure at a positive
** index is read in place when the layouts allow (no API call on a hit). */
ai_str ai_function_location(ai_inspector *I, lua_State *L, int idx) {
  lua_Debug ar;
  const ai_site *s;
  const void *proto = NULL;
  ai_str loc;
  if (l_likely(I->value_layout_ok && idx > 0) && value_at(L, idx)->tt == I->lcl_tag) {
    proto = ((const struct closure_prefix *)value_at(L, idx)->gc)->proto;
  } else {
    if (lua_iscfunction(L, idx)) return ai_strings_intern(I->strings, "[C]", 3, 1);
    if (I->cl_layout_ok) proto = proto_key(L, idx);
  }
  if (l_likely((s = cache_hit(I, I->protos, proto)) != NULL)) return s->loc;
  lua_pushvalue(L, idx);
  if (!lua_getinfo(L, ">S", &ar)) return 0;
  loc = intern_location(I, ar.short_src, ar.linedefined);
  if (proto != NULL) cache_put(I, I->protos, proto, loc);
  return loc;
}

/* yields of a known test function reveal whether the private layouts
** hold: the same call site must give the same key, another site another */
static int layout_yield(lua_State *L) { return lua_yield(L, 0); }

/* a fresh thread, pushed on L, whose body is `code` (a chunk that
** receives a yielding C function and returns the body); NULL if it fails
** to load */
static lua_State *layout_thread(lua_State *L, const char *code, size_t len) {
  lua_State *co;
  if (luaL_loadbuffer(L, code, len, "=layout") != LUA_OK) {
    lua_pop(L, 1);
    return NULL;
  }
  lua_pushcfunction(L, layout_yield);
  lua_call(L, 1, 1);
  co = lua_newthread(L);
  lua_insert(L, -2);
  lua_xmove(L, co, 1);
  return co;
}

static int check_ci_layout(lua_State *L) {
  static const char code[] =
      "local y = ...\n"
      "return function()\n"
      "  for _ = 1, 2 do y() end\n"
      "  y()\n"
      "end\n";
  const void *keys[3];
  int lines[3], i, nres, ok = 1;
  lua_State *co = layout_thread(L, code, sizeof code - 1);
  if (co == NULL) return 0;
  for (i = 0; i < 3 && ok; i++) {
    lua_Debug ar;
    ok = lua_resume(co, L, 0, &nres) == LUA_YIELD && lua_getstack(co, 1, &ar) &&
         lua_getinfo(co, "l", &ar);
    if (ok) {
      keys[i] = frame_key(&ar);
      lines[i] = ar.currentline;
    }
  }
  ok = ok && lines[0] == 3 && lines[1] == 3 && lines[2] == 4 && keys[0] != NULL &&
       keys[0] == keys[1] && keys[0] != keys[2] &&
       (const char *)keys[2] > (const char *)keys[0] &&
       (const char *)keys[2] - (const char *)keys[0] < 256;
  lua_pop(L, 1); /* the thread */
  return ok;
}

static int check_closure_layout(lua_State *L) {
  static const char code[] =
      "local function mk() return function() return 1 end end\n"
      "return mk(), mk(), function() return 2 end\n";
  int ok;
  if (luaL_loadbuffer(L, code, sizeof code - 1, "=layout") != LUA_OK) {
    lua_pop(L, 1);
    return 0;
  }
  lua_call(L, 0, 3);
  ok = proto_key(L, -3) != NULL && proto_key(L, -3) == proto_key(L, -2) &&
       proto_key(L, -3) != proto_key(L, -1) && proto_key(L, -3) != lua_topointer(L, -3);
  lua_pop(L, 3);
  return ok;
}

/* value_at must find what the API finds: the three Lua closures (one tag,
** learnt here), a light C function and a C closure (other tags), and
** nothing else where a value is not a Lua closure. L runs a C function. */
static int check_value_layout(ai_inspector *I, lua_State *L) {
  static const char code[] = "return function() end, function() end, print\n";
  int top, i, ok;
  unsigned char tag;
  if (luaL_loadbuffer(L, code, sizeof code - 1, "=layout") != LUA_OK) {
    lua_pop(L, 1);
    return 0;
  }
  lua_call(L, 0, 3);
  lua_pushcfunction(L, layout_yield);
  lua_pushboolean(L, 1);
  lua_pushcclosure(L, layout_yield, 1);
  top = lua_gettop(L);
  tag = value_at(L, top - 4)->tt;
  ok = value_at(L, top)->gc == lua_topointer(L, top) && gettop_in(L, 1) == top;
  for (i = top - 4; i <= top; i++) {
    int lua_fn = lua_isfunction(L, i) && !lua_iscfunction(L, i);
    ok = ok && (value_at(L, i)->tt == tag) == lua_fn &&
         (!lua_fn || value_at(L, i)->gc == lua_topointer(L, i));
  }
  lua_pop(L, 5);
  I->lcl_tag = tag;
  /* a thread: its tag, unlike a Lua closure's, and its lua_State */
  lua_pushthread(L);
  I->thread_tag = value_at(L, lua_gettop(L))->tt;
  ok = ok && I->thread_tag != tag && value_at(L, lua_gettop(L))->gc == (const void *)L;
  lua_pushnil(L);
  ok = ok && value_at(L, lua_gettop(L))->tt != I->thread_tag;
  lua_pop(L, 2);
  return ok;
}

/* lua_tothread(L, 1) in place; top: L's top; fast: the layouts hold */
static inline __attribute__((always_inline)) lua_State *first_thread(const ai_inspector *I,
                                                                      lua_State *L, int top,
                                                                      int fast) {
  if (fast) {
    const struct value_prefix *v;
    if (top < 1) return NULL; /* beyond the top the stack holds leftovers */
    v = value_at(L, 1);
    return v->tt == I->thread_tag ? (lua_State *)(uintptr_t)v->gc : NULL;
  }
  return lua_tothread(L, 1);
}

/* top, stack_last, the frame's top and the slot size read through
** state_prefix and ci_prefix must behave as lua_checkstack sees them: a
** push moves top by one slot; asking for one slot less than the room below
** stack_last neither grows the stack nor needs to, asking for the room
** grows it; and the frame's top ends where lua_checkstack puts it */
static int check_stack_layout(lua_State *L) {
  lua_State *co = lua_newthread(L);
  const struct state_prefix *s = state_of(co);
  const char *top = s->top, *last = s->stack_last;
  ptrdiff_t room;
  int ok;
  lua_pushnil(co);
  ok = s->top == top + AI_SLOT;
  room = (last - s->top) / AI_SLOT;
  ok = ok && last > s->top && (last - s->top) % AI_SLOT == 0 && room > 1 && room < 1000;
  ok = ok && lua_checkstack(co, (int)room - 1) && s->stack_last == last &&
       (const char *)s->ci->top >= s->top + (room - 1) * AI_SLOT;
  ok = ok && lua_checkstack(co, (int)room) && s->stack_last != last &&
       (const char *)s->ci->top == s->top + room * AI_SLOT &&
       s->stack_last - s->top > room * AI_SLOT;
  lua_pop(L, 1);
  return ok;
}

/* the status byte and the ci pointer read through state_prefix must agree
** with lua_status and lua_getstack on threads in several states */
static int check_state_layout(lua_State *L) {
  static const char code[] = "local y = ...\nreturn function() y() end\n";
  lua_Debug ar;
  lua_State *co = layout_thread(L, code, sizeof code - 1);
  int nres, ok;
  if (co == NULL) return 0;
  ok = state_of(L)->status == lua_status(L) && state_of(co)->status == LUA_OK;
  ok = ok && lua_resume(co, L, 0, &nres) == LUA_YIELD && state_of(co)->status == LUA_YIELD;
  /* level 0 is the yielding C function: its CallInfo is co->ci */
  ok = ok && lua_getstack(co, 0, &ar) && (const void *)ar.i_ci == (const void *)state_of(co)->ci;
  ok = ok && lua_getstack(co, 1, &ar) &&
       (const void *)ar.i_ci == (const void *)state_of(co)->ci->previous;
  lua_pop(L, 1);
  return ok && check_stack_layout(L);
}

int ai_hooks_check_layout(ai_inspector *I, lua_State *L) {
  I->state_layout_ok = check_state_layout(L);
  I->ci_layout_ok = check_ci_layout(L);
  I->cl_layout_ok = check_closure_layout(L);
  I->value_layout_ok = I->cl_layout_ok && I->ci_layout_ok && check_value_layout(I, L);
  /* a site key is a Lua frame's pc: telling Lua frames needs the value layout */
  I->fast_sites = I->state_layout_ok && I->value_layout_ok; /* every layout */
  return I->fast_sites;
}

/* ---------------------------------------------------------------------- */
/* task life cycle                                                          */
/* ---------------------------------------------------------------------- */

/* the innermost open ai.task() block of L, else the task of L itself */
uint64_t ai_current_task(ai_inspector *I, lua_State *L) {
  uint32_t i;
  ai_task *t;
  for (i = I->block_top; i > 0; i--)
    if (I->blocks[i - 1].thread == L) return I->blocks[i - 1].id;
  t = ai_registry_of(&I->reg, L);
  return t ? t->id : 0;
}

/* sampling: decided once per task, at its creation (xorshift64) */
static int sampled_out(ai_inspector *I) {
  uint64_t x;
  if (I->sample_threshold == UINT32_MAX) return 0;
  x = I->rng;
  x ^= x << 13; x ^= x >> 7; x ^= x << 17;
  I->rng = x;
  return (uint32_t)(x >> 32) >= I->sample_threshold;
}

/* records are allocated as Lua userdata, kept in a registry table: Lua frees
** them only after every finaliser ran, so a thread's extraspace never
** points to freed memory, even while the state closes */
int ai_grow_registry(ai_inspector *I, lua_State *L) {
  ai_task *chunk;
  if (!lua_checkstack(L, 3)) return 0;
  if (lua_getfield(L, LUA_REGISTRYINDEX, AI_CHUNKS_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    return 0;
  }
  /* not cleared: ai_registry_add initialises a record when it takes its
  ** slot, so the pages of a fresh chunk are touched only as it fills */
  chunk = (ai_task *)lua_newuserdatauv(L, AI_CHUNK * sizeof(ai_task), 0);
  if (!ai_registry_add_chunk(&I->reg, chunk)) {
    lua_pop(L, 2);
    return 0;
  }
  lua_rawseti(L, -2, (lua_Integer)I->reg.nchunks);
  lua_pop(L, 1);
  return 1;
}

/* a new record for co (NULL for a block); fn_idx: the function in L;
** site_level: the level of L that created it (0: unknown) */
ai_task *ai_track(ai_inspector *I, lua_State *L, lua_State *co, int fn_idx, int site_level) {
  ai_tick now;
  ai_task *t;
  if (l_unlikely(ai_registry_needs_chunk(&I->reg)) && !ai_grow_registry(I, L)) return NULL;
  now = ai_now();
  t = ai_registry_add(&I->reg, co, ai_current_task(I, L), now);
  if (t == NULL) return NULL;
  if (fn_idx != 0) t->created_fn = ai_function_location(I, L, fn_idx);
  if (site_level == 1) t->created_at = caller_site(I, L, 0); /* a hook's caller */
  else if (site_level > 1) t->created_at = ai_site_location(I, L, site_level);
  if (l_unlikely(I->creation_traces) && site_level > 0) ai_capture_creation(I, L, t, site_level);
  ai_timeline_push(&I->tl, AI_EV_SPAWN, t->id, t->parent, t->created_at, 0, now);
  return t;
}

void ai_finish(ai_inspector *I, ai_task *t, uint8_t state, ai_str detail, ai_tick now) {
  static const uint8_t kinds[AI_STATE_COUNT] = {
    0, 0, 0, 0, AI_EV_COMPLETE, AI_EV_FAIL, AI_EV_CANCEL, AI_EV_DROP };
  if (t->flags & AI_TF_WATCHED) ai_unwatch(I, t); /* ended: nothing to watch */
  t->state = state;
  t->last_change = now; /* the end time of a finished task */
  if (state != AI_DROPPED && state != AI_CANCELLED) t->where = 0;
  if (detail != 0) { /* the record keeps one reference, the event another */
    ai_strings_ref(I->strings, detail);
    ai_strings_release(I->strings, t->error);
    t->error = detail;
  }
  ai_timeline_push(&I->tl, kinds[state], t->id, 0, 0, detail, now);
  ai_registry_retire(&I->reg, t);
}

static ai_str intern_text(ai_inspector *I, const char *s, size_t len) {
  return ai_strings_intern(I->strings, s, len > 4096 ? 4096 : len, 0);
}

/* error text of a failed coroutine, never calling a metamethod */
ai_str ai_error_text(ai_inspector *I, lua_State *L, int idx) {
  char buf[64];
  size_t len;
  const char *s;
  int n;
  switch (lua_type(L, idx)) {
    case LUA_TSTRING:
      s = lua_tolstring(L, idx, &len);
      return intern_text(I, s, len);
    case LUA_TNUMBER: { /* convert a copy, never the error object itself */
      ai_str id;
      lua_pushvalue(L, idx);
      s = lua_tolstring(L, -1, &len);
      id = intern_text(I, s, len);
      lua_pop(L, 1);
      return id;
    }
    case LUA_TNIL: case LUA_TBOOLEAN:
      s = lua_isnil(L, idx) ? "nil" : lua_toboolean(L, idx) ? "true" : "false";
      return intern_text(I, s, strlen(s));
    default:
      n = snprintf(buf, sizeof buf, "(error object is a %s value)", luaL_typename(L, idx));
      return intern_text(I, buf, n > 0 ? (size_t)n : 0);
  }
}

/* traceback of a coroutine that just failed: its stack is still intact */
static void capture_traceback(ai_inspector *I, lua_State *L, lua_State *co, ai_task *t) {
  const char *tb;
  size_t len;
  if (!lua_checkstack(L, 2)) return;
  luaL_traceback(L, co, NULL, 0);
  tb = lua_tolstring(L, -1, &len);
  t->traceback = ai_strings_intern(I->strings, tb, len > 16384 ? 16384 : len, 0);
  lua_pop(L, 1);
}

/* First yield of a task: a sentinel in the weak-keyed anchor table tells
** when the coroutine is collected while suspended. Once per task.
** anchors[co] = sentinel; the three values are at these indices of L (the
** hooks' upvalues, or absolute stack slots for a C scheduler's resume). */
static void anchor_with(lua_State *L, int co_idx, ai_task *t, int anchors_idx, int ins_idx,
                        int mt_idx) {
  struct ai_sentinel *s;
  if (!lua_checkstack(L, 4)) return;
  lua_pushvalue(L, anchors_idx);
  lua_pushvalue(L, co_idx);
  s = (struct ai_sentinel *)lua_newuserdatauv(L, sizeof *s, 1);
  s->slot = t->slot;
  s->id = t->id;
  lua_pushvalue(L, ins_idx);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, mt_idx);
  lua_setmetatable(L, -2);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  t->flags |= AI_TF_ANCHORED;
}

static void anchor(lua_State *L, int co_idx, ai_task *t) {
  if (!lua_checkstack(L, 1)) return;
  co_idx = lua_absindex(L, co_idx);
  luaL_getmetatable(L, AI_SENTINEL_MT); /* once per task: from the registry */
  anchor_with(L, co_idx, t, UV_ANCHORS, UV_INSPECTOR, lua_gettop(L));
  lua_pop(L, 1);
}

/* A coroutine that never ran has no sentinel (one per create would cost
** more than the rest of create and resume together). It is watched
** instead: it takes a slot w of the watch table, a weak-valued array where
** watch[w] = co, and I->watch[w] names its record. The collector clears
** watch[w] when co dies; a sweep after collections finds such slots and
** drops their records. A slot is given back at the first resume (or end)
** without touching the table: the stale weak value keeps nothing alive and
** is overwritten when the slot is taken again. While a record is watched,
** its resume_start (unused until the first resume sets it) holds w. */
#define AI_WATCH_FREE 0x80000000u

/* room for one more slot: the array grows geometrically (rare) */
static int __attribute__((noinline)) grow_watch(ai_inspector *I) {
  uint32_t cap = I->watch_cap ? I->watch_cap * 2 : 256, *n;
  if (cap >= AI_WATCH_FREE || (n = realloc(I->watch, cap * sizeof *n)) == NULL) return 0;
  I->watch = n;
  I->watch_cap = cap;
  return 1;
}

static inline uint32_t take_watch_slot(ai_inspector *I) {
  uint32_t w = I->watch_free;
  if (w != 0) {
    I->watch_free = I->watch[w] & ~AI_WATCH_FREE;
    return w;
  }
  if (l_unlikely(I->watch_top + 1 >= I->watch_cap) && !grow_watch(I)) return 0;
  return ++I->watch_top; /* slot 0 is never used: 0 means none */
}

/* co_idx: an absolute index; the coroutine goes to watch[w] */
static inline void watch_at(ai_inspector *I, lua_State *L, int co_idx, ai_task *t, int watch_idx) {
  uint32_t w = take_watch_slot(I);
  if (l_unlikely(w == 0)) return; /* out of memory: it stays pending, as without watching */
  lua_pushvalue(L, co_idx);
  lua_rawseti(L, watch_idx, (lua_Integer)w);
  I->watch[w] = t->slot;
  t->resume_start = w;
  t->flags |= AI_TF_WATCHED;
  I->watched++;
  I->watch_new++;
}

/* watch a pending record from outside the hooks (adopted coroutines) */
void ai_watch(ai_inspector *I, lua_State *L, int co_idx, ai_task *t) {
  if (t->state != AI_PENDING || (t->flags & (AI_TF_WATCHED | AI_TF_BLOCK))) return;
  if (!lua_checkstack(L, 3)) return;
  co_idx = lua_absindex(L, co_idx);
  if (lua_getfield(L, LUA_REGISTRYINDEX, AI_WATCH_KEY) == LUA_TTABLE)
    watch_at(I, L, co_idx, t, lua_gettop(L));
  lua_pop(L, 1);
}

/* the caller holds co until its first resume (a scheduler's queue): it
** cannot be collected before it runs, so its slot is given back now */
void ai_watch_held(ai_inspector *I, lua_State *co) {
  ai_task *t = ai_registry_of(&I->reg, co);
  if (t != NULL && (t->flags & AI_TF_WATCHED)) ai_unwatch(I, t);
}

void ai_unwatch(ai_inspector *I, ai_task *t) {
  uint32_t w = (uint32_t)t->resume_start;
  t->flags &= (uint8_t)~AI_TF_WATCHED;
  if (--I->watched == 0) { /* every slot is free: start again from the first, so
                              a burst of pending coroutines long ago does not
                              make each sweep walk its high-water mark */
    I->watch_top = I->watch_free = 0;
    return;
  }
  I->watch[w] = I->watch_free | AI_WATCH_FREE;
  I->watch_free = w;
}

/* drop the watched records whose coroutine the collector took: O(slots
** ever in use at once), run after collections (module.c) */
void ai_sweep_watched(ai_inspector *I, lua_State *L) {
  uint32_t w;
  int top;
  I->swept_epoch = I->epoch;
  I->watch_new = 0;
  if (I->watched == 0 || !lua_checkstack(L, 2)) return;
  top = lua_gettop(L);
  if (lua_getfield(L, LUA_REGISTRYINDEX, AI_WATCH_KEY) != LUA_TTABLE) {
    lua_settop(L, top);
    return;
  }
  for (w = 1; w <= I->watch_top && I->watched > 0; w++) {
    ai_task *t;
    if (I->watch[w] & AI_WATCH_FREE) continue;
    if (lua_rawgeti(L, top + 1, (lua_Integer)w) != LUA_TNIL) {
      lua_pop(L, 1);
      continue;
    }
    lua_pop(L, 1);
    t = ai_registry_slot(&I->reg, I->watch[w]);
    t->co = NULL; /* collected: its address may now belong to a new thread */
    ai_finish(I, t, AI_DROPPED, 0, ai_now()); /* gives the slot back */
  }
  lua_settop(L, top);
}

/* before a read: the records agree with the last collection */
void ai_settle_watched(ai_inspector *I, lua_State *L) {
  if (I->watched > 0 && I->swept_epoch != I->epoch) ai_sweep_watched(I, L);
}

/* __gc of a sentinel: its coroutine is gone */
int ai_sentinel_gc(lua_State *L) {
  struct ai_sentinel *s = (struct ai_sentinel *)lua_touserdata(L, 1);
  ai_inspector *I;
  ai_task *t;
  lua_getiuservalue(L, 1, 1);
  I = (ai_inspector *)lua_touserdata(L, -1);
  if (I == NULL || I->closed || s->slot >= I->reg.top) return 0;
  t = ai_registry_slot(&I->reg, s->slot);
  if (t->id != s->id) return 0;
  t->co = NULL; /* the address may now be reused by a new thread */
  if (!ai_state_finished(t->state)) ai_finish(I, t, AI_DROPPED, 0, ai_now());
  return 0;
}

/* a coroutine we have no record of (created before install, while
** disabled, or from C): track it from its first resume through us */
ai_task *ai_adopt(ai_inspector *I, lua_State *L, lua_State *co, int site_level, int fn_idx) {
  lua_Debug ar;
  ai_task *t;
  int st = lua_status(co);
  if (ai_extra_record(&I->reg, co) == &I->ignored_rec) return NULL;
  if (sampled_out(I)) { /* decided once, at the first sight of it */
    *ai_extra(co) = &I->ignored_rec;
    return NULL;
  }
  if (st == LUA_OK && (lua_getstack(co, 0, &ar) || lua_gettop(co) == 0)) return NULL;
  if (st != LUA_OK && st != LUA_YIELD) return NULL;
  t = ai_track(I, L, co, fn_idx, site_level);
  if (t == NULL) return NULL;
  if (st == LUA_YIELD) {
    t->state = AI_SUSPENDED;
    t->first_resume = t->created;
  } else if (fn_idx == 0 && lua_isfunction(co, 1)) {
    lua_pushvalue(co, 1);
    lua_xmove(co, L, 1);
    t->created_fn = ai_function_location(I, L, lua_gettop(L));
    lua_pop(L, 1);
  }
  return t;
}

/* ---------------------------------------------------------------------- */
/* resume, faithful to lcorolib.c's auxresume                               */
/* ---------------------------------------------------------------------- */

/* the inspector from any thread in two loads: every thread's extraspace
** points to a record (the main thread's to a pseudo-record) that knows its
** owner; threads older than the module fall back to the closure upvalue */
static inline __attribute__((always_inline)) ai_inspector *inspector_of(lua_State *L,
                                                                        int trusted) {
  if (trusted) {
    ai_task *t = *ai_extra(L);
    if (l_likely(t != NULL)) return (ai_inspector *)t->owner;
  }
  return (ai_inspector *)lua_touserdata(L, UV_INSPECTOR);
}

/* lcorolib.c's auxresume; with `flag` (coroutine.resume) the `true` that
** leads the results is pushed before them, which spares lcorolib's rotate.
** Returns the number of results (without the flag), or -1 with the error
** on L's top and *status the coroutine's (-1: the resume did not start). */
static inline __attribute__((always_inline)) int
auxresume_status(lua_State *L, lua_State *co, int narg, int *status, int flag, int fast) {
  int nres;
  if (l_unlikely(!checkstack_in(co, narg, fast))) {
    lua_pushliteral(L, "too many arguments to resume");
    *status = -1;
    return -1;
  }
  lua_xmove(L, co, narg);
  *status = lua_resume(co, L, narg, &nres);
  if (l_likely(*status == LUA_OK || *status == LUA_YIELD)) {
    if (l_unlikely(!checkstack_in(L, nres + 1, fast))) {
      lua_pop(co, nres);
      lua_pushliteral(L, "too many results to resume");
      return -1;
    }
    if (flag) lua_pushboolean(L, 1);
    lua_xmove(co, L, nres);
    return nres;
  }
  lua_xmove(co, L, 1);
  return -1;
}

/* the same, for the paths that record nothing */
static inline __attribute__((always_inline)) int auxresume(lua_State *L, lua_State *co, int narg,
                                                           int flag, int fast) {
  int status;
  return auxresume_status(L, co, narg, &status, flag, fast);
}

/* first yield of a task resumed from C: the coroutine value is not on L's
** stack, push it there for the anchor */
static void anchor_thread(lua_State *L, lua_State *co, ai_task *t) {
  int top = lua_gettop(L);
  if (!lua_checkstack(co, 1) || !lua_checkstack(L, 9)) return;
  /* the running function is the scheduler's, not a hook: no upvalues of
  ** ours, so the anchor table, the inspector and the metatable come from
  ** the registry */
  lua_getfield(L, LUA_REGISTRYINDEX, AI_ANCHORS_KEY);
  lua_getfield(L, LUA_REGISTRYINDEX, AI_INSPECTOR_KEY);
  lua_getfield(L, LUA_REGISTRYINDEX, AI_SENTINEL_MT);
  lua_pushthread(co);
  lua_xmove(co, L, 1);
  if (lua_istable(L, top + 1) && lua_isuserdata(L, top + 2) && lua_istable(L, top + 3))
    anchor_with(L, top + 4, t, top + 1, top + 2, top + 3);
  lua_settop(L, top);
}

/* the record to use for co, or NULL when this resume records nothing: an
** unknown coroutine is adopted, a sampled-out one ignored, and only a
** suspended or fresh coroutine really runs (otherwise lua_resume raises its
** own error) */
static inline __attribute__((always_inline)) ai_task *resumable_task(ai_inspector *I, lua_State *L,
                                                                     lua_State *co, int fast) {
  /* the fast family exists only when no thread holds a foreign value */
  ai_task *t = fast ? *ai_extra(co) : ai_extra_record(&I->reg, co);
  if (l_unlikely(t == NULL || t->co != co || t->id == 0)) {
    if (t == &I->ignored_rec || (t = ai_adopt(I, L, co, 0, 0)) == NULL) return NULL;
  }
  if (l_likely(t->state == AI_SUSPENDED)) return fast_status(I, co, fast) == LUA_YIELD ? t : NULL;
  return (t->state == AI_PENDING && fast_status(I, co, fast) == LUA_OK) ? t : NULL;
}

/* the resumer's record when it is a task (not the main thread) */
static inline ai_task *resumer_task(ai_inspector *I, lua_State *L) {
  if (l_likely(*ai_extra(L) == &I->main_rec)) return NULL; /* the common case */
  return ai_registry_of(&I->reg, L);
}

/* the first resume of t: no longer watched (out of line: once per task) */
static void __attribute__((noinline)) first_resume(ai_inspector *I, ai_task *t, ai_tick now) {
  if (t->flags & AI_TF_WATCHED) ai_unwatch(I, t);
  t->first_resume = now;
}

/* t starts running now, resumed by rt (NULL: the main thread) */
static inline __attribute__((always_inline)) void resume_begin(ai_inspector *I, ai_task *t, ai_task *rt, ai_tick now) {
  uint64_t rid = 0;
  if (rt != NULL) {
    rt->state = AI_NORMAL;
    rid = rt->id;
  }
  if (l_unlikely(t->state == AI_PENDING)) first_resume(I, t, now);
  t->state = AI_RUNNING;
  t->resumes++;
  t->resume_start = now; /* a running task's last change (see module.c) */
  if (l_likely(I->pending_wake == 0)) {
    ai_timeline_push(&I->tl, AI_EV_RESUME, t->id, rid, 0, 0, now);
  } else { /* a luv callback said what woke it: the event takes the reference */
    ai_timeline_push(&I->tl, AI_EV_RESUME, t->id, rid, 0, I->pending_wake, now);
    I->pending_wake = 0;
  }
}

/* a resume longer than long_poll_ticks: counted, and kept in the small log
** of the last AI_LONG_POLL_LOG with where it yielded (or raised), even when
** yield locations are off; the rare branch, kept out of line */
static void __attribute__((noinline))
note_long_poll(ai_inspector *I, lua_State *co, ai_task *t, uint64_t ran, int status) {
  ai_long_poll *p = &I->long_poll_log[I->long_polls % AI_LONG_POLL_LOG];
  ai_str name = t->name ? t->name : t->created_fn;
  ai_str loc = 0;
  if (status == LUA_YIELD)
    loc = (I->pending_task == t->id && I->pending_loc) ? I->pending_loc : ai_site_location(I, co, 1);
  else if (status != LUA_OK)
    loc = ai_site_location(I, co, 0);
  ai_strings_ref(I->strings, name);
  ai_strings_release(I->strings, p->name);
  p->task = t->id;
  p->start = t->resume_start;
  p->ran = ran;
  p->name = name;
  p->loc = loc;
  p->end = status == LUA_YIELD ? AI_EV_YIELD : status == LUA_OK ? AI_EV_COMPLETE : AI_EV_FAIL;
  I->long_polls++;
}

void ai_long_polls_clear(ai_inspector *I) {
  uint32_t i;
  for (i = 0; i < AI_LONG_POLL_LOG; i++) ai_strings_release(I->strings, I->long_poll_log[i].name);
  memset(I->long_poll_log, 0, sizeof I->long_poll_log);
  I->long_polls = 0;
}

/* an await point announced from Lua (ai.await_point, luv helpers) for
** this yield: its label and location replace the ones found here. Returned
** by value (two ids in one register), not through pointers, which would
** keep the caller's locals in memory on the common path. */
typedef struct pending_await {
  ai_str loc, label;
} pending_await;

static pending_await __attribute__((noinline)) take_pending(ai_inspector *I) {
  pending_await p;
  p.loc = I->pending_loc;
  p.label = I->pending_label;
  I->pending_task = 0;
  I->pending_label = 0;
  I->pending_loc = 0;
  if (p.label != 0) ai_strings_ref(I->strings, p.label); /* the record's own */
  return p;
}

/* the coroutine ended: completed, or failed with the error on errL's top */
static void __attribute__((noinline))
resume_ended(ai_inspector *I, lua_State *L, lua_State *co, ai_task *t, int status,
             lua_State *errL, ai_tick now) {
  if (status == LUA_OK) {
    ai_finish(I, t, AI_COMPLETED, 0, now);
  } else { /* the coroutine raised an error; its stack is still intact */
    ai_str err = ai_error_text(I, errL, lua_gettop(errL));
    if (I->tracebacks) capture_traceback(I, L, co, t);
    ai_finish(I, t, AI_FAILED, err, now); /* the event takes over err */
  }
}

/* lua_resume returned `status` for task t (id checked by the caller);
** co_idx: where co sits in L (0: not on L's stack) */
static inline __attribute__((always_inline)) void
resume_end(ai_inspector *I, lua_State *L, lua_State *co, int co_idx,
                              ai_task *t, int status, lua_State *errL, int fast) {
  ai_tick now = ai_now_in(fast);
  uint64_t ran = now - t->resume_start;
  t->busy += ran;
  t->last_change = now;
  ai_hist_add(&I->resume_hist, ran);
  if (l_unlikely(ran > I->long_poll_ticks)) note_long_poll(I, co, t, ran, status);
  if (l_likely(status == LUA_YIELD)) {
    ai_str loc = 0, label = 0;
    t->state = AI_SUSPENDED;
    if (l_unlikely(I->pending_task == t->id)) {
      pending_await p = take_pending(I);
      loc = p.loc;
      label = p.label;
    }
    if (loc == 0 && I->locations) loc = caller_site(I, co, fast);
    t->where = loc;
    if (l_unlikely(t->await_label != 0)) ai_strings_release(I->strings, t->await_label);
    t->await_label = label;
    ai_timeline_push(&I->tl, AI_EV_YIELD, t->id, 0, loc, label, now);
    if (l_unlikely(!(t->flags & AI_TF_ANCHORED))) {
      if (co_idx != 0) anchor(L, co_idx, t);
      else anchor_thread(L, co, t);
    }
  } else {
    resume_ended(I, L, co, t, status, errL, now);
  }
}

/* resume co with narg values from L's top, recording it; co_idx: where co
** sits in L; flag: coroutine.resume's leading true (auxresume_status) */
static inline __attribute__((always_inline)) int
resume_tracked(ai_inspector *I, lua_State *L, lua_State *co, int co_idx, int narg, int fast,
               int flag) {
  ai_task *t = resumable_task(I, L, co, fast), *rt;
  uint64_t id, rid;
  int status, r;
  if (t == NULL) return auxresume(L, co, narg, flag, fast);
  rt = resumer_task(I, L);
  rid = rt ? rt->id : 0;
  id = t->id;
  resume_begin(I, t, rt, ai_now_in(fast));
  r = auxresume_status(L, co, narg, &status, flag, fast);
  /* a reset inside the resume may have recycled the records */
  if (l_likely(t->id == id && status != -1)) resume_end(I, L, co, co_idx, t, status, L, fast);
  if (rt != NULL && rt->id == rid && rt->state == AI_NORMAL) rt->state = AI_RUNNING;
  return r;
}

/* resume co with narg values from L's top, as coroutine.resume (the
** leading true already pushed; ai_resume_results completes), for a
** binding that is not a hook (no hook upvalues: a first yield is anchored
** through the registry) */
int ai_resume_values(ai_inspector *I, lua_State *L, lua_State *co, int narg) {
  if (!I->enabled) return auxresume(L, co, narg, 1, I->trusted);
  if (l_likely(I->trusted)) return resume_tracked(I, L, co, 0, narg, 1, 1);
  return resume_tracked(I, L, co, 0, narg, 0, 1);
}

/* the same for a C scheduler: plain lua_resume contract (async_inspect.h) */
int ai_resume_raw(ai_inspector *I, lua_State *L, lua_State *co, int narg, int *nres) {
  ai_task *t, *rt;
  uint64_t id, rid;
  int status;
  if (!I->enabled || (t = resumable_task(I, L, co, 0)) == NULL) return lua_resume(co, L, narg, nres);
  rt = resumer_task(I, L);
  rid = rt ? rt->id : 0;
  id = t->id;
  resume_begin(I, t, rt, ai_now());
  status = lua_resume(co, L, narg, nres);
  if (l_likely(t->id == id)) resume_end(I, L, co, 0, t, status, co, 0);
  if (rt != NULL && rt->id == rid && rt->state == AI_NORMAL) rt->state = AI_RUNNING;
  return status;
}

static inline __attribute__((always_inline)) int resume_hook(lua_State *L, int trusted) {
  ai_inspector *I = inspector_of(L, trusted);
  int top = gettop_in(L, trusted), r;
  lua_State *co = first_thread(I, L, top, trusted);
  luaL_argexpected(L, co, 1, I->co_typename);
  if (l_likely(I->enabled)) r = resume_tracked(I, L, co, 1, top - 1, trusted, 1);
  else r = auxresume(L, co, top - 1, 1, trusted);
  return ai_resume_results(L, r);
}

/* ---------------------------------------------------------------------- */
/* create and wrap                                                          */
/* ---------------------------------------------------------------------- */

static inline __attribute__((always_inline)) lua_State *create(lua_State *L, int trusted) {
  ai_inspector *I = inspector_of(L, trusted);
  lua_State *NL;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  NL = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, NL, 1);
  if (I->enabled) {
    ai_task *t;
    if (l_unlikely(sampled_out(I))) *ai_extra(NL) = &I->ignored_rec;
    else if ((t = ai_track(I, L, NL, 1, 1)) != NULL) watch_at(I, L, lua_gettop(L), t, UV_WATCH);
  }
  return NL;
}

#define UV_WRAPPED lua_upvalueindex(4)

static inline __attribute__((always_inline)) int wrapped_hook(lua_State *L, int trusted) {
  ai_inspector *I = inspector_of(L, trusted);
  lua_State *co = lua_tothread(L, UV_WRAPPED);
  int top = gettop_in(L, trusted);
  int r = I->enabled ? resume_tracked(I, L, co, UV_WRAPPED, top, trusted, 0)
                     : auxresume(L, co, top, 0, trusted);
  if (l_unlikely(r < 0)) {
    int stat = lua_status(co);
    if (stat != LUA_OK && stat != LUA_YIELD) { /* error in the coroutine */
      stat = ai_closethread(co, L); /* close its tbc variables */
      lua_xmove(co, L, 1);
    }
    if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
      luaL_where(L, 1); /* prefix the caller's position, as Lua does */
      lua_insert(L, -2);
      lua_concat(L, 2);
    }
    return lua_error(L);
  }
  return r;
}

/* ---------------------------------------------------------------------- */
/* close, faithful to lcorolib.c's luaB_close                               */
/* ---------------------------------------------------------------------- */

#define COS_RUN 0
#define COS_DEAD 1
#define COS_YIELD 2
#define COS_NORM 3

static const char *const statname[] = {"running", "dead", "suspended", "normal"};

static int auxstatus(lua_State *L, lua_State *co) {
  if (L == co) return COS_RUN;
  switch (lua_status(co)) {
    case LUA_YIELD:
      return COS_YIELD;
    case LUA_OK: {
      lua_Debug ar;
      if (lua_getstack(co, 0, &ar)) return COS_NORM;
      else if (lua_gettop(co) == 0) return COS_DEAD;
      else return COS_YIELD; /* initial state */
    }
    default:
      return COS_DEAD;
  }
}

static inline __attribute__((always_inline)) int close_hook(lua_State *L, int trusted) {
  ai_inspector *I = inspector_of(L, trusted);
  lua_State *co = lua_tothread(L, 1);
  int status;
  luaL_argexpected(L, co, 1, I->co_typename);
  status = auxstatus(L, co);
  switch (status) {
    case COS_DEAD: case COS_YIELD: {
      ai_task *t = I->enabled ? ai_registry_of(&I->reg, co) : NULL;
      status = ai_closethread(co, L);
      if (t != NULL && !ai_state_finished(t->state)) {
        /* closing a suspended task cancels it; a close that raises from a
        ** to-be-closed variable still ends it as cancelled */
        ai_finish(I, t, AI_CANCELLED, 0, ai_now());
      }
      if (status == LUA_OK) {
        lua_pushboolean(L, 1);
        return 1;
      }
      lua_pushboolean(L, 0);
      lua_xmove(co, L, 1);
      return 2;
    }
    default:
      return luaL_error(L, "cannot close a %s coroutine", statname[status]);
  }
}

/* ---------------------------------------------------------------------- */

/* Two families of hooks, the same but for how they find the inspector:
** through the calling thread's extraspace (trusted: also every private
** layout was verified, so status and yield sites are read without checks)
** or the upvalue. The
** wrap closure's upvalues are the hooks' three (so the resume finds the
** inspector and the anchor table where it expects them), then the thread. */
#define HOOK_FAMILY(SUFFIX, TRUSTED)                                           \
  static int co_resume##SUFFIX(lua_State *L) { return resume_hook(L, TRUSTED); } \
  static int co_create##SUFFIX(lua_State *L) {                                 \
    create(L, TRUSTED);                                                        \
    return 1;                                                                  \
  }                                                                            \
  static int auxwrap##SUFFIX(lua_State *L) { return wrapped_hook(L, TRUSTED); } \
  static int co_wrap##SUFFIX(lua_State *L) {                                   \
    create(L, TRUSTED);                                                        \
    lua_pushvalue(L, UV_INSPECTOR);                                            \
    lua_pushvalue(L, UV_ANCHORS);                                              \
    lua_pushvalue(L, UV_WATCH);                                                \
    lua_rotate(L, -4, -1); /* the new thread goes last */                      \
    lua_pushcclosure(L, auxwrap##SUFFIX, 4);                                   \
    return 1;                                                                  \
  }                                                                            \
  static int co_close##SUFFIX(lua_State *L) { return close_hook(L, TRUSTED); }

HOOK_FAMILY(_trusted, 1)
HOOK_FAMILY(_safe, 0)

/* the hooks, in the order of ai_hook_names */
const char *const ai_hook_names[AI_NHOOKS] = {"create", "wrap", "resume", "close"};
static const lua_CFunction hooks_trusted[AI_NHOOKS] = {
  co_create_trusted, co_wrap_trusted, co_resume_trusted, co_close_trusted};
static const lua_CFunction hooks_safe[AI_NHOOKS] = {
  co_create_safe, co_wrap_safe, co_resume_safe, co_close_safe};

/* push the hook closures, each with the three upvalues on the stack top
** (inspector, anchors, sentinel metatable), which are popped */
void ai_push_hooks(lua_State *L, int trusted) {
  const lua_CFunction *fns = trusted ? hooks_trusted : hooks_safe;
  int i;
  for (i = 0; i < AI_NHOOKS; i++) {
    lua_pushvalue(L, -3 - i);
    lua_pushvalue(L, -3 - i);
    lua_pushvalue(L, -3 - i);
    lua_pushcclosure(L, fns[i], 3);
  }
  /* stack: ins anchors watch h1 h2 h3 h4 -> h1 h2 h3 h4 */
  for (i = 0; i < 3; i++) lua_remove(L, -AI_NHOOKS - 1);
}

/* The word Lua's own coroutine functions use for a bad coroutine argument
** differs between 5.4 releases ("coroutine" or "thread"): learn it from
** the original coroutine.resume so our messages are the same. */
void ai_hooks_learn_typename(ai_inspector *I, lua_State *L) {
  const char *msg, *end;
  size_t n;
  strcpy(I->co_typename, "coroutine");
  if (lua_getglobal(L, "coroutine") != LUA_TTABLE) { lua_pop(L, 1); return; }
  lua_getfield(L, -1, "resume");
  lua_remove(L, -2);
  lua_pushinteger(L, 0);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK) { lua_pop(L, 1); return; }
  msg = lua_tostring(L, -1);
  if (msg != NULL && (msg = strstr(msg, "(")) != NULL && (end = strstr(msg, " expected")) != NULL) {
    n = (size_t)(end - msg - 1);
    if (n > 0 && n < sizeof I->co_typename) {
      memcpy(I->co_typename, msg + 1, n);
      I->co_typename[n] = '\0';
    }
  }
  lua_pop(L, 1);
}

/* ---------------------------------------------------------------------- */
/* creation traces: on request only (creation_traces setting)               */
/* ---------------------------------------------------------------------- */

/* the location id of one frame: Lua frames go through the site cache that
** yield locations use (keyed by the frame's saved pc); C frames become a
** permanent "[C]: in function 'name'" text, bounded by the program's code */
static ai_str trace_frame(ai_inspector *I, lua_State *L, lua_Debug *ar) {
  char buf[LUA_IDSIZE + 32];
  const ai_site *s;
  const void *pc = NULL;
  ai_str loc;
  int n;
  /* only a Lua frame's saved pc is a key (a C frame's is a stale continuation) */
  if (I->value_layout_ok && lua_frame(I, (const struct ci_prefix *)(const void *)ar->i_ci)) {
    pc = frame_key(ar);
    if ((s = cache_hit(I, I->sites, pc)) != NULL) return s->loc;
  }
  if (!lua_getinfo(L, "Sln", ar)) return 0;
  if (ar->currentline >= 0) {
    loc = intern_location(I, ar->short_src, ar->currentline);
    locfn_set(I, loc, frame_name(ar, buf, sizeof buf));
    if (pc != NULL) cache_put(I, I->sites, pc, loc); /* a Lua frame: as a yield site */
    return loc;
  }
  if (ar->name != NULL) n = snprintf(buf, sizeof buf, "[C]: in function '%.60s'", ar->name);
  else n = snprintf(buf, sizeof buf, "[C]: in ?");
  if (n < 0) return 0;
  if ((size_t)n >= sizeof buf) n = (int)sizeof buf - 1;
  return ai_strings_intern(I->strings, buf, (size_t)n, 1);
}

/* make room for the trace of registry slot `slot` */
static ai_ctrace *ctrace_slot(ai_inspector *I, uint32_t slot) {
  if (slot >= I->ctraces_cap) {
    uint32_t ncap = I->ctraces_cap ? I->ctraces_cap : 256;
    ai_ctrace *n;
    while (ncap <= slot) ncap *= 2;
    n = (ai_ctrace *)realloc(I->ctraces, ncap * sizeof *n);
    if (n == NULL) return NULL;
    memset(n + I->ctraces_cap, 0, (ncap - I->ctraces_cap) * sizeof *n);
    I->ctraces = n;
    I->ctraces_cap = ncap;
  }
  return &I->ctraces[slot];
}

/* record where task t is being created: the frames of L from `level` up
** (level 1: the caller of coroutine.create). Called from ai_track only
** while creation traces are on; a missing trace is all a failure costs. */
void ai_capture_creation(ai_inspector *I, lua_State *L, ai_task *t, int level) {
  lua_Debug ar;
  ai_ctrace *c = ctrace_slot(I, t->slot);
  uint16_t n = 0;
  if (c == NULL) return;
  c->id = t->id;
  while (n < AI_CTRACE_DEPTH && lua_getstack(L, level + n, &ar)) {
    ai_str loc = trace_frame(I, L, &ar);
    if (loc == 0) break;
    c->frames[n++] = loc;
  }
  c->n = n;
  c->more = n == AI_CTRACE_DEPTH && lua_getstack(L, level + n, &ar);
}

/* the creation trace of task `id`, or NULL when none was captured */
const ai_ctrace *ai_creation_trace(const ai_inspector *I, uint64_t id) {
  const ai_task *t = ai_registry_by_id(&I->reg, id);
  if (t == NULL || t->slot >= I->ctraces_cap || I->ctraces[t->slot].id != id) return NULL;
  return &I->ctraces[t->slot];
}

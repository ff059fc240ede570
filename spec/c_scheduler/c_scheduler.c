/*
** c_scheduler.c: a tiny cqueues-style scheduler for spec/c_api_spec.lua.
**
** It creates its coroutines with lua_newthread (never coroutine.create) and
** resumes them from C through async_inspect_resume(), the way a C scheduler
** that calls lua_resume itself would. It is a test fixture for the public
** header csrc/async_inspect.h; it must behave the same whether or not
** async_inspect is loaded in the state.
**
**   local sched = require "c_scheduler"
**   local co = sched.spawn(fn, ...)     -- a new thread, fn and args on its stack
**   sched.step(co, ...)                 -- one resume: status, values...
**   sched.run()                         -- round robin until every task ended
**   sched.clear()                       -- forget the queued threads
**   sched.api_present()                 -- is an inspector's API found?
*/
#include "lua.h"
#include "lauxlib.h"

#include "async_inspect.h"

#define QUEUE_KEY "c_scheduler.queue"

static const char *status_name(int status) {
  switch (status) {
    case LUA_OK: return "dead";
    case LUA_YIELD: return "yield";
    default: return "error";
  }
}

/* the run queue: an array of threads in the registry */
static void push_queue(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, QUEUE_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, QUEUE_KEY);
  }
}

/* spawn(fn, ...) -> thread: created in C, queued for run() */
static int l_spawn(lua_State *L) {
  int nargs = lua_gettop(L) - 1;
  lua_State *co;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  co = lua_newthread(L);
  lua_insert(L, 1);                 /* thread below fn and args */
  lua_xmove(L, co, nargs + 1);      /* fn and args onto the new thread */
  push_queue(L);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  lua_pop(L, 1);
  return 1;
}

/* resume co with the nargs values on its stack; leaves on L the status name
** followed by the results (or the error object); returns their count */
static int resume_into(lua_State *L, lua_State *co, int nargs) {
  int nres = 0;
  int status = async_inspect_resume(L, co, nargs, &nres);
  if (status == LUA_OK || status == LUA_YIELD) {
    lua_pushstring(L, status_name(status));
    if (!lua_checkstack(L, nres + 1)) return luaL_error(L, "too many results");
    lua_xmove(co, L, nres);
    return nres + 1;
  }
  lua_pushstring(L, status_name(status));
  lua_xmove(co, L, 1);              /* the error object */
  return 2;
}

/* step(co, ...) -> "yield"|"dead"|"error", values... */
static int l_step(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  int nargs = lua_gettop(L) - 1;
  luaL_argexpected(L, co != NULL, 1, "thread");
  if (lua_status(co) == LUA_OK && lua_gettop(co) == 0)
    return luaL_error(L, "cannot resume dead coroutine");
  if (!lua_checkstack(co, nargs)) return luaL_error(L, "too many arguments");
  lua_xmove(L, co, nargs);
  /* a fresh thread also passes the arguments given to spawn */
  if (lua_status(co) == LUA_OK) nargs = lua_gettop(co) - 1;
  return resume_into(L, co, nargs);
}

static int alive(lua_State *co) {
  return lua_status(co) == LUA_YIELD || (lua_status(co) == LUA_OK && lua_gettop(co) > 0);
}

/* run() -> results: resumes every queued thread in turn until all ended;
** results[i] = {status=, value=} for the i-th spawned thread */
static int l_run(lua_State *L) {
  int n, i, busy = 1;
  push_queue(L);
  n = (int)lua_rawlen(L, -1);
  lua_createtable(L, n, 0);
  while (busy) {
    busy = 0;
    for (i = 1; i <= n; i++) {
      lua_State *co;
      int nres;
      lua_rawgeti(L, -2, i);
      co = lua_tothread(L, -1);
      lua_pop(L, 1);
      if (co == NULL || !alive(co)) continue;
      busy = 1;
      nres = resume_into(L, co, lua_status(co) == LUA_OK ? lua_gettop(co) - 1 : 0);
      if (lua_status(co) != LUA_YIELD) {
        lua_createtable(L, 0, 2);
        lua_pushvalue(L, -nres - 1);
        lua_setfield(L, -2, "status");
        if (nres > 1) {
          lua_pushvalue(L, -nres);
          lua_setfield(L, -2, "value");
        }
        lua_rawseti(L, -nres - 2, i);
      }
      lua_pop(L, nres);
    }
  }
  lua_pushnil(L);                   /* the queue is spent */
  lua_setfield(L, LUA_REGISTRYINDEX, QUEUE_KEY);
  return 1;
}

/* clear(): forget the queued threads (those no one else holds can be collected) */
static int l_clear(lua_State *L) {
  lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, QUEUE_KEY);
  return 0;
}

static int l_api_present(lua_State *L) {
  lua_pushboolean(L, async_inspect_get_api(L) != NULL);
  return 1;
}

int luaopen_c_scheduler(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"spawn", l_spawn}, {"step", l_step}, {"run", l_run},
    {"clear", l_clear}, {"api_present", l_api_present}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}

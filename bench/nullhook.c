/*
** nullhook.c: the floor every replacement of coroutine.resume/create pays.
**
** A copy of what Lua's own lcorolib.c does for resume and create, built as
** a separate shared module, recording nothing. bench/run.lua measures it
** ("floor" mode) to separate the cost of async_inspect's recording from the
** cost of any C function outside the interpreter binary: its calls into the
** Lua API go through the GOT, where lcorolib's are direct calls.
**
** resume_clocked is the same resume reading the clock before and after, as
** the tracked hot path does, and recording nothing: the floor of any tracker
** that timestamps each resume and yield ("clockfloor" mode). clock_ns times
** one read of that clock.
*/
#include <stdint.h>
#include <time.h>
#include "lua.h"
#include "lauxlib.h"

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
static uint64_t ticks(void) { return (uint64_t)__rdtsc(); }
#else
static uint64_t ticks(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
#endif

static volatile uint64_t busy_ticks; /* the reads must not be optimised away */

static int auxresume(lua_State *L, lua_State *co, int narg) {
  int status, nres;
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    return -1;
  }
  lua_xmove(L, co, narg);
  status = lua_resume(co, L, narg, &nres);
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushliteral(L, "too many results to resume");
      return -1;
    }
    lua_xmove(co, L, nres);
    return nres;
  }
  lua_xmove(co, L, 1);
  return -1;
}

/* lcorolib's luaB_coresume after auxresume: true and the results, or false
** and the error */
static int resume_results(lua_State *L, int r) {
  if (r < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_insert(L, -(r + 1));
  return r + 1;
}

static int null_resume(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "coroutine");
  return resume_results(L, auxresume(L, co, lua_gettop(L) - 1));
}

static int null_resume_clocked(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  uint64_t t0;
  int r;
  luaL_argexpected(L, co, 1, "coroutine");
  t0 = ticks();
  r = auxresume(L, co, lua_gettop(L) - 1);
  busy_ticks += ticks() - t0;
  return resume_results(L, r);
}

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* clock_ns(n) -> nanoseconds per read of the clock the tracker uses */
static int null_clock_ns(lua_State *L) {
  lua_Integer i, n = luaL_optinteger(L, 1, 10000000);
  uint64_t sum = 0;
  double t0;
  luaL_argcheck(L, n > 0, 1, "positive count expected");
  t0 = mono_s();
  for (i = 0; i < n; i++) sum += ticks();
  busy_ticks += sum;
  lua_pushnumber(L, (mono_s() - t0) * 1e9 / (double)n);
  return 1;
}

static int null_create(lua_State *L) {
  lua_State *NL;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  NL = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, NL, 1);
  return 1;
}

__attribute__((visibility("default"))) int luaopen_ai_nullhook(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"resume", null_resume}, {"resume_clocked", null_resume_clocked},
      {"create", null_create}, {"clock_ns", null_clock_ns}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}

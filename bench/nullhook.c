/*
** nullhook.c: the floor every replacement of coroutine.resume/create pays.
**
** A copy of what Lua's own lcorolib.c does for resume and create, built as
** a separate shared module, recording nothing. bench/run.lua measures it
** ("floor" mode) to separate the cost of async_inspect's recording from the
** cost of any C function outside the interpreter binary: its calls into the
** Lua API go through the GOT, where lcorolib's are direct calls.
*/
#include "lua.h"
#include "lauxlib.h"

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

static int null_resume(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  int r;
  luaL_argexpected(L, co, 1, "coroutine");
  r = auxresume(L, co, lua_gettop(L) - 1);
  if (r < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_insert(L, -(r + 1));
  return r + 1;
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
  static const luaL_Reg fns[] = {{"resume", null_resume}, {"create", null_create}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}

/*
** async_inspect.h: the public C API of async_inspect.
**
** For C schedulers that call lua_resume themselves (cqueues style): route
** the resumes through async_inspect_resume() and their coroutines become
** tasks like those resumed through coroutine.resume. When async_inspect is
** not loaded in the state (or was unloaded) it is plain lua_resume, so a
** scheduler can call it unconditionally. Header only: nothing to link.
**
**   int nres;
**   int status = async_inspect_resume(L, co, narg, &nres);
**
** Same contract as lua_resume(co, L, narg, &nres): the arguments are on
** co's stack, the results or the error object are left there.
*/
#ifndef ASYNC_INSPECT_H
#define ASYNC_INSPECT_H

#include "lua.h"

#define ASYNC_INSPECT_API_VERSION 1
#define ASYNC_INSPECT_API_KEY "async_inspect.api"

typedef struct async_inspect_api {
  int version;
  int (*resume)(lua_State *L, lua_State *co, int narg, int *nres);
} async_inspect_api;

/* the API table of the inspector loaded in L's state, or NULL */
static inline const async_inspect_api *async_inspect_get_api(lua_State *L) {
  const async_inspect_api *api;
  lua_getfield(L, LUA_REGISTRYINDEX, ASYNC_INSPECT_API_KEY);
  api = (const async_inspect_api *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return (api != NULL && api->version == ASYNC_INSPECT_API_VERSION) ? api : NULL;
}

static inline int async_inspect_resume(lua_State *L, lua_State *co, int narg, int *nres) {
  const async_inspect_api *api = async_inspect_get_api(L);
  if (api == NULL) return lua_resume(co, L, narg, nres);
  return api->resume(L, co, narg, nres);
}

#endif

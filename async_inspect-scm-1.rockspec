rockspec_format = "3.0"
package = "async_inspect"
version = "scm-1"
source = {
  url = "git+file:///async_inspect",
}
description = {
  summary = "X-ray vision for asynchronous Lua: every coroutine tracked as a task",
  detailed = [[
    A Lua 5.4 extension module with a C core. Load it and it shows what every
    coroutine is doing: which tasks exist, which run, where each suspended one
    waits and for how long, what failed, where a deadlock formed, where the time
    went. Timeline, reports, Chrome/Perfetto traces, flamegraphs, HTML, a live
    terminal dashboard and the async-inspect command.
  ]],
  license = "MIT",
  labels = { "coroutines", "debugging", "profiling", "luv" },
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    LUA_INCDIR = "$(LUA_INCDIR)",
    LUADIR = "$(LUADIR)",
    LIBDIR = "$(LIBDIR)",
    BINDIR = "$(BINDIR)",
    AI_WERROR = "OFF",
    AI_TESTS = "OFF",
  },
  copy_directories = { "docs", "examples" },
}
test = {
  type = "command",
  command = "make test",
}

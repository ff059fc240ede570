-- The dashboard on a fixture snapshot whose clock moves, for spec/tui_spec.lua.
-- usage: lua5.4 dash_fixture.lua [crash | pidfile PATH | ascii]
local uv = require("luv")
local fx = require("fixtures")
local snap = fx.snapshot()
require("async_inspect.tui").start({
  source = function()
    snap.t = snap.t + 1000000
    return snap
  end,
  ascii = arg[1] == "ascii" or nil,
  on_quit = function() io.stdout:write("DASHBOARD QUIT\n") end,
})
if arg[1] == "crash" then
  -- an uncaught error in a luv callback: luv calls exit() and no Lua cleanup runs
  uv.new_timer():start(500, 0, function() error("crash in a callback") end)
elseif arg[1] == "pidfile" then
  local f = assert(io.open(arg[2], "w"))
  f:write(uv.os_getpid(), "\n")
  f:close()
end
uv.run()

-- The replay dashboard, for spec/tui_spec.lua. usage: lua5.4 dash_replay.lua FILE
local uv = require("luv")
require("async_inspect.record").replay(arg[1], {
  on_quit = function() io.stdout:write("REPLAY QUIT\n") end,
})
uv.run()

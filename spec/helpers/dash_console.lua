-- The remote console dashboard, for spec/tui_spec.lua. usage: lua5.4 dash_console.lua PORT
local uv = require("luv")
require("async_inspect.remote").console("127.0.0.1", tonumber(arg[1]), {
  on_quit = function() io.stdout:write("CONSOLE QUIT\n") end,
})
uv.run()

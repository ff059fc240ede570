-- The dashboard on a live program with the C core, for spec/tui_spec.lua.
local ai = require("async_inspect")
ai.install()
local uv = require("luv")
local timers = {}
local function ticker(name, every)
  local co = coroutine.create(function()
    local naps = 0
    while true do
      naps = naps + 1
      ai.await_point("nap")
      coroutine.yield()
    end
  end)
  ai.name(co, name)
  coroutine.resume(co)
  local t = uv.new_timer()
  t:start(every, every, function() coroutine.resume(co) end)
  timers[#timers + 1] = t
end
ticker("ticker-fast", 20)
ticker("ticker-slow", 100)
local once = coroutine.create(function() return 1 end)
ai.name(once, "one-shot")
coroutine.resume(once)
ai.tui.start({
  on_quit = function()
    for _, t in ipairs(timers) do t:close() end
    io.stdout:write("DASHBOARD QUIT\n")
  end,
})
uv.run()

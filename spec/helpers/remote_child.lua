-- A program serving the remote protocol, for spec/remote_spec.lua.
-- usage: lua5.4 remote_child.lua MODE TOKEN
--   MODE steady: three tasks taking turns, a new task every 10 steps, quiet after 60 steps
--   MODE flood:  500 events every 5 ms, with a small output queue per client
--   MODE core:   the real C core and real coroutines on luv timers
--   TOKEN "-" for none
local uv = require("luv")
local remote = require("async_inspect.remote")
local mode, token = arg[1], arg[2]
token = token ~= "-" and token or nil

local inspector
local steps, gen = 0, uv.new_timer()
if mode == "core" then
  local ai = require("async_inspect")
  ai.install()
  inspector = ai
  local function ticker(name, every)
    local co = coroutine.create(function()
      while true do
        ai.await_point("sleep")
        coroutine.yield()
      end
    end)
    ai.name(co, name)
    coroutine.resume(co)
    local t = uv.new_timer()
    t:start(every, every, function() coroutine.resume(co) end)
  end
  ticker("fast", 10)
  ticker("slow", 50)
else
  local fake = require("fake_inspector").new({ capacity = 200000 })
  inspector = fake
  local ids = { fake.spawn("alpha", nil, "s.lua:1"), fake.spawn("beta", nil, "s.lua:2"),
    fake.spawn("gamma", nil, "s.lua:3") }
  local function turn(id, n)
    fake.advance(1000)
    fake.resume(id)
    fake.advance(500)
    fake.yield(id, "s.lua:" .. (10 + n % 3), n % 2 == 0 and "io" or nil)
  end
  if mode == "flood" then
    gen:start(5, 5, function()
      for i = 1, 250 do turn(ids[1], i) end
    end)
  else
    gen:start(10, 10, function()
      steps = steps + 1
      turn(ids[steps % 3 + 1], steps)
      if steps % 10 == 0 then
        local id = fake.spawn("extra" .. steps, ids[1], "s.lua:20")
        ids[#ids + 1] = id
        fake.advance(100)
        fake.resume(id)
        fake.advance(100)
        fake.complete(id)
      end
      if steps == 60 then
        gen:stop()
        io.stdout:write("QUIET\n")
        io.stdout:flush()
      end
    end)
  end
end

local srv = remote.serve({ port = 0, token = token, inspector = inspector, interval = 20,
  max_queue = mode == "flood" and 65536 or nil, keep_alive = true })
io.stdout:write("PORT " .. srv.port .. "\n")
io.stdout:flush()
uv.run()

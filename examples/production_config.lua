--- Configuration for production: the `production` preset and sampling.
--
-- A long-running service keeps what inspection costs bounded: a smaller event ring,
-- a cap on the finished task records kept, no yield locations, and optionally only a
-- fraction of new tasks tracked (decided when each coroutine is created). The same
-- settings come from the environment without touching the code:
--
--   ASYNC_INSPECT_PRESET=production ASYNC_INSPECT_SAMPLE=0.1 lua5.4 app.lua
--
-- See docs/configuration.md.
-- Run: lua5.4 examples/production_config.lua
local ai = require "async_inspect"

local function serve_requests(n)
  for _ = 1, n do
    local co = coroutine.create(function()
      coroutine.yield()  -- waiting for the database, say
    end)
    coroutine.resume(co)
    coroutine.resume(co)
  end
end

-- the production preset, with a smaller cap to see it act
ai.configure{ preset = "production", max_tasks = 1000, seed = 7 }
local s = ai.settings()
print(("production: ring %d events, keep %d finished tasks, locations %s, long poll %.0f ms")
  :format(s.ring_capacity, s.max_tasks, tostring(s.locations), s.long_poll_ns / 1e6))

serve_requests(20000)
local stats = ai.stats()
print(("after 20000 requests: %d records kept, %d evicted, %d events kept, %d overwritten")
  :format(#ai.tasks(), stats.evicted, stats.events, stats.events_dropped))
assert(#ai.tasks() == 1000 and stats.evicted == 19000)
assert(stats.events == s.ring_capacity and stats.events_dropped > 0)

-- sampling: one coroutine in ten is tracked; the others cost one branch per call
ai.reset()
ai.configure{ sample = 0.1 }
serve_requests(20000)
local tracked = ai.stats().tasks
print(("sampled at 10%%: %d of 20000 tasks tracked"):format(tracked))
assert(tracked > 1500 and tracked < 2500)
print(ai.report.compact())

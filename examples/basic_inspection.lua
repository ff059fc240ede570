-- Basic inspection: a few coroutine tasks with inspection points, then the
-- summary and the timeline. Run it with `make demo` or:
--   lua5.4 examples/basic_inspection.lua
local ai = require "async_inspect"

-- a tiny round-robin scheduler: plain coroutines, nothing special
local ready = {}
local function spawn(name, fn, ...)
  local co = coroutine.create(fn):inspect(name)
  ready[#ready + 1] = { co = co, args = table.pack(...) }
  return co
end

local function run()
  while #ready > 0 do
    local job = table.remove(ready, 1)
    local ok, err = coroutine.resume(job.co, table.unpack(job.args, 1, job.args.n))
    if not ok then io.stderr:write("task failed: ", tostring(err), "\n") end
    if coroutine.status(job.co) == "suspended" then
      ready[#ready + 1] = { co = job.co, args = { n = 0 } }
    end
  end
end

local function fetch(url, steps)
  ai.point("request sent", url)
  for i = 1, steps do
    ai.await_point("waiting for chunk " .. i)
    coroutine.yield()
  end
  ai.point("response complete", url)
  return #url
end

local function process(items)
  for i = 1, items do
    local _ <close> = ai.task("item " .. i)   -- a block tracked as a task
    ai.point("processing", tostring(i))
    coroutine.yield()
  end
end

spawn("fetch users", fetch, "https://example.invalid/users", 3)
spawn("fetch posts", fetch, "https://example.invalid/posts", 2)
spawn("process batch", process, 2)
spawn("flaky", function()
  coroutine.yield()
  error("upstream timed out")
end)
-- not scheduled again after its first resume: it waits forever, and the
-- summary shows it as blocked
local waiter = coroutine.create(function()
  ai.await_point("waiting for a signal that never comes")
  coroutine.yield()
end):inspect("waiter")
coroutine.resume(waiter)

run()

ai.report.print_summary()
print()
ai.report.print_timeline{ limit = 30 }
print()
ai.report.print_tree()

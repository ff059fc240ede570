-- A small explicit run-queue scheduler for the sync and deadlock specs: tasks run in
-- the order they became ready; `wake` (the hook ai.sync.set_scheduler takes) queues a
-- coroutine, `run` resumes queued coroutines until none is left.

local M = {}

--- A new scheduler: `{wake=, spawn=, run=, pass=, pending=, failures=}`.
-- `spawn(fn, name)` creates a named task and queues it; `run()` returns the number of
-- resumes made; `failures` collects `{co=, err=}` of tasks that raised.
function M.new()
  local ready, head, tail = {}, 1, 0
  local sched = { failures = {} }

  function sched.wake(co)
    tail = tail + 1
    ready[tail] = co
  end

  function sched.spawn(fn, name, ...)
    local args = table.pack(...)
    local co = coroutine.create(function() return fn(table.unpack(args, 1, args.n)) end)
    if name then require("async_inspect").name(co, name) end
    sched.wake(co)
    return co
  end

  function sched.run(limit)
    local resumes = 0
    limit = limit or math.huge
    while head <= tail and resumes < limit do
      local co = ready[head]
      ready[head] = nil
      head = head + 1
      if coroutine.status(co) == "suspended" then
        resumes = resumes + 1
        local ok, err = coroutine.resume(co)
        if not ok then sched.failures[#sched.failures + 1] = { co = co, err = err } end
      end
    end
    if head > tail then head, tail = 1, 0 end
    return resumes
  end

  -- let the other ready tasks run, then continue (the running task queues itself)
  function sched.pass()
    sched.wake(coroutine.running())
    coroutine.yield()
  end

  function sched.pending() return tail - head + 1 end

  return sched
end

return M

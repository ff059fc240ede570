-- Snapshot fixtures that follow docs/internals.md exactly, for the view, model and
-- dashboard specs.
local M = {}

local MS = 1000000

-- Events of a small program: a main loop task (1) spawning workers (2, 3, 4) and a
-- block task (5); worker 2 suspends twice, 3 completes, 4 fails.
function M.events()
  local ev = {}
  local seq = 0
  local function add(t, task, kind, loc, other, detail)
    seq = seq + 1
    ev[#ev + 1] = { seq = seq, t = t, task = task, kind = kind, loc = loc, other = other,
      detail = detail }
  end
  add(0, 1, "spawn", "app.lua:10", nil)
  add(1 * MS, 1, "resume", nil, nil)
  add(2 * MS, 2, "spawn", "app.lua:20", 1)
  add(3 * MS, 3, "spawn", "app.lua:21", 1)
  add(4 * MS, 4, "spawn", "app.lua:22", 1)
  add(5 * MS, 1, "yield", "app.lua:30", nil, "tick")
  add(10 * MS, 2, "resume", nil, nil, "timer")
  add(12 * MS, 2, "yield", "worker.lua:33", nil, "read")
  add(20 * MS, 3, "resume", nil, nil)
  add(21 * MS, 3, "name", "fetcher", nil)
  add(25 * MS, 3, "complete", nil, nil)
  add(30 * MS, 4, "resume", nil, nil)
  add(31 * MS, 4, "fail", nil, nil, "worker.lua:50: boom")
  add(40 * MS, 2, "resume", nil, nil, "fs")
  add(44 * MS, 2, "yield", "worker.lua:33", nil, "read")
  add(50 * MS, 2, "resume", nil, nil, "fs")
  add(51 * MS, 2, "point", "parsed", nil, "3 rows")
  add(58 * MS, 2, "yield", "worker.lua:40", nil, "write")
  add(60 * MS, 5, "spawn", "app.lua:60", nil)
  add(61 * MS, 5, "resume", nil, nil)
  add(62 * MS, 5, "complete", nil, nil)
  return ev
end

-- The snapshot at t = 100 ms of the program above, as the core reports it.
function M.snapshot()
  return {
    t = 100 * MS,
    stats = { tasks = 5, active = 2, running = 0, suspended = 2, pending = 0, completed = 2,
      failed = 1, cancelled = 0, dropped = 0, events = 21, events_dropped = 0, evicted = 0,
      uptime = 100 * MS },
    tasks = {
      { id = 1, name = "main loop", state = "suspended", kind = "coroutine", created = 0,
        created_at = "app.lua:10", first_resume = 1 * MS, last_change = 5 * MS, resumes = 1,
        busy = 4 * MS, where = "app.lua:30", where_fn = "loop", await = "tick", wait = "timer" },
      { id = 2, name = "worker 1", parent = 1, state = "suspended", kind = "coroutine",
        created = 2 * MS, created_at = "app.lua:20", first_resume = 10 * MS,
        last_change = 58 * MS, resumes = 3, busy = 14 * MS, where = "worker.lua:40",
        where_fn = "flush", await = "write", wait = "lock:db" },
      { id = 3, name = "fetcher", parent = 1, state = "completed", kind = "coroutine",
        created = 3 * MS, created_at = "app.lua:21", first_resume = 20 * MS,
        last_change = 25 * MS, ended = 25 * MS, resumes = 1, busy = 5 * MS },
      { id = 4, name = "worker 2", parent = 1, state = "failed", kind = "coroutine",
        created = 4 * MS, created_at = "app.lua:22", first_resume = 30 * MS,
        last_change = 31 * MS, ended = 31 * MS, resumes = 1, busy = 1 * MS,
        error = "worker.lua:50: boom",
        traceback = "stack traceback:\n\tworker.lua:50: in function 'work'" },
      { id = 5, name = "load config", state = "completed", kind = "block", created = 60 * MS,
        created_at = "app.lua:60", first_resume = 61 * MS, last_change = 62 * MS,
        ended = 62 * MS, resumes = 1, busy = 1 * MS },
    },
    events = M.events(),
    resources = {
      { id = 1, name = "db", kind = "mutex",
        holders = { { task = 1, since = 5 * MS, at = "app.lua:28", count = 1 } },
        waiters = { { task = 2, since = 58 * MS, at = "worker.lua:40" } },
        acquisitions = 12, contended = 3, wait_total = 30 * MS, wait_max = 20 * MS,
        deadlocked = true },
      { id = 2, name = "jobs", kind = "channel", holders = {}, waiters = {},
        acquisitions = 40, contended = 0, wait_total = 0, wait_max = 0, capacity = 8,
        size = 2, closed = false, deadlocked = false },
    },
    deadlocks = {
      { t = 58 * MS, tasks = {
        { task = 2, name = "worker 1", waits_for = "db", at = "worker.lua:40", held_by = 1,
          acquired_at = "app.lua:28", waited = 42 * MS } },
        text = "deadlock: worker 1 waits for db held by main loop" },
    },
    warnings = {
      { lint = "long_poll", severity = "warn", task = 2, name = "worker 1",
        loc = "worker.lua:40", value = 8 * MS,
        message = "worker 1 ran 8ms without yielding at worker.lua:40",
        recommendation = "split the work between yields or move it to a worker thread" },
      { lint = "unjoined_failure", severity = "error", task = 4, name = "worker 2",
        message = "worker 2 failed and nobody joined it: worker.lua:50: boom",
        recommendation = "join the task or handle its error" },
    },
  }
end

-- A snapshot with n tasks (ids 1..n) for scrolling and layout checks.
function M.many(n)
  local snap = { t = 10 * 1000 * MS, stats = { events = 0, events_dropped = 0 }, tasks = {} }
  local states = { "suspended", "completed", "pending", "running", "failed" }
  for i = 1, n do
    snap.tasks[i] = {
      id = i, name = ("task-%03d"):format(i), state = states[i % #states + 1],
      kind = "coroutine", created = i * MS, created_at = ("gen.lua:%d"):format(i),
      last_change = i * 2 * MS, resumes = i, busy = (n - i + 1) * MS,
      parent = i > 1 and (i // 2) or nil,
      ended = states[i % #states + 1] == "completed" and i * 3 * MS or nil,
      where = states[i % #states + 1] == "suspended" and ("gen.lua:%d"):format(100 + i) or nil,
    }
  end
  return snap
end

return M

-- Deadlocks caught as they form (mutex, read-write lock, semaphore and join cycles),
-- reports and policies, stuck-task classification when the scheduler runs dry, and
-- healthy high-contention workloads with no false report.

local ai = require("async_inspect")
local sync = require("async_inspect.sync")
local deadlock = require("async_inspect.deadlock")
local resource = require("async_inspect.resource")
local runqueue = require("spec.support.runqueue")
local markers = require("spec.support.markers")

local THIS = "spec/deadlock_spec.lua"

local _, at = markers.in_file(THIS)

-- stderr captured while a test runs: what the "report" policy prints
local printed
local real_stderr = io.stderr
local fake_stderr = { write = function(self, ...)
  for _, s in ipairs({ ... }) do printed[#printed + 1] = tostring(s) end
  return self
end }

local function printed_text() return table.concat(printed) end

local function count(text, pattern)
  local n = 0
  for _ in text:gmatch(pattern) do n = n + 1 end
  return n
end

local rq

local function setup(policy)
  ai.install()
  ai.enable()
  ai.configure{ preset = "default", deadlock = policy or "report" }
  ai.reset()
  deadlock.clear()
  rq = runqueue.new()
  sync.set_scheduler(rq)
  printed = {}
  rawset(io, "stderr", fake_stderr) -- deadlock.lua writes to io.stderr at call time
end

local function teardown()
  rawset(io, "stderr", real_stderr)
  sync.set_scheduler(nil)
  ai.configure{ deadlock = "report" }
  collectgarbage()
end

-- tasks 1..n each lock mutex i, then lock mutex i+1 (the last one locks mutex 1)
local function mutex_ring(n)
  local m = {}
  for i = 1, n do m[i] = sync.mutex("m" .. i) end
  for i = 1, n do
    rq.spawn(function()
      m[i]:lock() -- RING-FIRST
      rq.pass()
      m[i % n + 1]:lock() -- RING-SECOND
    end, "worker-" .. i)
  end
  rq.run()
  return m
end

describe("cycles caught as they form", function()
  before_each(function() setup() end)
  after_each(teardown)

  it("reports mutex cycles of 2 to 50 tasks once, with every task, lock and line", function()
    local first, second = at("-- RING-FIRST"), at("-- RING-SECOND")
    for n = 2, 50 do
      ai.reset()
      deadlock.clear()
      printed = {}
      local ring = mutex_ring(n) -- kept: a deadlocked cycle nobody references is collected
      local list = deadlock.deadlocks()
      assert.are.equal(1, #list)
      local report = list[1]
      assert.is_true(report.active, "n=" .. n)
      assert.are.equal(n, #report.tasks)
      -- the last task to wait closed the cycle; it comes first
      assert.are.equal("worker-" .. n, report.tasks[1].name)
      assert.are.equal("m1", report.tasks[1].waits_for)
      assert.are.equal("worker-1", report.tasks[1].held_by_name)
      for i, step in ipairs(report.tasks) do
        local k = i == 1 and n or i - 1 -- task worker-k waits for lock m(k+1)
        assert.are.equal("worker-" .. k, step.name)
        assert.are.equal("m" .. (k % n + 1), step.waits_for)
        assert.are.equal("mutex", step.kind)
        assert.are.equal(second, step.at)
        assert.are.equal(first, step.acquired_at)
        assert.are.equal("worker-" .. (k % n + 1), step.held_by_name)
        assert.is_true(step.waited >= 0)
        assert.truthy(report.text:find(("#%d worker%%-%d waits for mutex 'm%d' at %s"):format(
          step.task, k, k % n + 1, second:gsub("%p", "%%%0")), 1))
      end
      assert.truthy(report.text:find(("deadlock: %d tasks wait for each other"):format(n), 1, true))
      assert.truthy(report.text:find("acquired at " .. first, 1, true))
      -- printed once, at formation
      assert.are.equal(1, count(printed_text(), "deadlock: "))
      assert.are.equal(report.text, printed_text():match("async_inspect: (.-)\n$"))
      assert.are.equal(n, #ring)
    end
  end)

  it("marks the resources of a cycle as deadlocked in snapshots", function()
    local ring = mutex_ring(3)
    local snap = ai.snapshot()
    local by_name = {}
    for _, r in ipairs(snap.resources) do by_name[r.name] = r end
    for i = 1, 3 do
      local r = by_name["m" .. i]
      assert.is_true(r.deadlocked)
      assert.are.equal(1, #r.holders)
      assert.are.equal(1, #r.waiters)
      assert.is_true(r.waiters[1].deadlocked)
      assert.are.equal(at("-- RING-FIRST"), r.holders[1].at)
      assert.are.equal(at("-- RING-SECOND"), r.waiters[1].at)
    end
    assert.are.equal(1, #snap.deadlocks)
    assert.is_true(snap.deadlocks[1].active)
    -- the waiting tasks say what they wait for, and where
    for _, t in ipairs(ai.tasks{ name = "^worker" }) do
      assert.truthy(t.wait:find("^lock:m%d$"))
      assert.truthy(t.await:find("^mutex m%d$"))
      assert.are.equal(at("-- RING-SECOND"), t.where)
    end
    assert.are.equal(3, #ring)
  end)

  it("reports a task locking a mutex it holds", function()
    local m = sync.mutex("config")
    rq.spawn(function()
      m:lock()
      m:lock() -- RELOCK
    end, "reloader")
    rq.run()
    local report = deadlock.deadlocks()[1]
    assert.are.equal(1, #report.tasks)
    assert.are.equal("reloader", report.tasks[1].held_by_name)
    assert.truthy(report.text:find("deadlock: a task waits for itself", 1, true))
    assert.truthy(report.text:find("waits for mutex 'config' at " .. at("-- RELOCK"), 1, true))
    assert.truthy(report.text:find("not re-entrant", 1, true))
  end)

  it("reports a read-to-write upgrade deadlock", function()
    local rw = sync.rwlock("table")
    for _, name in ipairs({ "upgrader-1", "upgrader-2" }) do
      rq.spawn(function()
        rw:read_lock() -- READ
        rq.pass()
        rw:write_lock() -- UPGRADE
      end, name)
    end
    rq.run()
    local list = deadlock.deadlocks()
    assert.are.equal(2, #list) -- each upgrade waits for itself
    local step = list[1].tasks[1]
    assert.are.equal("upgrader-1", step.name)
    assert.are.equal("write", step.mode)
    assert.are.equal("read", step.hold_mode)
    assert.are.equal(at("-- UPGRADE"), step.at)
    assert.are.equal(at("-- READ"), step.acquired_at)
    assert.truthy(list[1].text:find("rwlock 'table' (write)", 1, true))
    assert.truthy(list[1].text:find("read-to-write upgrade", 1, true))
    assert.truthy(list[1].text:find("and 1 other holder", 1, true))
  end)

  it("reports a semaphore cycle only when every holder is blocked", function()
    local pool = sync.semaphore("pool", 2)
    local m = sync.mutex("state")
    rq.spawn(function()
      pool:acquire() -- POOL-A
      rq.pass()
      m:lock() -- WAIT-STATE
    end, "a")
    rq.spawn(function()
      m:lock() -- STATE
      rq.pass()
      pool:acquire() -- WAIT-POOL
    end, "c")
    rq.spawn(function()
      pool:acquire() -- POOL-B
      rq.pass()
      rq.pass()
      m:lock() -- WAIT-STATE-B
    end, "b")
    rq.run()
    -- c waits for the pool held by a and b: a waits for c, but b was still free then
    local list = deadlock.deadlocks()
    assert.are.equal(1, #list)
    local report = list[1]
    assert.are.equal("b", report.tasks[1].name) -- b's wait closed it
    local names = {}
    for _, s in ipairs(report.tasks) do names[#names + 1] = s.name end
    table.sort(names)
    assert.are.same({ "b", "c" }, names)
    assert.truthy(report.text:find("semaphore 'pool'", 1, true))
    assert.truthy(report.text:find("waits for mutex 'state' at " .. at("-- WAIT-STATE-B"), 1, true))
    assert.truthy(report.text:find("acquired at " .. at("-- STATE"), 1, true))
    assert.truthy(report.text:find("other holder", 1, true))
  end)

  it("stays quiet when a semaphore holder can still release", function()
    local pool = sync.semaphore("pool", 2)
    local m = sync.mutex("state")
    local done = 0
    rq.spawn(function()
      pool:acquire()
      rq.pass()
      m:lock()
      m:unlock()
      pool:release()
      done = done + 1
    end, "a")
    rq.spawn(function()
      m:lock()
      rq.pass()
      pool:acquire() -- waits: a and b hold both permits, a waits for m
      pool:release()
      m:unlock()
      done = done + 1
    end, "c")
    rq.spawn(function()
      pool:acquire()
      rq.pass()
      rq.pass()
      pool:release() -- b was free all along
      done = done + 1
    end, "b")
    rq.run()
    assert.are.equal(3, done)
    assert.are.equal(0, #deadlock.deadlocks())
    assert.are.equal("", printed_text())
  end)

  it("reports a join cycle (A joins B joins A) through the graph API", function()
    local a, b
    a = rq.spawn(function()
      rq.pass()
      deadlock.wait_for_task(coroutine.running(), b) -- JOIN-B
      coroutine.yield()
    end, "A")
    b = rq.spawn(function()
      rq.pass()
      rq.pass()
      deadlock.wait_for_task(coroutine.running(), a) -- JOIN-A
      coroutine.yield()
    end, "B")
    rq.run()
    local report = deadlock.deadlocks()[1]
    assert.are.equal(2, #report.tasks)
    assert.are.equal("B", report.tasks[1].name)
    assert.are.equal("join", report.tasks[1].kind)
    assert.are.equal("A", report.tasks[1].held_by_name)
    assert.are.equal(at("-- JOIN-A"), report.tasks[1].at)
    assert.are.equal(at("-- JOIN-B"), report.tasks[2].at)
    assert.truthy(report.text:find(("#%d B waits for #%d A to end (join) at %s"):format(
      ai.task_info(b).id, ai.task_info(a).id, at("-- JOIN-A")), 1, true))
    assert.are.equal("join:" .. ai.task_info(a).id, ai.task_info(b).wait)
    -- the joins end: nothing is left in the graph
    deadlock.done_waiting(a)
    deadlock.done_waiting(b)
    assert.are.equal(0, ai.core.wg_stats().nodes)
    assert.is_nil(ai.task_info(b).wait)
  end)

  it("puts joins and locks in one graph", function()
    local m = sync.mutex("shared")
    local worker
    rq.spawn(function()
      m:lock()
      rq.pass()
      deadlock.wait_for_task(coroutine.running(), worker) -- JOIN-WORKER
      coroutine.yield()
    end, "parent")
    worker = rq.spawn(function()
      rq.pass()
      m:lock() -- WORKER-LOCK
    end, "worker")
    rq.run()
    local report = deadlock.deadlocks()[1]
    assert.are.equal(2, #report.tasks)
    local waits = "worker waits for mutex 'shared' at " .. at("-- WORKER-LOCK")
    assert.truthy(report.text:find(waits, 1, true))
    assert.truthy(report.text:find("worker to end (join) at " .. at("-- JOIN-WORKER"), 1, true))
  end)

  it("runs on_deadlock callbacks with the report until removed", function()
    local seen = {}
    local off = deadlock.on_deadlock(function(r) seen[#seen + 1] = r end)
    mutex_ring(2)
    off()
    mutex_ring(2)
    assert.are.equal(1, #seen)
    assert.are.equal(2, #seen[1].tasks)
    assert.are.equal(seen[1].text, deadlock.deadlocks()[1].text)
    -- a failing callback is reported, never raised into the task
    local off2 = deadlock.on_deadlock(function() error("callback bug") end)
    mutex_ring(2)
    off2()
    assert.truthy(printed_text():find("on_deadlock callback failed", 1, true))
    assert.are.equal(0, #rq.failures)
  end)

  it("checks its arguments", function()
    assert.has_error(function() deadlock.on_deadlock(42) end,
      "bad argument #1 to 'on_deadlock' (function expected, got number)")
    assert.has_error(function() deadlock.wait_for_task("x", 1) end,
      "bad argument #1 to 'wait_for_task' (coroutine or task id expected, got string)")
    assert.has_error(function() deadlock.wait_for_task(1, nil) end,
      "bad argument #2 to 'wait_for_task' (coroutine or task id expected, got no value)")
    assert.has_error(function() deadlock.wait_for_task(1, 2, {}) end,
      "bad argument #3 to 'wait_for_task' (string or level expected, got table)")
    assert.has_error(function() deadlock.done_waiting({}) end,
      "bad argument #1 to 'done_waiting' (coroutine or task id expected, got table)")
    assert.has_error(function() deadlock.stuck(1) end,
      "bad argument #1 to 'stuck' (table expected, got number)")
    assert.has_error(function() deadlock.format({}) end,
      "bad argument #1 to 'format' (deadlock report expected)")
  end)
end)

describe("deadlock policy", function()
  after_each(teardown)

  it("'error' raises in the task that closed the cycle, its wait undone", function()
    setup("error")
    local m = mutex_ring(2)
    assert.are.equal(1, #rq.failures)
    local err = rq.failures[1].err
    assert.are.equal("worker-2", ai.task_info(rq.failures[1].co).name)
    assert.truthy(err:find("^" .. at("-- RING-SECOND"):gsub("%p", "%%%0") .. ": deadlock: 2 tasks"))
    assert.are.equal("", printed_text())
    -- worker-1 still waits for m2, which worker-2 held when it failed: a leaked lock
    local r2 = ai.core.wg_resource(m[2]._h)
    assert.are.equal(1, #r2.waiters)
    local r1 = ai.core.wg_resource(m[1]._h)
    assert.are.equal(0, #r1.waiters)
    local stuck = deadlock.stuck()
    assert.are.equal(1, #stuck)
    assert.are.equal("leaked_lock", stuck[1].kind)
    assert.are.equal(1, #deadlock.deadlocks())
    assert.is_false(deadlock.deadlocks()[1].active)
  end)

  it("'error' raises from the graph API for joins", function()
    setup("error")
    local a, b
    a = rq.spawn(function()
      deadlock.wait_for_task(coroutine.running(), b)
      coroutine.yield()
    end, "A")
    b = rq.spawn(function()
      deadlock.wait_for_task(coroutine.running(), a) -- JOIN-RAISES
    end, "B")
    rq.run()
    assert.are.equal(1, #rq.failures)
    assert.truthy(rq.failures[1].err:find(at("-- JOIN-RAISES") .. ": deadlock", 1, true))
    assert.is_nil(ai.task_info(b).wait)
  end)

  it("'ignore' prints nothing and calls nobody, but snapshots keep the cycle", function()
    setup("ignore")
    local calls = 0
    local off = deadlock.on_deadlock(function() calls = calls + 1 end)
    local ring = mutex_ring(4)
    off()
    assert.are.equal(0, calls)
    assert.are.equal("", printed_text())
    assert.are.equal(0, #rq.failures)
    assert.are.equal(1, #ai.snapshot().deadlocks)
    assert.are.equal(4, #deadlock.on_idle()) -- classified, not printed
    assert.are.equal("", printed_text())
    assert.are.equal(4, #ring)
  end)
end)

describe("stuck tasks", function()
  before_each(function() setup() end)
  after_each(teardown)

  local function by_kind(findings)
    local out = {}
    for _, f in ipairs(findings) do
      out[f.kind] = out[f.kind] or {}
      table.insert(out[f.kind], f)
    end
    return out
  end

  it("names the task that failed holding a lock, and where it acquired it", function()
    local m = sync.mutex("ledger")
    rq.spawn(function()
      m:lock() -- LEAK
      error("disk full")
    end, "writer")
    rq.spawn(function()
      m:lock() -- BLOCKED-BY-LEAK
    end, "reader")
    rq.run()
    assert.are.equal(1, #rq.failures)
    -- certain at any time, not only when the loop is idle
    local found = deadlock.stuck()
    assert.are.equal(1, #found)
    local f = found[1]
    assert.are.equal("leaked_lock", f.kind)
    assert.are.equal("reader", f.name)
    assert.are.equal(at("-- BLOCKED-BY-LEAK"), f.loc)
    assert.truthy(f.message:find("mutex 'ledger'", 1, true))
    assert.truthy(f.message:find("#%d+ writer which failed: " .. THIS:gsub("%p", "%%%0") .. ":%d+: disk full"))
    assert.truthy(f.message:find("acquired it at " .. at("-- LEAK"), 1, true))
    -- and the diagnosers find it
    local diag = by_kind(ai.diagnose())
    assert.are.equal(1, #diag.leaked_lock)
  end)

  it("classifies a channel deadlock where both sides wait", function()
    local ping, pong = sync.channel("ping"), sync.channel("pong")
    rq.spawn(function()
      local v = ping:recv() -- LEFT-RECV
      pong:send(v)
    end, "left")
    rq.spawn(function()
      local v = pong:recv() -- RIGHT-RECV
      ping:send(v)
    end, "right")
    rq.run()
    assert.are.same({}, deadlock.stuck()) -- not certain while the scheduler may still run
    local found = by_kind(deadlock.on_idle())
    assert.are.equal(2, #found.dead_channel)
    local left, right = found.dead_channel[1], found.dead_channel[2]
    assert.are.equal("left", left.name)
    assert.truthy(left.message:find("waits to receive from channel 'ping' at " .. at("-- LEFT-RECV"), 1, true))
    assert.truthy(right.message:find("waits to receive from channel 'pong' at " .. at("-- RIGHT-RECV"), 1, true))
    assert.truthy(right.message:find("all others have ended or are stuck", 1, true))
    assert.truthy(printed_text():find("stuck: 2 tasks can never continue", 1, true))
  end)

  it("classifies a receiver whose senders all ended, without waiting for idle", function()
    local ch = sync.channel("results", 1)
    rq.spawn(function() ch:send(1) end, "producer")
    rq.spawn(function()
      ch:recv()
      ch:recv() -- SECOND-RECV
    end, "consumer")
    rq.run()
    local found = deadlock.stuck()
    assert.are.equal(1, #found)
    assert.are.equal("dead_channel", found[1].kind)
    assert.truthy(found[1].message:find("every other task has ended", 1, true))
    assert.are.equal(at("-- SECOND-RECV"), found[1].loc)
  end)

  it("classifies lost wake-ups: a missed event and a task nobody resumes", function()
    local ev = sync.event("ready")
    rq.spawn(function()
      ev:set()
      ev:clear() -- a pulse nobody saw
    end, "signaller")
    rq.spawn(function()
      ev:wait() -- MISSED
    end, "sleeper")
    local parked = {}
    rq.spawn(function()
      parked[#parked + 1] = coroutine.running()
      coroutine.yield() -- PARKED
    end, "parked")
    rq.run()
    local found = by_kind(deadlock.on_idle())
    assert.are.equal(2, #found.lost_wakeup)
    local ev_f, raw_f = found.lost_wakeup[1], found.lost_wakeup[2]
    assert.are.equal("sleeper", ev_f.name)
    assert.truthy(ev_f.message:find("waits for event 'ready' at " .. at("-- MISSED"), 1, true))
    assert.are.equal("parked", raw_f.name)
    assert.truthy(raw_f.message:find("suspended at " .. at("-- PARKED") .. " with nothing left", 1, true))
    -- only tasks in scope
    local only = deadlock.stuck{ idle = true, tasks = { [ai.task_info(parked[1]).id] = true } }
    assert.are.equal(1, #only)
  end)

  it("classifies a task blocked behind a stuck one, and deadlocked ones", function()
    local m = sync.mutex("behind")
    local gate = sync.event("never")
    rq.spawn(function()
      m:lock()
      gate:wait()
    end, "holder")
    rq.spawn(function() m:lock() end, "queued")
    local closed_gate = sync.semaphore("gate", 0)
    rq.spawn(function()
      closed_gate:acquire() -- GATE
    end, "at the gate")
    local full = sync.channel("full", 0)
    rq.spawn(function()
      full:send("nobody listens") -- FULL-SEND
    end, "sender")
    local ring = mutex_ring(2)
    local found = by_kind(deadlock.on_idle())
    assert.are.equal(2, #found.blocked)
    assert.are.equal("queued", found.blocked[1].name)
    assert.truthy(found.blocked[1].message:find("held by #%d+ holder which is stuck"))
    assert.truthy(found.blocked[2].message:find("waits for semaphore 'gate' at " .. at("-- GATE")
      .. ", held by nobody: nothing is left to release it", 1, true))
    assert.are.equal(1, #found.dead_channel)
    local send_text = "waits to send on channel 'full' at " .. at("-- FULL-SEND")
    assert.truthy(found.dead_channel[1].message:find(send_text, 1, true))
    assert.are.equal(1, #found.lost_wakeup)
    assert.are.equal(2, #found.deadlock)
    -- the diagnoser gives one finding per active cycle, with the whole report
    local snap = ai.snapshot()
    snap.idle = true
    local diag = by_kind(ai.diagnose(snap))
    assert.are.equal(1, #diag.deadlock)
    assert.are.equal(2, #diag.blocked)
    local pattern = "^deadlock of 2 tasks %(formed at t=[%d.]+s%): #%d+ worker%-2 waits for "
      .. "mutex 'm1' at " .. at("-- RING-SECOND"):gsub("%p", "%%%0") .. "; #%d+ worker%-1 waits for mutex 'm2'"
    assert.truthy(diag.deadlock[1].message:find(pattern))
    assert.are.equal(2, #ring)
  end)
end)

describe("manual resources", function()
  before_each(function() setup() end)
  after_each(teardown)

  it("track other libraries' locks: holders, waits, cycles", function()
    local r1, r2 = resource("file a", "flock"), resource.new("file b", "mutex")
    local a, b
    a = rq.spawn(function()
      r1:acquired() -- MANUAL-A
      rq.pass()
      r2:waiting() -- MANUAL-WAIT
      coroutine.yield()
    end, "a")
    b = rq.spawn(function()
      r2:acquired()
      rq.pass()
      r1:waiting()
      coroutine.yield()
    end, "b")
    rq.run()
    local report = deadlock.deadlocks()[1]
    assert.are.equal(2, #report.tasks)
    assert.are.equal("file a", report.tasks[1].waits_for)
    assert.are.equal(at("-- MANUAL-A"), report.tasks[1].acquired_at)
    assert.are.equal(at("-- MANUAL-WAIT"), report.tasks[2].at)
    local snap = ai.snapshot()
    local kinds = {}
    for _, r in ipairs(snap.resources) do kinds[r.name] = { r.kind, r.type } end
    assert.are.same({ "custom", "flock" }, kinds["file a"])
    assert.are.same({ "mutex" }, kinds["file b"])
    assert.are.equal("resource:file a", ai.task_info(b).wait)
    assert.is_not_nil(a)
  end)

  it("counts contention from waiting() to acquired() and checks arguments", function()
    local r = resource("conn", "semaphore")
    local co = coroutine.create(function()
      r:waiting()
      coroutine.yield()
      r:acquired(nil, 2)
      coroutine.yield()
      assert(r:released(2))
    end)
    coroutine.resume(co)
    coroutine.resume(co)
    local info = ai.core.wg_resource(r._h)
    assert.are.equal(1, info.contended)
    assert.are.equal(2, info.holders[1].count)
    assert.is_true(info.wait_max > 0)
    coroutine.resume(co)
    assert.are.equal(0, #ai.core.wg_resource(r._h).holders)
    assert.has_error(function() resource(1) end, "bad argument #1 to 'resource' (string expected, got number)")
    assert.has_error(function() r:waiting("sideways") end,
      "bad argument #2 to 'waiting' ('read', 'write', 'send', 'recv' or nil expected, got 'sideways')")
    assert.has_error(function() r:acquired(nil, 0) end,
      "bad argument #3 to 'acquired' (positive integer expected, got 0)")
    assert.has_error(function() r.released({}) end,
      "bad argument #1 to 'released' (resource expected, got table)")
    -- a cancelled wait leaves nothing behind
    local co2 = coroutine.create(function()
      r:waiting()
      coroutine.yield()
      r:cancelled()
    end)
    coroutine.resume(co2)
    coroutine.resume(co2)
    assert.are.equal(0, ai.core.wg_stats().nodes)
  end)
end)

describe("healthy workloads", function()
  before_each(function() setup() end)
  after_each(teardown)

  it("10,000 tasks hammering 10 mutexes and channels: no false report", function()
    local calls = 0
    local off = deadlock.on_deadlock(function() calls = calls + 1 end)
    local locks, chans = {}, {}
    for i = 1, 10 do
      locks[i] = sync.mutex("hot-" .. i)
      chans[i] = sync.channel("pipe-" .. i, i % 3) -- capacities 0, 1 and 2
    end
    local sum, received = 0, 0
    -- consumers drain each channel until it is closed
    local consumers = 0
    for i = 1, 10 do
      rq.spawn(function()
        consumers = consumers + 1
        while true do
          local v, ok = chans[i]:recv()
          if not ok then break end
          sum, received = sum + v, received + 1
        end
        consumers = consumers - 1
      end, "consumer-" .. i)
    end
    local N, finished = 10000, 0
    for t = 1, N do
      rq.spawn(function()
        -- always two locks in increasing order: contention without cycles
        local a, b = t % 10 + 1, (t * 7) % 10 + 1
        if a > b then a, b = b, a end
        locks[a]:lock()
        rq.pass()
        if b ~= a then locks[b]:lock() end
        chans[t % 10 + 1]:send(t)
        if b ~= a then locks[b]:unlock() end
        locks[a]:unlock()
        finished = finished + 1
      end, "hammer-" .. t)
    end
    rq.run()
    assert.are.equal(N, finished)
    for i = 1, 10 do chans[i]:close() end
    rq.run()
    off()
    assert.are.equal(0, consumers)
    assert.are.equal(N, received)
    assert.are.equal(N * (N + 1) // 2, sum)
    assert.are.equal(0, calls)
    assert.are.equal(0, #deadlock.deadlocks())
    assert.are.equal("", printed_text())
    assert.are.equal(0, #rq.failures)
    assert.are.same({}, deadlock.on_idle())
    -- contention was real, and the graph is empty again
    local contended = 0
    for i = 1, 10 do
      local r = ai.core.wg_resource(locks[i]._h)
      assert.are.equal(0, #r.holders)
      assert.are.equal(0, #r.waiters)
      assert.is_false(r.deadlocked)
      contended = contended + r.contended
    end
    assert.is_true(contended > N / 2)
    assert.are.equal(0, ai.core.wg_stats().nodes)
  end)
end)

describe("with the luv scheduler", function()
  before_each(function() setup() end)
  after_each(teardown)

  it("catches a deadlock between luv tasks as it forms, and lists them stuck at the end", function()
    local aio = require("async_inspect.luv")
    sync.set_scheduler(nil)
    local a, b = sync.mutex("A"), sync.mutex("B")
    aio.run(function()
      aio.spawn("left", function()
        a:lock()
        aio.sleep(1)
        b:lock() -- LUV-LEFT
      end)
      aio.spawn("right", function()
        b:lock()
        aio.sleep(1)
        a:lock() -- LUV-RIGHT
      end)
    end)
    local text = printed_text()
    assert.are.equal(1, count(text, "deadlock: 2 tasks wait for each other"))
    assert.truthy(text:find("right waits for mutex 'A' at " .. at("-- LUV-RIGHT"), 1, true))
    assert.truthy(text:find("left waits for mutex 'B' at " .. at("-- LUV-LEFT"), 1, true))
    assert.truthy(text:find("the loop ended with 2 tasks still suspended", 1, true))
    assert.truthy(text:find("deadlock of 2 tasks", 1, true))
    assert.are.equal(1, a._q.live) -- (a and b stay referenced: the cycle is not collected)
    assert.are.equal(1, b._q.live)
  end)
end)

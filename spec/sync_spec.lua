-- ai.sync: mutex, rwlock, semaphore, channel and event over a scheduler hook; what
-- they record (holders, waiters, statistics) and what they never do (keep a coroutine
-- alive, accept bad arguments, wait on the main thread).

local ai = require("async_inspect")
local sync = require("async_inspect.sync")
local deadlock = require("async_inspect.deadlock")
local runqueue = require("spec.support.runqueue")
local markers = require("spec.support.markers")

local THIS = "spec/sync_spec.lua"

local _, at = markers.in_file(THIS)

local rq

local function info(obj) return ai.core.wg_resource(obj._h) end

before_each(function()
  ai.install()
  ai.enable()
  ai.configure{ preset = "default", deadlock = "report" }
  ai.reset()
  deadlock.clear()
  rq = runqueue.new()
  sync.set_scheduler(rq)
end)

after_each(function()
  sync.set_scheduler(nil)
end)

describe("mutex", function()
  it("lets one task in at a time and hands over in arrival order", function()
    local m = sync.mutex("queue")
    local inside, max_inside, order = 0, 0, {}
    for i = 1, 5 do
      rq.spawn(function()
        m:lock()
        inside = inside + 1
        max_inside = math.max(max_inside, inside)
        order[#order + 1] = i
        rq.pass()
        inside = inside - 1
        m:unlock()
      end, "t" .. i)
    end
    rq.run()
    assert.are.equal(1, max_inside)
    assert.are.same({ 1, 2, 3, 4, 5 }, order)
    assert.is_false(m:locked())
    local r = info(m)
    assert.are.equal(5, r.acquisitions)
    assert.are.equal(4, r.contended)
    assert.is_true(r.wait_max > 0 and r.wait_total >= r.wait_max)
    assert.are.equal(0, #r.holders)
    assert.are.equal(0, ai.core.wg_stats().nodes)
  end)

  it("records holders and waiters with places, modes and times", function()
    local m = sync.mutex("records")
    local holder, waiter
    holder = rq.spawn(function()
      m:lock() -- HOLD
      coroutine.yield()
      m:unlock()
    end, "holder")
    waiter = rq.spawn(function()
      m:lock() -- WAIT
      m:unlock()
    end, "waiter")
    rq.run()
    local r = info(m)
    assert.are.equal("records", r.name)
    assert.are.equal("mutex", r.kind)
    assert.are.equal(ai.task_info(holder).id, r.holders[1].task)
    assert.are.equal(at("-- HOLD"), r.holders[1].at)
    assert.are.equal(1, r.holders[1].count)
    assert.are.equal(ai.task_info(waiter).id, r.waiters[1].task)
    assert.are.equal(at("-- WAIT"), r.waiters[1].at)
    assert.is_true(r.waiters[1].since >= r.holders[1].since)
    assert.is_false(r.deadlocked)
    local t = ai.task_info(waiter)
    assert.are.equal("lock:records", t.wait)
    assert.are.equal("mutex records", t.await)
    assert.are.equal(at("-- WAIT"), t.where)
    rq.wake(holder)
    rq.run()
    assert.is_nil(ai.task_info(waiter).wait)
    assert.are.equal("completed", ai.task_info(waiter).state)
    -- the waiter held it where it waited
    assert.are.equal(2, info(m).acquisitions)
  end)

  it("try_lock never waits; guard unlocks on errors too", function()
    local m = sync.mutex("guarded")
    assert.is_true(m:try_lock())
    assert.is_false(m:try_lock())
    m:unlock()
    local ok, err = pcall(function()
      local _ <close> = m:guard()
      assert.is_true(m:locked())
      error("inside")
    end)
    assert.is_false(ok)
    assert.truthy(err:find("inside", 1, true))
    assert.is_false(m:locked())
    do
      local _ <close> = m:guard()
      assert.is_true(m:locked())
    end
    assert.is_false(m:locked())
  end)

  it("refuses unlocks by others, waits on the main thread, and bad arguments", function()
    local m = sync.mutex("strict")
    assert.has_error(function() m:unlock() end,
      "bad argument #1 to 'unlock' (mutex 'strict' is not held by the running task)")
    rq.spawn(function() m:lock() end, "owner")
    rq.run()
    assert.has_error(function() m:unlock() end,
      "bad argument #1 to 'unlock' (mutex 'strict' is not held by the running task)")
    local ok, err = pcall(m.lock, m)
    assert.is_false(ok)
    assert.truthy(err:find("mutex 'strict' is not available and this thread cannot wait", 1, true))
    assert.are.equal(0, #info(m).waiters)
    assert.has_error(function() m.lock({}) end, "bad argument #1 to 'lock' (mutex expected, got table)")
    assert.has_error(function() m.unlock() end, "bad argument #1 to 'unlock' (mutex expected, got no value)")
    assert.has_error(function() sync.mutex(42) end, "bad argument #1 to 'mutex' (string expected, got number)")
    assert.has_error(function() sync.set_scheduler{} end,
      "bad argument #1 to 'set_scheduler' (table with a 'wake' function expected, got table)")
    -- a default name says where it was made
    local anon = sync.mutex() -- ANON
    assert.are.equal("mutex@" .. at("-- ANON"), anon.name)
    assert.are.equal("mutex 'strict'", tostring(m))
  end)

  it("takes a closed waiter out of the queue", function()
    local m = sync.mutex("cancel")
    local got = {}
    rq.spawn(function()
      m:lock()
      rq.pass()
      rq.pass()
      m:unlock()
    end, "first")
    local victim = rq.spawn(function()
      m:lock()
      got[#got + 1] = "victim"
    end, "victim")
    rq.spawn(function()
      m:lock()
      got[#got + 1] = "last"
      m:unlock()
    end, "last")
    rq.run(3) -- first holds it; victim and last wait
    assert.are.equal(2, #info(m).waiters)
    assert.is_true(coroutine.close(victim))
    assert.are.equal(1, #info(m).waiters)
    rq.run()
    assert.are.same({ "last" }, got)
    assert.is_false(m:locked())
    assert.are.equal(0, ai.core.wg_stats().nodes)
  end)

  it("keeps no finished coroutine alive, and frees its resource when collected", function()
    local weak = setmetatable({}, { __mode = "k" })
    collectgarbage()
    collectgarbage()
    local before = ai.core.wg_stats().resources
    do
      local m = sync.mutex("leaky")
      local co = rq.spawn(function() m:lock() end, "leaker") -- ends holding it
      weak[co] = true
      rq.run()
      assert.is_true(m:locked())
    end
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(weak))
    assert.are.equal(before, ai.core.wg_stats().resources)
  end)

  it("works untracked (recording off) and leaves nothing stale in the graph", function()
    local m = sync.mutex("quiet")
    ai.disable()
    for i = 1, 3 do
      rq.spawn(function()
        m:lock()
        rq.pass()
        m:unlock()
      end, "q" .. i)
    end
    rq.run()
    ai.enable()
    assert.is_false(m:locked())
    local r = info(m)
    assert.are.equal(0, #r.holders)
    assert.are.equal(0, r.held)
    assert.are.equal(0, ai.core.wg_stats().nodes)
    -- a reset while held: the hold becomes anonymous, then goes
    m:lock()
    ai.reset()
    assert.are.equal(1, info(m).held)
    m:unlock()
    assert.are.equal(0, info(m).held)
  end)
end)

describe("rwlock", function()
  it("admits readers together and writers alone, writers first", function()
    local rw = sync.rwlock("db")
    local log = {}
    local function reader(name)
      rq.spawn(function()
        rw:read_lock()
        log[#log + 1] = name .. "+" .. rw:readers()
        rq.pass()
        rw:read_unlock()
      end, name)
    end
    reader("r1")
    reader("r2")
    rq.spawn(function()
      rw:write_lock()
      log[#log + 1] = "w+" .. rw:readers()
      assert(rw:writing())
      rq.pass()
      rw:write_unlock()
    end, "w")
    reader("r3") -- arrives after the writer: waits for it
    rq.run()
    assert.are.same({ "r1+1", "r2+2", "w+0", "r3+1" }, log)
    local r = info(rw)
    assert.are.equal(4, r.acquisitions)
    assert.are.equal(2, r.contended)
    assert.are.equal(0, #r.holders)
  end)

  it("lets a reader read again while a writer waits, records modes", function()
    local rw = sync.rwlock("nested")
    local reader = rq.spawn(function()
      rw:read_lock() -- OUTER
      rq.pass()
      rw:read_lock() -- INNER: a writer waits by now
      coroutine.yield()
      rw:read_unlock()
      rw:read_unlock()
    end, "reader")
    rq.spawn(function()
      rw:write_lock() -- WRITER
      rw:write_unlock()
    end, "writer")
    rq.run()
    local r = info(rw)
    assert.are.equal(1, #r.holders)
    assert.are.equal(2, r.holders[1].count)
    assert.are.equal("read", r.holders[1].mode)
    assert.are.equal(at("-- OUTER"), r.holders[1].at)
    assert.are.equal("write", r.waiters[1].mode)
    assert.are.equal(at("-- WRITER"), r.waiters[1].at)
    assert.are.equal(2, rw:readers())
    rq.wake(reader)
    rq.run()
    assert.are.equal(0, rw:readers())
    assert.is_false(rw:writing())
    assert.are.equal(0, #deadlock.deadlocks())
  end)

  it("try locks, guards, and refusals", function()
    local rw = sync.rwlock("g")
    assert.is_true(rw:try_read_lock())
    assert.is_false(rw:try_write_lock())
    rw:read_unlock()
    assert.is_true(rw:try_write_lock())
    assert.is_false(rw:try_read_lock())
    rw:write_unlock()
    do
      local _ <close> = rw:read_guard()
      assert.are.equal(1, rw:readers())
    end
    do
      local _ <close> = rw:write_guard()
      assert.is_true(rw:writing())
    end
    assert.is_false(rw:writing())
    assert.has_error(function() rw:read_unlock() end,
      "bad argument #1 to 'read_unlock' (rwlock 'g' is not held by the running task)")
    assert.has_error(function() rw:write_unlock() end,
      "bad argument #1 to 'write_unlock' (rwlock 'g' is not held by the running task)")
    assert.has_error(function() rw.read_lock(1) end, "bad argument #1 to 'read_lock' (rwlock expected, got number)")
  end)

  it("lets waiting readers in when the writer ahead of them gives up", function()
    local rw = sync.rwlock("cancelled writer")
    local got = false
    rq.spawn(function()
      rw:read_lock()
      rq.pass()
      rq.pass()
    end, "holding reader")
    local writer = rq.spawn(function() rw:write_lock() end, "writer")
    rq.spawn(function()
      rw:read_lock()
      got = true
    end, "late reader")
    rq.run(3)
    assert.is_false(got)
    coroutine.close(writer)
    rq.run()
    assert.is_true(got)
  end)
end)

describe("semaphore", function()
  it("counts permits per holding task", function()
    local s = sync.semaphore("slots", 2)
    local inside, max_inside = 0, 0
    for i = 1, 6 do
      rq.spawn(function()
        local _ <close> = s:guard()
        inside = inside + 1
        max_inside = math.max(max_inside, inside)
        rq.pass()
        inside = inside - 1
      end, "s" .. i)
    end
    rq.run()
    assert.are.equal(2, max_inside)
    assert.are.equal(2, s:available())
    local r = info(s)
    assert.are.equal(6, r.acquisitions)
    assert.are.equal(4, r.contended)
    -- one task holding two permits shows as one holder with count 2
    local co = coroutine.create(function()
      s:acquire() -- TWICE
      s:acquire()
      coroutine.yield()
      s:release()
      s:release()
    end)
    coroutine.resume(co)
    r = info(s)
    assert.are.equal(1, #r.holders)
    assert.are.equal(2, r.holders[1].count)
    assert.are.equal(at("-- TWICE"), r.holders[1].at)
    for _, res in ipairs(ai.snapshot().resources) do
      if res.name == "slots" then
        assert.are.equal(2, res.capacity)
        assert.are.equal(0, res.available)
      end
    end
    coroutine.resume(co)
    assert.are.equal(2, s:available())
    assert.is_true(s:try_acquire())
    s:release()
  end)

  it("refuses releases by tasks holding no permit, and bad counts", function()
    local s = sync.semaphore("strict", 1)
    assert.has_error(function() s:release() end,
      "bad argument #1 to 'release' (semaphore 'strict' is not held by the running task)")
    assert.has_error(function() sync.semaphore("x", -1) end,
      "bad argument #2 to 'semaphore' (non-negative integer expected, got -1)")
    assert.has_error(function() sync.semaphore("x") end,
      "bad argument #2 to 'semaphore' (non-negative integer expected, got no value)")
    assert.has_error(function() sync.semaphore("x", 1.5) end,
      "bad argument #2 to 'semaphore' (non-negative integer expected, got 1.5)")
    local zero = sync.semaphore("zero", 0)
    assert.is_false(zero:try_acquire())
  end)
end)

describe("channel", function()
  it("delivers in order, unbounded, with nil values", function()
    local ch = sync.channel("unbounded")
    for i = 1, 3 do ch:send(i) end
    ch:send(nil)
    assert.are.equal(4, ch:len())
    local got = {}
    for _ = 1, 4 do got[#got + 1] = tostring((ch:recv())) end
    assert.are.same({ "1", "2", "3", "nil" }, got)
    assert.are.same({ nil, false }, { ch:try_recv() })
  end)

  it("bounded: senders wait while full; capacity 0 waits for a receiver", function()
    for _, cap in ipairs({ 0, 1, 3 }) do
      local ch = sync.channel("c" .. cap, cap)
      local sent, got = {}, {}
      rq.spawn(function()
        for i = 1, 6 do
          ch:send(i)
          sent[#sent + 1] = i
        end
        ch:close()
      end, "producer")
      rq.spawn(function()
        while true do
          local v, ok = ch:recv()
          if not ok then break end
          got[#got + 1] = v
          assert(#sent - #got <= cap + 1, "a send went past the capacity")
          rq.pass()
        end
      end, "consumer")
      rq.run()
      assert.are.same({ 1, 2, 3, 4, 5, 6 }, got)
      local r = info(ch)
      assert.are.equal(12, r.acquisitions)
      assert.is_true(r.contended > 0)
      assert.are.equal(0, #r.waiters)
    end
  end)

  it("close: receivers get nil, false; senders an error; buffered values stay", function()
    local ch = sync.channel("closing", 1)
    local results = {}
    rq.spawn(function() results.r = { ch:recv() } end, "receiver")
    rq.run()
    assert.are.equal("recv", info(ch).waiters[1].mode)
    assert.is_true(ch:close())
    assert.is_false(ch:close())
    rq.run()
    assert.are.same({ nil, false }, results.r)
    assert.has_error(function() ch:send(1) end, "send on closed channel 'closing'")
    local full = sync.channel("full", 1)
    full:send("kept")
    rq.spawn(function()
      full:send("blocked") -- BLOCKED-SEND
    end, "sender")
    rq.run()
    assert.are.equal("send", info(full).waiters[1].mode)
    full:close()
    rq.run()
    assert.are.equal(1, #rq.failures)
    assert.are.equal(at("-- BLOCKED-SEND") .. ": send on closed channel 'full'", rq.failures[1].err)
    assert.are.same({ "kept", true }, { full:recv() })
    assert.are.same({ nil, false }, { full:recv() })
    local snap = ai.snapshot()
    for _, r in ipairs(snap.resources) do
      if r.name == "full" then
        assert.is_true(r.closed)
        assert.are.equal(1, r.capacity)
        assert.are.equal(0, r.size)
      end
    end
  end)

  it("try_send and argument checks", function()
    local ch = sync.channel("t", 1)
    assert.is_true(ch:try_send(1))
    assert.is_false(ch:try_send(2))
    assert.are.same({ 1, true }, { ch:try_recv() })
    assert.is_false(ch:closed())
    assert.has_error(function() sync.channel("x", "big") end,
      "bad argument #2 to 'channel' (non-negative integer expected, got string)")
    assert.has_error(function() ch.send() end, "bad argument #1 to 'send' (channel expected, got no value)")
    local ok, err = pcall(ch.recv, ch)
    assert.is_false(ok)
    assert.truthy(err:find("channel 't' is not available and this thread cannot wait", 1, true))
  end)
end)

describe("event", function()
  it("wakes every waiter when set, and stays set until cleared", function()
    local ev = sync.event("go")
    local woke = 0
    for i = 1, 3 do
      rq.spawn(function()
        ev:wait()
        woke = woke + 1
      end, "w" .. i)
    end
    rq.run()
    assert.are.equal(0, woke)
    assert.are.equal(3, #info(ev).waiters)
    assert.are.equal("event:go", ai.tasks{ name = "^w1$" }[1].wait)
    ev:set()
    assert.is_true(ev:is_set())
    rq.run()
    assert.are.equal(3, woke)
    ev:wait() -- set: no wait, even on the main thread
    ev:clear()
    assert.is_false(ev:is_set())
    assert.are.equal(4, info(ev).acquisitions)
    assert.has_error(function() ev.set(nil) end, "bad argument #1 to 'set' (event expected, got no value)")
  end)
end)

describe("scheduler", function()
  it("wakes through async_inspect.luv by default", function()
    local woken = {}
    local saved = package.loaded["async_inspect.luv"]
    package.loaded["async_inspect.luv"] = { wake = function(co) woken[#woken + 1] = co end }
    sync.set_scheduler(nil)
    local m = sync.mutex("default")
    local waiter = coroutine.create(function() m:lock() end)
    m:lock()
    coroutine.resume(waiter)
    m:unlock()
    package.loaded["async_inspect.luv"] = saved
    assert.are.same({ waiter }, woken)
  end)

  it("says what is missing when no scheduler is there", function()
    local saved, saved_preload = package.loaded["async_inspect.luv"], package.preload["async_inspect.luv"]
    package.loaded["async_inspect.luv"] = nil
    package.preload["async_inspect.luv"] = function() error("not here") end
    sync.set_scheduler(nil)
    local m = sync.mutex("nowhere")
    local waiter = coroutine.create(function() m:lock() end)
    m:lock()
    local ok, err = coroutine.resume(waiter) -- it cannot wait: nobody would wake it
    package.loaded["async_inspect.luv"], package.preload["async_inspect.luv"] = saved, saved_preload
    assert.is_false(ok)
    assert.truthy(err:find("no scheduler to wake a waiting task", 1, true))
    assert.truthy(err:find("set_scheduler", 1, true))
    assert.are.equal(0, #info(m).waiters)
    m:unlock()
    assert.is_false(m:locked())
  end)
end)

describe("with the luv scheduler", function()
  local aio = require("async_inspect.luv")

  it("waits in aio's helpers and wakes through aio, by default", function()
    sync.set_scheduler(nil)
    local m = sync.mutex("luv lock")
    local order, seen = {}, nil
    aio.run(function()
      local hs = {}
      for i = 1, 3 do
        hs[i] = aio.spawn("worker" .. i, function()
          m:lock() -- LUV-LOCK
          order[#order + 1] = i
          aio.sleep(20)
          m:unlock()
        end)
      end
      aio.sleep(1) -- worker 1 sleeps holding the lock; 2 and 3 wait for it
      seen = ai.task_info(hs[3]:id())
      for _, h in ipairs(hs) do h:join() end
    end)
    assert.are.same({ 1, 2, 3 }, order)
    assert.are.equal("suspended", seen.state)
    assert.are.equal("lock:luv lock", seen.wait)
    assert.are.equal("mutex luv lock", seen.await)
    assert.are.equal(at("-- LUV-LOCK"), seen.where)
    -- the resume that handed the lock over says why it happened
    local kinds = {}
    for _, e in ipairs(ai.events{ task = seen.id, kind = "resume" }) do kinds[#kinds + 1] = e.detail end
    assert.are.equal("mutex", kinds[#kinds - 1])
    local r = info(m)
    assert.are.equal(3, r.acquisitions)
    assert.are.equal(2, r.contended)
    assert.are.equal(0, #r.holders)
  end)

  it("lets the main thread wait: the loop runs until it is woken", function()
    sync.set_scheduler(nil)
    local m, ch = sync.mutex("main waits"), sync.channel("main receives")
    aio.spawn("holder", function()
      m:lock()
      aio.sleep(5)
      m:unlock()
      ch:send(42)
    end)
    aio.sleep(1)
    assert.is_true(m:locked())
    m:lock()
    assert.are.same({ 42, true }, { ch:recv() })
    m:unlock()
    assert.are.equal(0, #info(m).holders)
    assert.are.equal(0, ai.core.wg_stats().nodes)
  end)

  it("lets aio cancel a waiting task: it leaves the queue", function()
    sync.set_scheduler(nil)
    local ch = sync.channel("luv channel")
    local got
    aio.run(function()
      local doomed = aio.spawn("doomed", function() ch:recv() end)
      local survivor = aio.spawn("survivor", function() got = ch:recv() end)
      aio.sleep(1)
      assert.are.equal(2, #info(ch).waiters)
      doomed:cancel()
      assert.are.equal(1, #info(ch).waiters)
      ch:send("hello")
      survivor:join()
    end)
    assert.are.equal("hello", got)
    assert.are.equal(0, ai.core.wg_stats().nodes)
  end)
end)

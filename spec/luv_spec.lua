-- async_inspect.luv: the scheduler. Spawning, joining, cancelling, waking, aio.run,
-- errors and their policy, await points and wake attribution in the records, the luv-style
-- coroutine pattern, slow callbacks, the diagnoser. Real luv loop; every test leaves no
-- handle open (checked after each).
local ai = require "async_inspect"
local aio = require "async_inspect.luv"
local uv = require "luv"
local process = require "spec.support.process"
local luv_loop = require "spec.support.luv_loop"

local SRC = debug.getinfo(1, "S").short_src

-- the line this is called from
local function line() return debug.getinfo(2, "l").currentline end

local open_handles, wakes_of = luv_loop.open_handles, luv_loop.wakes_of

local function events_of(id, kind)
  return ai.events{ task = id, kind = kind }
end

-- the error raised when the running task (aio.run's main) calls method `name` on itself
local function error_on_self(name)
  local err
  aio.run(function()
    local me = aio.current()
    local ok, e = pcall(me[name], me)
    assert.is_false(ok)
    err = e
  end)
  return err
end

describe("async_inspect.luv", function()
  local saved_policy

  before_each(function()
    ai.reset()
    saved_policy = ai.settings().unjoined_errors
  end)

  after_each(function()
    ai.configure{ unjoined_errors = saved_policy }
    uv.run() -- close callbacks still pending
    assert.are.same({}, open_handles())
  end)

  describe("spawn and join", function()
    it("schedules the first resume on the loop, not at once", function()
      local ran = false
      local h = aio.spawn("later", function() ran = true end)
      assert.is_false(ran)
      assert.are.equal("pending", h:status())
      h:join()
      assert.is_true(ran)
      assert.are.equal("completed", h:status())
    end)

    it("returns every result, nils included, in a task and outside any task", function()
      local outside = { aio.spawn("three", function() return 1, nil, 3 end):join() }
      assert.are.same({ 1, nil, 3 }, outside)
      local inside = table.pack(aio.run(function()
        local h = aio.spawn("pair", function(a, b) aio.sleep(1); return b, a end, "x", "y")
        return h:join()
      end))
      assert.are.same({ n = 2, "y", "x" }, inside)
    end)

    it("names the task, records the spawning task as parent and the user's line", function()
      local child, spawn_line
      aio.run(function()
        spawn_line = line(); child = aio.spawn("child", function() aio.sleep(1) end)
        child:join()
      end)
      local info = ai.task_info(child:id())
      assert.are.equal("child", info.name)
      assert.are.equal("child", child:name())
      assert.are.equal(SRC .. ":" .. spawn_line, info.created_at)
      local main = ai.tasks{ name = "^main$" }[1]
      assert.are.equal(main.id, info.parent)
      assert.are.equal("spawn", events_of(child:id(), "spawn")[1].kind)
      assert.are.equal(SRC .. ":" .. spawn_line, events_of(child:id(), "spawn")[1].loc)
    end)

    it("names an unnamed task after its function", function()
      local fn_line = line(); local h = aio.spawn(nil, function() end)
      h:join()
      assert.is_nil(h:name())
      assert.are.equal(SRC .. ":" .. fn_line, ai.task_info(h:id()).name)
    end)

    it("keeps no task alive: one nobody can resume or reach is collected, then dropped", function()
      local id
      local weak = setmetatable({}, { __mode = "k" })
      do
        local h = aio.spawn("forgotten", function() aio.suspend("forever") end)
        id = h:id()
        uv.run()
        weak[h] = true
      end
      collectgarbage()
      collectgarbage()
      assert.is_nil(next(weak))
      assert.are.equal("dropped", ai.task_info(id).state)
    end)

    it("gives one object per task: fields of your own stay on it, the task's own are read-only", function()
      local h = aio.spawn("labelled", function() aio.sleep(1); return "done" end)
      h.request_id = 42 -- a program may label its handles
      assert.are.equal(42, h.request_id)
      assert.are.equal("function", type(h.join))
      local ok, err = pcall(function() h.co = nil end)
      assert.is_false(ok)
      assert.matches("the field 'co' of a task is read%-only", err)
      ok, err = pcall(function() h.done = "completed" end)
      assert.is_false(ok)
      assert.matches("read%-only", err)
      assert.are.equal("pending", h:status())
      assert.are.equal("done", h:join())
      assert.are.equal(42, h.request_id)
      assert.are.equal("labelled", h:name())
      assert.matches("^task 'labelled' %(#%d+%)$", tostring(h))
    end)

    it("keeps no task alive that waits on a timer it can no longer be woken from", function()
      local weak = setmetatable({}, { __mode = "k" })
      do
        local h = aio.spawn("sleeper", function() aio.sleep(5); aio.suspend("forever") end)
        h.mine = { "a table of the program's own" }
        uv.run()
        weak[h], weak[h.mine] = true, true
      end
      collectgarbage()
      collectgarbage()
      assert.is_nil(next(weak))
    end)

    it("is also called spawn_tracked", function()
      assert.are.equal(aio.spawn, aio.spawn_tracked)
    end)

    it("raises the error of a failed task with its name, to every joiner", function()
      local seen = {}
      aio.run(function()
        local bad = aio.spawn("bad", function() aio.sleep(1); error("boom") end)
        local joiners = {}
        for i = 1, 2 do
          joiners[i] = aio.spawn("joiner" .. i, function()
            local ok, err = pcall(bad.join, bad)
            seen[i] = { ok, err }
          end)
        end
        aio.wait_all(joiners)
      end)
      for i = 1, 2 do
        assert.is_false(seen[i][1])
        assert.matches("^task 'bad' %(#%d+%) failed: .*luv_spec%.lua:%d+: boom$", seen[i][2])
      end
    end)

    it("passes an error object that is not a string through as it is", function()
      local obj = setmetatable({}, { __tostring = function() return "custom" end })
      local h = aio.spawn("obj", function() error(obj) end)
      local ok, err = pcall(h.join, h)
      assert.is_false(ok)
      assert.are.equal(obj, err)
      local ok2, err2 = h:result()
      assert.is_false(ok2)
      assert.are.equal(obj, err2)
      -- the record keeps text, never calling a metamethod
      assert.are.equal("(error object is a table value)", ai.task_info(h:id()).error)
    end)

    it("records a failed task with its traceback and keeps the loop running", function()
      local after = false
      ai.configure{ unjoined_errors = "ignore" }
      aio.run(function()
        aio.spawn("doomed", function() aio.sleep(1); error("kaput") end)
        aio.sleep(20)
        after = true
      end)
      assert.is_true(after)
      local t = ai.tasks{ name = "^doomed$" }[1]
      assert.are.equal("failed", t.state)
      assert.matches("kaput", t.error)
      assert.matches("stack traceback", t.traceback)
    end)

    it("refuses to let a task join itself", function()
      assert.matches("a task cannot join itself", error_on_self("join"))
    end)

    it("gives results without waiting", function()
      local h = aio.spawn("r", function() aio.sleep(1); return "v", 2 end)
      assert.are.same({ nil, "pending" }, { h:result() })
      h:join()
      assert.are.same({ true, "v", 2 }, { h:result() })
    end)

    it("reports its states from pending to completed", function()
      local states = {}
      local h
      aio.run(function()
        h = aio.spawn("s", function()
          states[#states + 1] = h:status()
          aio.sleep(5)
        end)
        states[#states + 1] = h:status()
        aio.sleep(1)
        states[#states + 1] = h:status()
        h:join()
        states[#states + 1] = h:status()
      end)
      assert.are.same({ "pending", "running", "suspended", "completed" }, states)
    end)

    it("tells why a join outside any task can never end", function()
      local h = aio.spawn("forever", function() aio.suspend("never", "a wake nobody sends") end)
      local ok, err = pcall(h.join, h)
      assert.is_false(ok)
      assert.matches("join: the luv loop has nothing left to run, but task 'forever' %(#%d+%) is "
        .. "suspended at .*luv_spec%.lua:%d+ waiting for a wake nobody sends", err)
      assert.is_true(h:cancel())
    end)

    it("cannot wait outside a task from inside a luv callback", function()
      local err
      local t = uv.new_timer()
      t:start(1, 0, function()
        t:close()
        local ok, e = pcall(aio.sleep, 1)
        err = ok and "no error" or e
      end)
      uv.run()
      assert.matches("'sleep' outside any task while the luv loop is running", err)
    end)
  end)

  describe("await points", function()
    it("locates a sleep at the caller's line with its label and wait", function()
      local sleep_line, seen
      aio.run(function()
        local h = aio.spawn("sleeper", function()
          sleep_line = line(); aio.sleep(30)
        end)
        aio.sleep(5)
        seen = ai.task_info(h:id())
        h:join()
      end)
      assert.are.equal("suspended", seen.state)
      assert.are.equal(SRC .. ":" .. sleep_line, seen.where)
      assert.are.equal("sleep", seen.await)
      assert.are.equal("timer 30ms", seen.wait)
    end)

    it("locates joins, awaits, suspends and waits at the caller's line", function()
      local lines, infos = {}, {}
      aio.run(function()
        local target = aio.spawn("target", function() aio.sleep(30) end)
        local tasks = {
          aio.spawn("joiner", function() lines.join = line(); target:join() end),
          aio.spawn("awaiter", function() lines.await = line(); aio.await(uv.fs_stat, "/") aio.sleep(30) end),
          aio.spawn("suspender", function() lines.suspend = line(); aio.suspend("custom", "wake by hand") end),
          aio.spawn("all", function() lines.all = line(); aio.wait_all{ target } end),
          aio.spawn("any", function() lines.any = line(); aio.wait_any{ target } end),
        }
        aio.sleep(5)
        for _, h in ipairs(tasks) do infos[h:name()] = ai.task_info(h:id()) end
        aio.wake(tasks[3])
        aio.wait_all(tasks)
      end)
      assert.are.equal(SRC .. ":" .. lines.join, infos.joiner.where)
      assert.are.equal("join", infos.joiner.await)
      assert.matches("^join #%d+$", infos.joiner.wait)
      assert.are.equal(SRC .. ":" .. lines.suspend, infos.suspender.where)
      assert.are.equal("custom", infos.suspender.await)
      assert.are.equal("wake by hand", infos.suspender.wait)
      assert.are.equal(SRC .. ":" .. lines.all, infos.all.where)
      assert.are.equal("wait_all", infos.all.await)
      assert.are.equal(SRC .. ":" .. lines.any, infos.any.where)
      assert.are.equal("wait_any", infos.any.await)
      -- the awaiter is past its fs_stat by then: its yield event has the label and line
      local awaits = events_of(ai.tasks{ name = "^awaiter$" }[1].id, "yield")
      assert.are.equal("await fs_stat", awaits[1].detail)
      assert.are.equal(SRC .. ":" .. lines.await, awaits[1].loc)
    end)

    it("clears what a task waits for once it runs again", function()
      local h = aio.spawn("w", function() aio.sleep(1); return ai.task_info(aio.current():id()).wait end)
      assert.is_nil(h:join())
      assert.is_nil(ai.task_info(h:id()).wait)
    end)

    it("records which kind of callback woke a task", function()
      local h
      aio.run(function()
        h = aio.spawn("waker", function()
          aio.sleep(1)
          aio.await(uv.fs_stat, "/")
          aio.suspend("by hand")
          aio.suspend("by kind")
        end)
        aio.sleep(10)
        aio.wake(h)
        aio.sleep(1)
        aio.wake_as("channel", h)
        h:join()
      end)
      assert.are.same({ "spawn", "timer", "fs", "wake", "channel" }, wakes_of(h:id()))
      local main = ai.tasks{ name = "^main$" }[1]
      local main_wakes = wakes_of(main.id)
      assert.are.equal("join", main_wakes[#main_wakes])
    end)

    it("measures await durations of luv-style code that uses no helper", function()
      -- the usual luv pattern: running coroutine, a callback resuming it, yield
      local function luv_sleep(ms)
        local co = coroutine.running()
        local t = uv.new_timer()
        t:start(ms, 0, function() t:close(); coroutine.resume(co) end)
        coroutine.yield()
      end
      local co = coroutine.create(function() luv_sleep(60); luv_sleep(20) end)
      coroutine.resume(co)
      uv.run()
      assert.are.equal("dead", coroutine.status(co))
      local id = ai.task_info(co).id
      local yields, resumes = events_of(id, "yield"), events_of(id, "resume")
      assert.are.equal(2, #yields)
      assert.are.equal(3, #resumes)
      local first = (resumes[2].t - yields[1].t) / 1e6
      local second = (resumes[3].t - yields[2].t) / 1e6
      assert.is_true(first >= 55 and first < 1000, "first wait " .. first .. " ms")
      assert.is_true(second >= 15 and second < 1000, "second wait " .. second .. " ms")
      assert.are.equal("completed", ai.task_info(co).state)
    end)
  end)

  describe("luv-style code inside tasks", function()
    local function raw_wait(ms, fail)
      local co = coroutine.running()
      local t = uv.new_timer()
      t:start(ms, 0, function()
        t:close()
        coroutine.resume(co, fail)
      end)
      if coroutine.yield() then error("failed in a resume that was not ours") end
      return ms
    end

    it("completes a task whose last resume was not the scheduler's", function()
      local h = aio.spawn("raw", function() aio.sleep(1); return raw_wait(10) end)
      assert.are.equal(10, h:join())
      assert.are.equal("completed", ai.task_info(h:id()).state)
    end)

    it("notices a task that failed in a resume that was not the scheduler's", function()
      local h = aio.spawn("raw-fail", function() raw_wait(5); raw_wait(5, true) end)
      local ok, err = pcall(h.join, h)
      assert.is_false(ok)
      assert.matches("task 'raw%-fail' %(#%d+%) failed: .*failed in a resume that was not ours", err)
      assert.are.equal("failed", h:status())
    end)

    it("refuses a resume by other code while the task waits in a helper", function()
      local h = aio.spawn("meddled", function() aio.sleep(50) end)
      local co
      aio.run(function()
        aio.sleep(5)
        co = ai.core.thread_of(h:id())
        coroutine.resume(co)
      end)
      local ok, err = h:result()
      assert.is_false(ok)
      assert.matches("resumed by other code", err)
    end)
  end)

  describe("cancel", function()
    it("cancels a pending task: it never runs, joiners get an error", function()
      local ran = false
      local h = aio.spawn("never", function() ran = true end)
      assert.is_true(h:cancel())
      assert.are.equal("cancelled", h:status())
      local ok, err = pcall(h.join, h)
      assert.is_false(ok)
      assert.matches("^task 'never' %(#%d+%) was cancelled$", err)
      uv.run()
      assert.is_false(ran)
      assert.are.equal("cancelled", ai.task_info(h:id()).state)
    end)

    it("cancels a sleeping task: its timer is closed, its to-be-closed variables run", function()
      local closed, joined = false, nil
      local t0 = uv.hrtime()
      aio.run(function()
        local h = aio.spawn("sleeper", function()
          local _ <close> = setmetatable({}, { __close = function() closed = true end })
          aio.sleep(10000)
        end)
        local j = aio.spawn("joiner", function() return pcall(h.join, h) end)
        aio.sleep(5)
        assert.is_true(h:cancel())
        assert.is_false(h:cancel())
        assert.are.equal("cancelled", ai.task_info(h:id()).state)
        joined = table.pack(j:join())
      end)
      assert.is_true(uv.hrtime() - t0 < 5e9, "the cancelled task's timer kept the loop alive")
      assert.is_true(closed)
      assert.is_false(joined[1])
      assert.matches("^task 'sleeper' %(#%d+%) was cancelled$", joined[2])
    end)

    it("refuses to cancel the running task", function()
      assert.matches("cannot cancel task 'main' %(#%d+%): it is running", error_on_self("cancel"))
    end)

    it("returns false for a task that has ended", function()
      local h = aio.spawn("done", function() end)
      h:join()
      assert.is_false(h:cancel())
    end)
  end)

  describe("wake and suspend", function()
    it("hands the values of a wake to the suspended task, once", function()
      local got, count = nil, 0
      aio.run(function()
        local h = aio.spawn("receiver", function()
          got = table.pack(aio.suspend("recv", "message"))
          count = count + 1
          aio.sleep(5)
        end)
        aio.sleep(1)
        assert.is_true(aio.wake(h, "a", nil, 3))
        assert.is_true(aio.wake(h, "second"))
        h:join()
        assert.is_false(aio.wake(h))
      end)
      assert.are.same({ n = 3, "a", nil, 3 }, got)
      assert.are.equal(1, count)
    end)

    it("wakes a plain coroutine and the main thread", function()
      local got
      local co = coroutine.create(function() got = aio.suspend("plain") end)
      coroutine.resume(co)
      aio.wake(co, "hello")
      uv.run()
      assert.are.equal("hello", got)
      local main = coroutine.running()
      local t = uv.new_timer()
      t:start(1, 0, function() t:close(); aio.wake(main, "from a callback") end)
      assert.are.equal("from a callback", aio.suspend("main waits"))
    end)

    it("calls on_cancel when a suspended task is cancelled", function()
      local cancelled_co
      local h = aio.spawn("lock waiter", function()
        aio.suspend("lock", "lock:db", function(co) cancelled_co = co end)
      end)
      aio.run(function() aio.sleep(1); h:cancel() end)
      assert.are.equal("thread", type(cancelled_co))
    end)
  end)

  describe("wait_all and wait_any", function()
    it("waits for every task and returns their packed results", function()
      local r = aio.run(function()
        local a = aio.spawn("a", function() aio.sleep(10); return 1 end)
        local b = aio.spawn("b", function() return 2, 3 end)
        return aio.wait_all{ a, b }
      end)
      assert.are.same({ { n = 1, 1 }, { n = 2, 2, 3 } }, r)
    end)

    it("raises the first failure once all have ended", function()
      local slow_done = false
      local ok, err = pcall(aio.wait_all, {
        aio.spawn("fine", function() aio.sleep(10); slow_done = true end),
        aio.spawn("broken", function() error("nope") end),
      })
      assert.is_false(ok)
      assert.matches("task 'broken' %(#%d+%) failed: .*nope", err)
      assert.is_true(slow_done)
    end)

    it("returns the first task to end", function()
      local slow = aio.spawn("slow", function() aio.sleep(200) end)
      local fast = aio.spawn("fast", function() aio.sleep(1); return "first" end)
      local h, i = aio.wait_any{ slow, fast }
      assert.are.equal(fast, h)
      assert.are.equal(2, i)
      assert.are.equal("first", h:join())
      slow:cancel()
    end)
  end)

  describe("aio.run", function()
    it("returns main's results and raises main's error", function()
      assert.are.same({ 1, 2 }, { aio.run(function(a) return a, 2 end, 1) })
      local ok, err = pcall(aio.run, function() aio.sleep(1); error("main broke") end)
      assert.is_false(ok)
      assert.matches("task 'main' %(#%d+%) failed: .*main broke", err)
    end)

    it("runs until the loop ends, so background tasks finish", function()
      local bg = false
      aio.run(function() aio.spawn("background", function() aio.sleep(20); bg = true end) end)
      assert.is_true(bg)
    end)

    it("refuses to run inside a task", function()
      local err
      aio.run(function()
        local ok, e = pcall(aio.run, function() end)
        assert.is_false(ok)
        err = e
      end)
      assert.matches("already running", err)
    end)

    it("reports tasks still suspended when the loop ends", function()
      local res = process.lua([[
        local aio = require "async_inspect.luv"
        local ok, err = pcall(aio.run, function()
          local h = aio.spawn("stuck", function()
            aio.suspend("forever", "a wake nobody sends")
          end)
          h:join()
        end)
        print(ok, err)
      ]])
      assert.are.equal(0, res.code, process.describe(res))
      assert.matches("false\taio.run: the loop ended but task 'main' %(#1%) is suspended at "
        .. ".-child%.lua:%d+ waiting for join #2", res.stdout)
      assert.matches("the loop ended with 2 tasks still suspended", res.stderr)
      assert.matches("task 'stuck' %(#2%) is suspended at .-child%.lua:4 waiting for a wake nobody sends",
        res.stderr)
      assert.matches("nothing called aio.wake for it", res.stderr)
    end)
  end)

  describe("errors nobody joins", function()
    local script = [[
      local ai = require "async_inspect"
      local aio = require "async_inspect.luv"
      if arg[1] ~= "default" then ai.configure{ unjoined_errors = arg[1] } end
      local ok, err = pcall(aio.run, function()
        aio.spawn("lonely", function() error("nobody hears this") end)
        local heard = aio.spawn("heard", function() error("joined") end)
        pcall(heard.join, heard)
        aio.sleep(5)
        return "main done"
      end)
      print(ok, err)
    ]]

    it("warns on stderr by default", function()
      local res = process.lua(script, { args = { "default" } })
      assert.are.equal(0, res.code, process.describe(res))
      assert.matches("true\tmain done", res.stdout)
      assert.matches("task 'lonely' %(#2%) failed and nobody joined it: .-nobody hears this", res.stderr)
      assert.matches("stack traceback", res.stderr)
      assert.not_matches("heard", res.stderr)
    end)

    it("raises from aio.run with 'raise'", function()
      local res = process.lua(script, { args = { "raise" } })
      assert.matches("false\tasync_inspect.luv: task 'lonely' %(#2%) failed and nobody joined it",
        res.stdout)
    end)

    it("says nothing with 'ignore'", function()
      local res = process.lua(script, { args = { "ignore" } })
      assert.matches("true\tmain done", res.stdout)
      assert.are.equal("", res.stderr)
    end)

    it("reports an unjoined failure at exit without aio.run", function()
      local res = process.lua([[
        local aio = require "async_inspect.luv"
        local uv = require "luv"
        aio.spawn("orphan", function() error("lost") end)
        uv.run()
      ]])
      assert.matches("task 'orphan' %(#1%) failed and nobody joined it: .-lost", res.stderr)
    end)
  end)

  describe("slow callbacks and diagnosis", function()
    it("keeps callbacks that ran longer than slow_callback_ms, in snapshots too", function()
      ai.configure{ slow_callback_ms = 5 }
      local busy_line
      aio.run(function()
        aio.sleep(1)
        local t0 = os.clock()
        while os.clock() - t0 < 0.02 do end
        busy_line = line(); aio.sleep(1)
      end)
      ai.configure{ slow_callback_ms = 10 }
      local slow = aio.slow_callbacks()
      assert.is_true(#slow >= 1)
      local s = slow[#slow]
      assert.are.equal("timer", s.kind)
      assert.is_true(s.duration >= 15e6)
      assert.are.equal(ai.tasks{ name = "^main$" }[1].id, s.task)
      assert.are.equal(SRC .. ":" .. busy_line, s.at)
      local snap = ai.snapshot()
      assert.are.same(slow, snap.slow_callbacks)
      local found = false
      for _, f in ipairs(aio.diagnose(snap)) do
        if f.kind == "slow_callback" then found = true end
      end
      assert.is_true(found)
    end)

    it("times a pass over the ready queue as one callback, from the resumes it ran", function()
      ai.configure{ slow_callback_ms = 5 }
      local before = #aio.slow_callbacks()
      local t_spawn = ai.core.now()
      aio.run(function()
        local h = aio.spawn("hot", function()
          local t0 = os.clock()
          while os.clock() - t0 < 0.02 do end
        end)
        aio.spawn("cold", function() end)
        h:join()
      end)
      ai.configure{ slow_callback_ms = 10 }
      local slow = aio.slow_callbacks()
      local pass
      for i = before + 1, #slow do
        if slow[i].kind == "ready queue" then pass = slow[i] end
      end
      assert.is_not_nil(pass, "a slow pass over the ready queue")
      assert.is_true(pass.duration >= 15e6 and pass.duration < 5e9, tostring(pass.duration))
      assert.is_true(pass.resumes >= 2, "the hot task and the cold one in one pass")
      assert.is_true(pass.t >= t_spawn and pass.t <= ai.core.now())
    end)

    it("registers a diagnoser that finds stuck tasks and unjoined failures", function()
      local registered = false
      for _, d in ipairs(ai._diagnosers) do registered = registered or d == aio.diagnose end
      assert.is_true(registered)
      ai.configure{ unjoined_errors = "ignore" }
      local stuck = aio.spawn("stuck", function() aio.suspend("forever") end)
      aio.spawn("failing", function() error("x") end)
      uv.run()
      local kinds = {}
      for _, f in ipairs(aio.diagnose(ai.snapshot())) do
        kinds[f.kind] = f
      end
      assert.are.equal(stuck:id(), kinds.stuck.task)
      assert.are.equal("error", kinds.stuck.severity)
      assert.matches("no luv handle or request is left", kinds.stuck.message)
      assert.matches("task 'failing' %(#%d+%) failed and nobody joined it", kinds.unjoined_failure.message)
      aio.check_unjoined()
      stuck:cancel()
    end)
  end)

  describe("arguments", function()
    it("checks them and names the function", function()
      local cases = {
        { function() aio.spawn(1, function() end) end, "bad argument #1 to 'spawn' %(string or nil expected" },
        { function() aio.spawn("x", 1) end, "bad argument #2 to 'spawn' %(function expected, got number%)" },
        { function() aio.sleep(-1) end, "bad argument #1 to 'sleep'" },
        { function() aio.sleep("1") end, "bad argument #1 to 'sleep'" },
        { function() aio.await(1) end, "bad argument #1 to 'await' %(function expected, got number%)" },
        { function() aio.read({}) end, "bad argument #1 to 'read' %(stream handle expected" },
        { function() aio.wait_all(1) end, "bad argument #1 to 'wait_all'" },
        { function() aio.wait_all{ 1 } end, "task handle expected at index 1" },
        { function() aio.wait_any{} end, "bad argument #1 to 'wait_any' %(non%-empty table expected%)" },
        { function() aio.run(nil) end, "bad argument #1 to 'run' %(function expected, got no value%)" },
        { function() aio.wake(1) end, "bad argument #1 to 'wake' %(task handle or coroutine expected" },
        { function() aio.wake_as(1, coroutine.running()) end, "bad argument #1 to 'wake_as'" },
        { function() aio.suspend(1) end, "bad argument #1 to 'suspend' %(string expected" },
        { function() aio.suspend("x", 1) end, "bad argument #2 to 'suspend'" },
        { function() aio.suspend("x", nil, 1) end, "bad argument #3 to 'suspend'" },
        { function() aio.callback(1, print) end, "bad argument #1 to 'callback'" },
        { function() aio.dump_on_signal(1) end, "bad argument #1 to 'dump_on_signal'" },
        { function() aio.dump_on_signal("sigfoo") end, "unknown signal 'sigfoo'" },
        { function() aio.diagnose(1) end, "bad argument #1 to 'diagnose'" },
        { function() local h = aio.spawn("x", print); h:cancel(); h.join(1) end, "bad argument #1 to 'join'" },
        { function() local h = aio.spawn("x", print); h:cancel(); h.status({}) end, "bad argument #1 to 'status'" },
      }
      for _, c in ipairs(cases) do
        local ok, err = pcall(c[1])
        assert.is_false(ok)
        assert.matches(c[2], err)
      end
    end)
  end)

  it("fails with a clear message when luv is missing", function()
    local res = process.lua([[
      package.preload.luv = nil
      local ok, err = pcall(require, "async_inspect.luv")
      print(ok, err)
      print(pcall(require, "async_inspect"))
    ]], { env = { LUA_CPATH_5_4 = process.ROOT .. "/build/?.so" } })
    assert.matches("false\tasync_inspect.luv: luv %(libuv bindings for Lua%) could not be loaded", res.stdout)
    assert.matches("\ntrue\t", res.stdout)
  end)
end)

describe("joins in the wait-for graph", function()
  local deadlock = require "async_inspect.deadlock"

  it("catches a join cycle between luv tasks the moment it closes", function()
    local reports = {}
    local off = ai.on_deadlock(function(d) reports[#reports + 1] = d end)
    local saved = ai.settings().deadlock
    ai.configure{ deadlock = "error" }
    local a, b
    local failure
    local join_a_line
    aio.run(function()
      a = aio.spawn("joiner a", function()
        aio.sleep(1)
        join_a_line = debug.getinfo(1, "l").currentline + 1
        local r = b:join()
        return r
      end)
      b = aio.spawn("joiner b", function()
        aio.sleep(5)
        local ok, err = pcall(a.join, a) -- closes the cycle b -> a -> b
        failure = err
        return ok
      end)
      return b:join()
    end)
    ai.configure{ deadlock = saved }
    off()
    assert.is_not_nil(failure, "joining into a cycle must raise under the error policy")
    assert.matches("deadlock", tostring(failure))
    assert.is_true(#reports >= 1)
    local text = reports[#reports].text or ""
    assert.matches("joiner a", text, 1, true)
    assert.matches("joiner b", text, 1, true)
    -- where a waits: the line of its join, in this file
    assert.matches("spec/luv_spec.lua:" .. join_a_line, text, 1, true)
    -- the cycle is broken once the error unwound b's join: no deadlock stays active
    for _, d in ipairs(ai.snapshot().deadlocks or {}) do assert.is_false(d.active == true) end
    assert.are.equal(0, #deadlock.stuck{ idle = true })
  end)
end)

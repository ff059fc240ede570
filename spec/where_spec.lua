-- async_inspect.where: await points, suspended stacks, locals, spawn chains, creation
-- traces, the dump (also from a signal in a child process), the tree and its exports.
local ai = require("async_inspect")
local where = require("async_inspect.where")
local graph = require("async_inspect.export.graph")
local uv = require("luv")
local env = require("spec.helpers.env")

-- Code under test is loaded with a chunk name, so its file:line locations are exact.
local function chunk(name, src, ...)
  return assert(load(src, "@" .. name))(...)
end

local function lines_of(text)
  local out = {}
  for l in (text .. "\n"):gmatch("(.-)\n") do out[#out + 1] = l end
  return out
end

local function count(text, plain)
  local n, from = 0, 1
  while true do
    local i, j = text:find(plain, from, true)
    if not i then return n end
    n, from = n + 1, j + 1
  end
end

local function id_of(co) return ai.task_info(co).id end

describe("where", function()
  before_each(function()
    ai.configure{ locations = true, max_tasks = 100000 }
    ai.core.configure{ creation_traces = false }
    ai.reset()
  end)

  describe("await points", function()
    it("are exact in nested functions, with function names", function()
      local make = chunk("nested.lua", [[
local function inner(x)
  coroutine.yield(x)
end
local function middle(x)
  inner(x)
  coroutine.yield("middle")
  inner(x + 1)
end
return function()
  return coroutine.create(function() middle(1) end)
end]])
      local co = make()
      assert.is_true(coroutine.resume(co))
      local w = where.where(co)
      assert.equal("nested.lua:2", w.where)
      assert.equal("inner", w.where_fn)
      assert.equal("suspended", w.state)
      local tb = lines_of(w.traceback)
      assert.equal("stack traceback:", tb[1])
      assert.equal("\t[C]: in function 'coroutine.yield'", tb[2])
      assert.equal("\tnested.lua:2: in upvalue 'inner'", tb[3])
      assert.equal("\tnested.lua:5: in upvalue 'middle'", tb[4])
      assert.equal("\tnested.lua:10: in function <nested.lua:10>", tb[5])

      assert.is_true(coroutine.resume(co))
      assert.equal("nested.lua:6", where.where(co).where)
      assert.equal("middle", where.where(co).where_fn)
      assert.is_true(coroutine.resume(co))
      assert.equal("nested.lua:2", where.where(co).where)

      local states = where.states(co)
      assert.equal(id_of(co), states.task)
      assert.is_false(states.partial)
      assert.equal(3, #states)
      assert.same({ 0, "created", "nested.lua:10", 1 },
        { states[1].state, states[1].name, states[1].where, states[1].count })
      assert.same({ 1, "inner::await#1", "nested.lua:2", "inner", 2, true },
        { states[2].state, states[2].name, states[2].where, states[2].where_fn, states[2].count,
          states[2].current })
      assert.same({ 2, "middle::await#2", "nested.lua:6", "middle", 1, false },
        { states[3].state, states[3].name, states[3].where, states[3].where_fn, states[3].count,
          states[3].current })
    end)

    it("are exact inside pcall, where the yielding function has no name", function()
      local make = chunk("pcall.lua", [[
return function()
  return coroutine.create(function()
    local ok = pcall(function()
      coroutine.yield("in pcall")
    end)
    coroutine.yield(ok)
  end)
end]])
      local co = make()
      coroutine.resume(co)
      local w = where.where(co)
      assert.equal("pcall.lua:4", w.where)
      assert.equal("function <pcall.lua:3>", w.where_fn)
      local tb = lines_of(w.traceback)
      assert.equal("\tpcall.lua:4: in function <pcall.lua:3>", tb[3])
      assert.equal("\t[C]: in function 'pcall'", tb[4])
      assert.equal("\tpcall.lua:3: in function <pcall.lua:2>", tb[5])

      local _, ok = coroutine.resume(co)
      assert.is_true(ok)
      assert.equal("pcall.lua:6", where.where(co).where)
      local states = where.states(co)
      assert.equal("pcall.lua:4", states[2].where)
      assert.equal("function <pcall.lua:3>::await#1", states[2].name)
      assert.equal("pcall.lua:6", states[3].where)
      assert.equal("function <pcall.lua:2>::await#2", states[3].name)
      assert.is_true(states[3].current)
    end)

    it("are exact in coroutine.wrap functions", function()
      local make = chunk("wrap.lua", [[
local function step(n)
  coroutine.yield(n)
end
return function()
  return coroutine.wrap(function()
    step(1)
    step(2)
    coroutine.yield("last")
  end)
end]])
      local gen = make()
      assert.equal(1, gen())
      local tasks = ai.tasks{ state = "suspended" }
      assert.equal(1, #tasks)
      local id = tasks[1].id
      local w = where.where(id)
      assert.equal("wrap.lua:2", w.where)
      assert.equal("step", w.where_fn)
      assert.matches("\n\twrap.lua:6: in function <wrap.lua:5>", w.traceback, 1, true)
      assert.equal(2, gen())
      assert.equal("last", gen())
      local states = where.states(id)
      assert.equal("wrap.lua:5", states[1].where)
      assert.same({ "wrap.lua:2", 2, "step::await#1" }, { states[2].where, states[2].count, states[2].name })
      assert.same({ "wrap.lua:8", 1, true }, { states[3].where, states[3].count, states[3].current })
    end)

    it("are exact in coroutines resumed from luv timer callbacks, with times", function()
      local make = chunk("timers.lua", [[
local ai, uv = ...
local function sleep(ms)
  local timer, co = uv.new_timer(), coroutine.running()
  uv.update_time()
  timer:start(ms, 0, function()
    timer:close()
    assert(coroutine.resume(co))
  end)
  coroutine.yield()
end
return function(state)
  return coroutine.create(function()
    sleep(30)
    sleep(20)
    ai.await_point("done?")
    coroutine.yield()
    state.finished = true
  end)
end]], ai, uv)
      local state = {}
      local co = make(state)
      assert.is_true(coroutine.resume(co))
      local first = where.where(co)
      assert.equal("timers.lua:9", first.where)
      assert.equal("sleep", first.where_fn)
      assert.matches("\ttimers.lua:13: in function <timers.lua:12>", first.traceback, 1, true)
      assert.is_true(env.run_until(function() return where.where(co).await == "done?" end, 3000))
      local w = where.where(co)
      assert.equal("timers.lua:16", w.where)
      assert.is_true(w.waited >= 0)
      local states = where.states(co)
      assert.equal(3, #states)
      local timer_state = states[2]
      assert.same({ "timers.lua:9", "sleep", 2, "sleep::await#1" },
        { timer_state.where, timer_state.where_fn, timer_state.count, timer_state.name })
      -- suspended about 30 ms, then about 20 ms (timers fire no earlier than asked)
      assert.is_true(timer_state.longest >= 29e6, tostring(timer_state.longest))
      assert.is_true(timer_state.total >= 49e6, tostring(timer_state.total))
      assert.is_true(timer_state.total >= timer_state.longest)
      assert.same({ "timers.lua:16", "done?", 1, true },
        { states[3].where, states[3].await, states[3].count, states[3].current })
      coroutine.resume(co)
      assert.is_true(state.finished)
      assert.is_false(where.states(co)[3].current)
    end)

    it("tell apart two labels at one line", function()
      local make = chunk("labels.lua", [[
local ai = ...
local function recv(label)
  ai.await_point(label)
  coroutine.yield()
end
return function()
  return coroutine.create(function()
    recv("a") recv("b") recv("a")
  end)
end]], ai)
      local co = make()
      for _ = 1, 3 do coroutine.resume(co) end
      local states = where.states(co)
      assert.equal(3, #states)
      assert.same({ "labels.lua:4", "a", 2 }, { states[2].where, states[2].await, states[2].count })
      assert.same({ "labels.lua:4", "b", 1 }, { states[3].where, states[3].await, states[3].count })
    end)

    it("count the pending time as state 0", function()
      local co = coroutine.create(function() coroutine.yield() end)
      uv.sleep(5)
      local states = where.states(co)
      assert.equal(1, #states)
      assert.is_true(states[1].current)
      assert.is_true(states[1].total >= 4e6)
      coroutine.resume(co)
      states = where.states(co)
      assert.is_false(states[1].current)
      assert.is_true(states[2].current)
    end)
  end)

  describe("where()", function()
    it("lists every suspended task, longest wait first, with a three-level spawn chain", function()
      local make = chunk("chain.lua", [[
local function level3()
  coroutine.yield("leaf")
end
local function level2()
  local c = coroutine.create(level3)
  coroutine.resume(c)
  coroutine.yield(c)
end
local function level1()
  local b = coroutine.create(level2)
  local _, c = coroutine.resume(b)
  coroutine.yield(b, c)
end
return function()
  local a = coroutine.create(level1)
  local _, b, c = coroutine.resume(a)
  return a, b, c
end]])
      local a, b, c = make()
      local w = where.where(c)
      assert.equal(2, #w.chain)
      assert.same({ id = id_of(b), name = "chain.lua:4", created_at = "chain.lua:10",
        state = "suspended" }, w.chain[1])
      assert.same({ id = id_of(a), name = "chain.lua:9", created_at = "chain.lua:15",
        state = "suspended" }, w.chain[2])
      assert.equal("chain.lua:5", w.created_at)
      assert.same({}, where.where(a).chain)

      local all = where.where()
      assert.equal(3, #all)
      -- c yielded first (innermost), so it has waited longest
      assert.same({ id_of(c), id_of(b), id_of(a) }, { all[1].id, all[2].id, all[3].id })
      assert.is_true(all[1].waited >= all[2].waited and all[2].waited >= all[3].waited)
      for _, r in ipairs(all) do assert.matches("^stack traceback:", r.traceback) end

      local dump = where.dump()
      assert.matches("    created at chain.lua:5\n      by #" .. id_of(b) ..
        " chain.lua:4, created at chain.lua:10\n      by #" .. id_of(a) ..
        " chain.lua:9, created at chain.lua:15\n", dump, 1, true)
    end)

    it("shows a gone parent as such", function()
      local child
      local parent = coroutine.create(function()
        child = coroutine.create(function() coroutine.yield() end)
        coroutine.resume(child)
      end)
      coroutine.resume(parent)
      local pid = ai.task_info(child).parent
      ai.configure{ max_tasks = 0 } -- finished records are not kept
      assert.is_nil(ai.task_info(pid))
      local w = where.where(child)
      assert.equal(1, #w.chain)
      assert.equal(pid, w.chain[1].id)
      assert.is_true(w.chain[1].gone)
      assert.matches("by #" .. pid .. " (record no longer kept)", where.dump(), 1, true)
    end)

    it("returns nil and a message for what it does not know, and checks its arguments", function()
      local r, msg = where.where(123456)
      assert.is_nil(r)
      assert.equal("not a tracked task", msg)
      assert.has_error(function() where.where("x") end,
        "bad argument #1 to 'where' (task id or coroutine expected, got string)")
      assert.has_error(function() where.states(1.5) end,
        "bad argument #1 to 'states' (task id or coroutine expected, got float)")
      assert.has_error(function() where.locals({}) end,
        "bad argument #1 to 'locals' (task id or coroutine expected, got table)")
      assert.has_error(function() where.locals(1, -1) end,
        "bad argument #2 to 'locals' (non-negative integer expected, got integer)")
      assert.has_error(function() where.locals(1, nil, { depth = 99 }) end,
        "bad argument #3 to 'locals' (depth must be an integer from 0 to 20)")
      assert.has_error(function() where.dump(5) end,
        "bad argument #1 to 'dump' (table expected, got number)")
      assert.has_error(function() where.print_dump{ file = "x" } end,
        "bad argument #1 to 'print_dump' (file must be an open file handle)")
      assert.has_error(function() where.annotate(nil) end,
        "bad argument #1 to 'annotate' (snapshot expected, got nil)")
      assert.has_error(function() where.tree(false) end,
        "bad argument #1 to 'tree' (table expected, got boolean)")
      -- raised at the caller's line, not inside the module
      local here = debug.getinfo(1, "S").short_src
      for _, bad in ipairs({
        function() where.where("x") end, function() where.locals(1, 0.5) end,
        function() where.locals(1, nil, 7) end, function() where.locals(1, nil, { frames = 0 }) end,
        function() where.dump(1) end, function() where.annotate({ tasks = {} }, 1) end,
        function() graph.write("dot", 1) end, function() graph.dot_text({}, 1) end,
      }) do
        local ok, err = pcall(bad)
        assert.is_false(ok)
        assert.equal(here .. ":", err:sub(1, #here + 1))
      end
    end)
  end)

  describe("locals", function()
    local function hostile_mt(calls)
      local mt = {}
      for _, event in ipairs({ "__index", "__newindex", "__tostring", "__pairs", "__len", "__call",
        "__name", "__eq", "__concat" }) do
        mt[event] = function()
          calls[#calls + 1] = event
          error("metamethod " .. event .. " invoked")
        end
      end
      return mt
    end

    it("renders hostile values of a suspended task without invoking a metamethod", function()
      local calls = {}
      local timer = uv.new_timer()
      local make = chunk("hostile.lua", [[
local hostile_mt, timer = ...
local shared = "upvalue text"
return function()
  return coroutine.create(function(arg)
    local proxy = setmetatable({ 1, "two" }, hostile_mt)
    local named = setmetatable({}, setmetatable({ __name = "Thing" }, hostile_mt))
    local cycle = { name = "cycle" }
    cycle.self = cycle
    local big = ("x"):rep(10 * 1024 * 1024)
    local binary = "\0\1\255\n"
    local fn, cfn = function() return shared end, print
    local file, handle = io.stdout, timer
    coroutine.yield(proxy, named, cycle, big, binary, fn, cfn, file, handle)
  end)
end]], hostile_mt(calls), timer)
      local co = make()
      assert.is_true(coroutine.resume(co, "argument"))
      local frames = assert(where.locals(co))
      assert.equal(id_of(co), frames.task)
      local f = frames[1]
      assert.same({ 1, "Lua", "hostile.lua:13", "function <hostile.lua:4>" },
        { f.level, f.what, f.where, f.fn })
      local got = {}
      for _, v in ipairs(f.locals) do got[#got + 1] = v.name .. " = " .. v.value end
      assert.same({
        'arg = "argument"',
        'proxy = table#1 (metatable#2) {1, "two"}',
        "named = Thing#3 {}",
        'cycle = table#4 {name = "cycle", self = <table#4>}',
        'big = "' .. ("x"):rep(120) .. '"...<10485760 bytes>',
        'binary = "\\x00\\x01\\xFF\\n"',
        "fn = function#5 <hostile.lua:11>",
        "cfn = function#6 [C]",
        "file = FILE*#7",
        "handle = uv_timer#8",
      }, got)
      assert.same({}, calls)
      -- one frame by level, with upvalues
      local one = assert(where.locals(co, 1))
      assert.equal(1, #one)
      local ups = {}
      for _, u in ipairs(one[1].upvalues) do ups[u.name] = u.value end
      -- captured for the closure `fn`, so an upvalue of the coroutine's function too
      assert.equal('"upvalue text"', ups.shared)
      local lines = where.format_locals(one)
      assert.equal("frame 1: function <hostile.lua:4> at hostile.lua:13", lines[1])
      assert.equal('  local arg = "argument"', lines[2])
      timer:close()
      uv.run("nowait")
    end)

    it("shows upvalues, varargs and every frame of the stack", function()
      local make = chunk("frames.lua", [[
local counter = 7
local function inner(...)
  local here = counter + 1
  coroutine.yield(here)
end
return function()
  return coroutine.create(function(a)
    local outer_local = { a }
    inner("va1", 2)
  end)
end]])
      local co = make()
      coroutine.resume(co, "A")
      local frames = assert(where.locals(co))
      assert.equal(2, #frames)
      assert.equal("inner", frames[1].fn)
      assert.equal("frames.lua:4", frames[1].where)
      local names = {}
      for _, v in ipairs(frames[1].locals) do names[#names + 1] = v.name .. "=" .. v.value end
      assert.same({ "here=8", '...[1]="va1"', "...[2]=2" }, names)
      assert.same({ { name = "counter", value = "7" }, { name = "_ENV", value = "table#1 {...}" } },
        frames[1].upvalues)
      assert.equal("frames.lua:9", frames[2].where)
      assert.equal('a = "A"', frames[2].locals[1].name .. " = " .. frames[2].locals[1].value)
      assert.equal('outer_local = table#2 {"A"}',
        frames[2].locals[2].name .. " = " .. frames[2].locals[2].value)
      assert.equal("inner", frames[2].upvalues[1].name)
      local nothing, msg = where.locals(co, 40)
      assert.is_nil(nothing)
      assert.equal(("task #%d has no frame at level 40"):format(id_of(co)), msg)
    end)

    it("refuses what has no readable stack", function()
      local done = coroutine.create(function() end)
      coroutine.resume(done)
      local r, msg = where.locals(done)
      assert.is_nil(r)
      assert.equal(("task #%d has ended"):format(id_of(done)), msg)
      r, msg = where.locals(id_of(done))
      assert.is_nil(r)
      assert.equal(("task #%d has no readable stack (completed)"):format(id_of(done)), msg)
      local me
      local co = coroutine.create(function()
        me = { where.locals((coroutine.running())) }
      end)
      coroutine.resume(co)
      assert.is_nil(me[1])
      assert.matches("is the running one", me[2])
    end)

    it("keeps no coroutine alive: asking about a task does not stop its collection", function()
      local function start()
        local co = coroutine.create(function()
          local payload = { data = ("y"):rep(1000) }
          coroutine.yield(payload)
        end)
        coroutine.resume(co)
        where.where(co)
        where.locals(co)
        where.states(co)
        where.annotate(ai.snapshot())
        where.dump{ locals = true }
        return id_of(co)
      end
      local id = start()
      assert.is_not_nil(ai.core.thread_of(id))
      collectgarbage()
      collectgarbage()
      assert.is_nil(ai.core.thread_of(id))
      assert.equal("dropped", ai.task_info(id).state)
    end)
  end)

  describe("dump", function()
    it("folds identical stacks with a count, longest waits first", function()
      local lone = coroutine.create(function() coroutine.yield() end)
      coroutine.resume(lone)
      uv.sleep(3)
      local pool = chunk("pool.lua", [[
local ai = ...
local function worker()
  ai.await_point("job")
  coroutine.yield()
end
return function(n)
  local list = {}
  for i = 1, n do
    list[i] = coroutine.create(worker)
    coroutine.resume(list[i])
  end
  return list
end]], ai)
      local workers = pool(5)
      local pending = coroutine.create(function() end)
      local text = where.dump{ locals = true }
      local lines = lines_of(text)
      assert.matches("^async_inspect dump at %d+%.%d+s: 7 live tasks %(6 suspended, 1 pending%) in 3 groups$",
        lines[1])
      -- the lone task waited longest, then the pool, then the task never started
      local lone_at = text:find(("task #%d "):format(id_of(lone)), 1, true)
      local pool_at = text:find("5 tasks [suspended ", 1, true)
      local pending_at = text:find(("task #%d "):format(id_of(pending)), 1, true)
      assert.is_true(lone_at < pool_at and pool_at < pending_at)
      local ids = {}
      for i, co in ipairs(workers) do ids[i] = ("#%d pool.lua:2"):format(id_of(co)) end
      assert.matches("5 tasks %[suspended [^]]*%]: " .. table.concat(ids, ", "):gsub("%p", "%%%0"), text)
      assert.equal(1, count(text, "\n        pool.lua:4: in function <pool.lua:2>\n"))
      assert.equal(1, count(text, "    await job\n"))
      assert.matches("(not started yet; function " .. debug.getinfo(1, "S").short_src, text, 1, true)
      assert.matches("    locals (of #" .. id_of(workers[1]) .. "):\n      frame 1: function <pool.lua:2>",
        text, 1, true)
      -- fewer ids listed on request, and a limit on groups
      local short = where.dump{ ids = 2, limit = 1 }
      assert.matches("^async_inspect dump", short)
      assert.matches("... 2 more groups", short, 1, true)
      assert.is_nil(short:find("pool.lua", 1, true))
    end)

    it("shows the running task's own stack, without our frames", function()
      local text
      local make = chunk("self.lua", [[
local where = ...
return coroutine.create(function()
  local t = where.dump()
  return t
end)]], where)
      local _, t = coroutine.resume(make)
      text = t
      assert.matches("task #%d+ self%.lua:2 %[running [^]]+%]", text)
      assert.matches("\n        self.lua:3: in function <self.lua:2>\n", text, 1, true)
      assert.is_nil(text:find("where.lua", 1, true))
    end)

    it("renders a given snapshot without touching live state (a recording)", function()
      local snap = {
        t = 5e9, stats = {},
        tasks = {
          { id = 1, name = "main", state = "running", kind = "coroutine", created = 0, last_change = 1e9 },
          { id = 2, name = "w", parent = 1, state = "suspended", created = 1e9, last_change = 2e9,
            where = "app.lua:30", where_fn = "loop", await = "tick", wait = "timer", created_at = "app.lua:3" },
          { id = 3, name = "done", state = "completed", created = 0, ended = 1 },
        },
      }
      local text = where.dump{ snapshot = snap, ascii = true }
      assert.equal(table.concat({
        "async_inspect dump at 5.000s: 2 live tasks (1 suspended, 1 running) in 2 groups",
        "",
        "task #1 main [running 4.00s]",
        "    (stack not available)",
        "    created at ?",
        "",
        "task #2 w [suspended 3.00s]",
        "    await tick, waits for timer",
        "    at app.lua:30 in loop",
        "    created at app.lua:3",
        "      by #1 main, created at ?",
        "",
      }, "\n"), text)
    end)

    it("prints to a file handle", function()
      local co = coroutine.create(function() coroutine.yield() end)
      coroutine.resume(co)
      local f = io.tmpfile()
      local text = where.print_dump{ file = f }
      f:seek("set")
      assert.equal(text, f:read("a"))
      f:close()
      assert.matches(("task #%d "):format(id_of(co)), text, 1, true)
    end)

    it("annotates snapshots for the dashboard's detail view", function()
      local co = coroutine.create(function()
        local secret = "s3"
        coroutine.yield(secret)
      end)
      coroutine.resume(co)
      local other = coroutine.create(function() coroutine.yield() end)
      coroutine.resume(other)
      local snap = where.annotate(ai.snapshot(), { task = id_of(co) })
      local rec, rec2
      for _, t in ipairs(snap.tasks) do
        if t.id == id_of(co) then rec = t elseif t.id == id_of(other) then rec2 = t end
      end
      assert.matches("^stack traceback:\n\t%[C%]: in function 'coroutine.yield'", rec.traceback_now)
      assert.matches('local secret = "s3"', table.concat(rec.locals, "\n"), 1, true)
      assert.is_nil(rec2.traceback_now)
      local detail = require("async_inspect.views.detail").render(snap, { id = id_of(co), width = 100 })
      assert.matches('local secret = "s3"', table.concat(detail, "\n"), 1, true)
    end)

    -- the tasks of both signal children: three workers at one await point, one on a timer
    local CHILD_TASKS = [[
local ai = require("async_inspect")
local uv = require("luv")
local function worker()
  ai.await_point("job")
  coroutine.yield()
end
local workers = {} -- kept: a suspended coroutine nobody refers to is collected
for i = 1, 3 do workers[i] = coroutine.create(worker); coroutine.resume(workers[i]) end
local parked = coroutine.create(function()
  local t = uv.new_timer()
  local co = coroutine.running()
  t:start(60000, 0, function() coroutine.resume(co) end)
  ai.core.set_wait(co, "timer")
  coroutine.yield()
end)
coroutine.resume(parked)
]]

    -- run a child lua5.4, send it SIGUSR1 once it prints "ready", wait for its exit
    local function signal_child(code, args)
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      f:write(CHILD_TASKS, code)
      f:close()
      local out, err = uv.new_pipe(), uv.new_pipe()
      local stdout, stderr, status, signalled = {}, {}, nil, false
      local handle
      handle = uv.spawn("lua5.4", {
        args = { path, table.unpack(args or {}) }, stdio = { nil, out, err }, env = env.child_env(),
      }, function(c)
        status = c
        handle:close()
      end)
      assert.is_not_nil(handle)
      out:read_start(function(_, data)
        if data == nil then return out:close() end
        stdout[#stdout + 1] = data
        if not signalled and table.concat(stdout):find("ready\n", 1, true) then
          signalled = true
          handle:kill("sigusr1")
        end
      end)
      err:read_start(function(_, data)
        if data then stderr[#stderr + 1] = data else err:close() end
      end)
      local finished = env.run_until(function()
        return status ~= nil and out:is_closing() and err:is_closing()
      end, 8000)
      os.remove(path)
      assert.is_true(finished, "the child did not finish")
      return status, table.concat(stderr), path
    end

    local function assert_child_dump(text, script)
      assert.matches("async_inspect dump at [%d.]+s: 4 live tasks %(4 suspended%) in 2 groups", text)
      assert.matches("\n3 tasks [suspended ", text, 1, true)
      assert.matches("    await job\n", text, 1, true)
      assert.matches("        " .. script .. ":5: in function <" .. script .. ":3>\n", text, 1, true)
      assert.matches("    waits for timer\n", text, 1, true)
    end

    it("works from a signal in a child process (a luv signal handler)", function()
      local status, text, script = signal_child([[
local where = require("async_inspect.where")
local sig, guard = uv.new_signal(), uv.new_timer()
sig:start("sigusr1", function()
  io.stderr:write(where.dump())
  io.stderr:flush()
  os.exit(0)
end)
guard:start(10000, 0, function() os.exit(3) end)
io.stdout:write("ready\n")
io.stdout:flush()
uv.run()
]])
      assert.equal(0, status, text)
      assert_child_dump(text, script)
    end)

    it("works from a signal with aio.dump_on_signal, to a file", function()
      local out = os.tmpname()
      local status, text, script = signal_child([[
local aio = require("async_inspect.luv")
local path = ...
-- ai.dump is what dump_on_signal writes: async_inspect.where.dump
ai.dump = ai.dump or require("async_inspect.where").dump
aio.dump_on_signal("sigusr1", path)
local poll, guard = uv.new_timer(), uv.new_timer()
poll:start(10, 10, function()
  local f = io.open(path)
  local text = f and f:read("a")
  if f then f:close() end
  if text and text:find("dump at", 1, true) then os.exit(0) end
end)
guard:start(10000, 0, function() os.exit(3) end)
io.stdout:write("ready\n")
io.stdout:flush()
uv.run()
]], { out })
      local dump = env.read(out)
      os.remove(out)
      assert.equal(0, status, text)
      assert.matches("^=== async_inspect dump, pid %d+, ", dump)
      assert_child_dump(dump, script)
    end)
  end)

  describe("creation traces", function()
    local factory = [[
local function spawn(f)
  local co = coroutine.create(f)
  return co
end
local function start_worker()
  local co = spawn(function() coroutine.yield() end)
  coroutine.resume(co)
  return co
end
return function()
  local co = start_worker()
  return co
end]]

    it("are captured when configured and formatted when shown", function()
      ai.core.configure{ creation_traces = true }
      local co = chunk("factory.lua", factory)()
      local w = where.where(co)
      local tb = lines_of(w.creation_trace)
      assert.equal("creation traceback:", tb[1])
      assert.equal("\tfactory.lua:2: in function 'spawn'", tb[2])
      assert.equal("\tfactory.lua:6: in function 'start_worker'", tb[3])
      assert.equal("\tfactory.lua:11: in function <factory.lua:10>", tb[4])
      assert.matches("    creation traceback:\n        factory.lua:2: in function 'spawn'\n",
        where.dump(), 1, true)
    end)

    it("are not captured when off", function()
      local co = chunk("factory.lua", factory)()
      assert.is_nil(where.where(co).creation_trace)
      assert.is_nil(ai.core.creation_trace(id_of(co)))
    end)

    it("are bounded in depth", function()
      ai.core.configure{ creation_traces = true }
      local function deep(n)
        if n == 0 then return coroutine.create(function() end) end
        local co = deep(n - 1)
        return co
      end
      local trace = ai.core.creation_trace(id_of(deep(40)))
      assert.equal(13, #trace)
      assert.is_true(trace.more)
      assert.matches("\n\t...$", where.format_creation(trace))
    end)

    it("are switched on by ai.configure{creation_traces = true}", function()
      ai.configure{ creation_traces = true }
      if ai.core.settings().creation_traces ~= true then
        pending("config.lua still keeps creation_traces on the Lua side (see docs/where.md)")
        return
      end
      local co = chunk("factory.lua", factory)()
      assert.is_string(where.where(co).creation_trace)
      ai.configure{ creation_traces = false }
    end)
  end)

  describe("the tree and its exports", function()
    local function family()
      local kids = {}
      local root = coroutine.create(function()
        for i = 1, 2 do
          kids[i] = coroutine.create(function() coroutine.yield() end)
          coroutine.resume(kids[i])
        end
        coroutine.yield()
      end)
      coroutine.resume(root)
      ai.name(root, 'root "quoted" <b>#1')
      local failed = coroutine.create(function() error("boom\nline") end)
      coroutine.resume(failed)
      return root, kids, failed
    end

    it("prints the task tree", function()
      local root, kids = family()
      local f = io.tmpfile()
      local text = where.tree{ file = f, ascii = true, color = false }
      f:seek("set")
      assert.equal(text .. "\n", f:read("a"))
      f:close()
      assert.matches(("SUSP #%d root"):format(id_of(root)), text, 1, true)
      assert.matches(("|- SUSP #%d "):format(id_of(kids[1])), text, 1, true)
      assert.matches(("`- SUSP #%d "):format(id_of(kids[2])), text, 1, true)
    end)

    it("exports DOT with one node per task and parent edges", function()
      local root, kids, failed = family()
      local text = graph.write("dot")
      assert.matches("^digraph tasks {\n", text)
      assert.matches(('t%d [label="#%d root \\"quoted\\" <b>#1\\nsuspended '):format(id_of(root), id_of(root)),
        text, 1, true)
      assert.matches(("t%d -> t%d;"):format(id_of(root), id_of(kids[1])), text, 1, true)
      assert.matches(("t%d -> t%d;"):format(id_of(root), id_of(kids[2])), text, 1, true)
      assert.matches(('t%d %%[label="#%d [^"]*\\n! [^"]*boom line", fillcolor="#ffb3b3"'):format(id_of(failed),
        id_of(failed)), text)
      assert.is_nil(text:find("\n[^\n]*boom\n", 1))
      local _, nodes = text:gsub("\n  t%d+ %[label=", "")
      assert.equal(#ai.tasks(), nodes)
      if os.execute("command -v dot >/dev/null 2>&1") then
        local path = os.tmpname()
        graph.write("dot", { path = path })
        local ok = os.execute("dot -Tsvg " .. path .. " -o /dev/null")
        os.remove(path)
        assert.is_true(ok)
      end
    end)

    it("exports Mermaid with escaped labels and state classes", function()
      local root, kids = family()
      local text = graph.write("mermaid", { live = true })
      assert.matches("^flowchart TD\n", text)
      assert.matches(('t%d["#35;%d root #quot;quoted#quot; #lt;b#gt;#35;1<br/>suspended '):format(
        id_of(root), id_of(root)), text, 1, true)
      assert.matches(("t%d --> t%d\n"):format(id_of(root), id_of(kids[2])), text, 1, true)
      assert.matches("classDef suspended fill:", text, 1, true)
      assert.is_nil(text:find("failed", 1, true)) -- live tasks only
    end)

    it("writes to a path and reads snapshots, with a stand-in node for a gone parent", function()
      local snap = { t = 10, stats = {}, tasks = {
        { id = 7, parent = 3, name = "orphan", state = "running", created = 0 } } }
      local path = os.tmpname()
      local res = graph.write("mermaid", { snapshot = snap, path = path })
      assert.same({ tasks = 1, bytes = #env.read(path) }, res)
      local text = env.read(path)
      os.remove(path)
      assert.matches('t3["#35;3<br/>(record gone)"]:::gone', text, 1, true)
      assert.matches("t3 --> t7", text, 1, true)
      assert.has_error(function() graph.write("mermaid", { path = 5 }) end,
        "bad argument #1 to 'mermaid' (path must be a file name or file handle)")
      assert.has_error(function() graph.dot_text(nil) end,
        "bad argument #1 to 'dot_text' (array of task records expected, got nil)")
      assert.has_error(function() graph.mermaid_text({}, { max_tasks = 0 }) end,
        "bad argument #2 to 'mermaid_text' (max_tasks must be a positive integer)")
    end)

    it("is reachable as ai.export.dot() and ai.export.mermaid()", function()
      local root = family()
      assert.matches(("\n  t%d [label="):format(id_of(root)), ai.export.dot(), 1, true)
      assert.matches(("\n  t%d[\""):format(id_of(root)), ai.export.mermaid(), 1, true)
    end)
  end)
end)

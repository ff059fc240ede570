-- The core: every coroutine is a task with a record and events; manual
-- instrumentation, queries, retention, garbage collection and bad input.

local ai = require "async_inspect"
local markers = require "spec.support.markers"
local env = require "spec.helpers.env"

local THIS = "spec/core_spec.lua"

local line_of = markers.in_file(THIS)

local function kinds(events)
  local out = {}
  for _, e in ipairs(events) do out[#out + 1] = e.kind end
  return table.concat(out, " ")
end

describe("tasks", function()
  before_each(function()
    ai.install()
    ai.enable()
    ai.configure{ preset = "default" }
    ai.reset()
  end)

  it("tracks every coroutine with a record through its life", function()
    local co = coroutine.create(function(x) -- TASKFN
      coroutine.yield(x) -- YIELD1
      return "ok"
    end)
    local t = ai.task_info(co)
    assert.are.equal("pending", t.state)
    assert.are.equal("integer", math.type(t.id))
    assert.are.equal(THIS .. ":" .. line_of("-- TASKFN"), t.name)
    assert.are.equal(THIS .. ":" .. line_of("-- TASKFN"), t.created_at)
    assert.is_nil(t.parent)
    coroutine.resume(co, 1)
    t = ai.task_info(co)
    assert.are.equal("suspended", t.state)
    assert.are.equal(THIS .. ":" .. line_of("-- YIELD1"), t.where)
    assert.are.equal(1, t.resumes)
    assert.is_true(t.first_resume >= t.created)
    coroutine.resume(co)
    t = ai.task_info(co)
    assert.are.equal("completed", t.state)
    assert.are.equal(2, t.resumes)
    assert.is_true(t.ended >= t.first_resume)
    assert.is_true(t.busy > 0 and t.busy <= t.ended - t.created)
    assert.is_nil(t.where)
    assert.are.equal("spawn resume yield resume complete", kinds(ai.events{ task = t.id }))
  end)

  it("records failures with error text and traceback", function()
    local co = coroutine.create(function() error("bad thing") end) -- FAILS
    coroutine.resume(co)
    local t = ai.task_info(co)
    assert.are.equal("failed", t.state)
    assert.matches("bad thing", t.error)
    assert.matches("stack traceback", t.traceback)
    assert.matches(THIS .. ":" .. line_of("-- FAILS"), t.traceback, 1, true)
    local evs = ai.events{ task = t.id, kind = "fail" }
    assert.are.equal(1, #evs)
    assert.matches("bad thing", evs[1].detail)
    -- non-string errors: described without calling metamethods
    local called = false
    local obj = setmetatable({}, { __tostring = function() called = true; return "x" end })
    co = coroutine.create(function() error(obj) end)
    coroutine.resume(co)
    assert.are.equal("(error object is a table value)", ai.task_info(co).error)
    assert.is_false(called)
  end)

  it("marks cancelled on close of a suspended task, and dropped when collected suspended", function()
    local co = coroutine.create(function() coroutine.yield() end)
    coroutine.resume(co)
    coroutine.close(co)
    assert.are.equal("cancelled", ai.task_info(co).state)

    local weak = setmetatable({}, { __mode = "v" })
    local id
    do
      local c = coroutine.create(function() coroutine.yield() end)
      coroutine.resume(c)
      id = ai.task_info(c).id
      weak[1] = c
    end
    collectgarbage()
    collectgarbage()
    assert.is_nil(weak[1], "the coroutine must be collectable")
    local t = ai.task_info(id)
    assert.are.equal("dropped", t.state)
    assert.is_not_nil(t.ended)
    assert.are.equal(1, #ai.events{ task = id, kind = "drop" })
  end)

  it("marks dropped a coroutine collected before it ever ran, and keeps a live one pending", function()
    local weak = setmetatable({}, { __mode = "v" })
    local ids = {}
    do
      local created = coroutine.create(function() end)
      local wrapped = coroutine.wrap(function() end)
      ids.created, weak[1] = ai.task_info(created).id, created
      ids.wrapped = ai.tasks()[#ai.tasks()].id
      weak[2] = wrapped
    end
    local kept = coroutine.create(function() end)
    collectgarbage()
    collectgarbage()
    assert.is_nil(weak[1], "the coroutine must be collectable")
    assert.is_nil(weak[2], "the wrapped function must be collectable")
    for _, id in pairs(ids) do
      local t = ai.task_info(id)
      assert.are.equal("dropped", t.state)
      assert.is_not_nil(t.ended)
      assert.are.equal(1, #ai.events{ task = id, kind = "drop" })
    end
    assert.are.equal("pending", ai.task_info(kept).state)
    -- a slot given back at the first resume is taken again: no confusion
    coroutine.resume(kept)
    assert.are.equal("completed", ai.task_info(kept).state)
    local again = coroutine.create(function() end)
    collectgarbage()
    assert.are.equal("pending", ai.task_info(again).state)
  end)

  it("tracks a scheduler's coroutine made with Lua's own create at core.spawned, located once", function()
    local core, create = ai.core, ai.original.create
    local function body() end -- BODYFN
    local function spawn(name, held) -- SPAWNFN
      local co = create(function(f) return f() end)
      return co, core.spawned(co, 1, body, name, held)
    end
    local co, id = spawn("worker") -- SPAWNED
    local t = ai.task_info(co)
    assert.are.equal(id, t.id)
    assert.are.same({ "pending", "worker", THIS .. ":" .. line_of("SPAWNED") },
      { t.state, t.name, t.created_at })
    local spawns = ai.events{ task = id, kind = "spawn" }
    assert.are.equal(1, #spawns)
    assert.are.equal(THIS .. ":" .. line_of("SPAWNED"), spawns[1].loc)
    assert.are.equal(1, #ai.events{ task = id, kind = "name" })
    assert.is_true(coroutine.resume(co, function() return 1 end))
    assert.are.equal("completed", ai.task_info(id).state)
    -- unnamed: named after fn, not the scheduler's body; held: runs as any other
    local co2, id2 = spawn(nil, true)
    assert.are.equal(THIS .. ":" .. line_of("BODYFN"), ai.task_info(id2).name)
    coroutine.resume(co2, body)
    assert.are.equal("completed", ai.task_info(id2).state)
    -- not held and never run: watched like any pending coroutine, so dropped once collected
    local weak = setmetatable({}, { __mode = "v" })
    local id3
    do
      local co3
      co3, id3 = spawn("lost")
      weak[1] = co3
    end
    collectgarbage()
    collectgarbage()
    assert.is_nil(weak[1])
    assert.are.equal("dropped", ai.task_info(id3).state)
    -- a coroutine already tracked through the hooks gets its site corrected
    local hooked = coroutine.create(body)
    local function respawn(c) core.spawned(c, 1, nil, "hooked") end
    respawn(hooked) -- RESPAWNED
    assert.are.equal(THIS .. ":" .. line_of("RESPAWNED"), ai.task_info(hooked).created_at)
    assert.are.equal(1, #ai.events{ task = ai.task_info(hooked).id, kind = "spawn" })
    -- disabled: nothing is tracked
    ai.disable()
    local co4 = create(body)
    assert.is_nil(core.spawned(co4, 1))
    ai.enable()
  end)

  it("locates a coroutine created from a C function at the Lua line that called it", function()
    -- A C frame's saved-pc field is a stale continuation: here the one a Lua function
    -- (a tail call keeps the pc of its call) left in the same CallInfo, whose site is in the
    -- cache. Run in a plain lua5.4: busted's own frames hide the reuse.
    local script = table.concat({
      'local ai = require "async_inspect"',
      'local function lua_creates() return coroutine.create(function() end) end',
      'local list = { function() end, function() end }',
      'local out = {}',
      'for _ = 1, 3 do',
      '  lua_creates()',
      '  table.sort(list, coroutine.create)', -- sort calls create: the caller is C
      '  local tasks = ai.tasks()',
      '  out[#out + 1] = tasks[#tasks - 1].created_at .. " " .. tasks[#tasks].created_at',
      'end',
      'io.write(table.concat(out, ","))',
    }, "\n")
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(script)
    f:close()
    local p = assert(io.popen(env.shell_lua() .. " " .. path .. " 2>&1"))
    local out = p:read("a")
    p:close()
    os.remove(path)
    local name = path:match("[^/]+$")
    local want = {}
    for i = 1, 3 do want[i] = name .. ":2 " .. name .. ":7" end
    out = out:gsub("[^ ,]*/" .. name:gsub("%p", "%%%0"), name)
    assert.are.equal(table.concat(want, ","), out)
  end)

  it("uses the private-layout fast paths on this Lua, verified against the API at load", function()
    -- lua_State, CallInfo and closure layouts checked by ai_hooks_check_layout (hooks.c);
    -- when a check fails the module falls back to the API and this flag is false
    assert.is_true(ai.stats().fast_locations, "layout checks failed on " .. _VERSION)
  end)

  it("holds no record of a never-run, collected coroutine as active: memory stays bounded", function()
    ai.configure{ max_tasks = 1000 }
    for _ = 1, 50000 do coroutine.create(print) end
    collectgarbage()
    collectgarbage()
    local s = ai.stats()
    assert.are.equal(0, s.pending)
    assert.are.equal(0, s.active)
    assert.is_true(s.retained <= 1000 + 1, "finished records beyond max_tasks are evicted")
    ai.configure{ max_tasks = 100000 }
  end)

  it("never keeps finished or pending coroutines alive", function()
    local weak = setmetatable({}, { __mode = "k" })
    for i = 1, 100 do
      local c = coroutine.create(function() coroutine.yield(i) end)
      if i % 2 == 0 then coroutine.resume(c) end
      if i % 3 == 0 then coroutine.resume(c) end
      weak[c] = true
    end
    local w = coroutine.wrap(function() coroutine.yield() end)
    w()
    weak[w] = true
    w = nil -- luacheck: ignore 311
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(weak))
    assert.are.equal(101, ai.stats().tasks)
  end)

  it("knows the parent and the normal state of a resumer", function()
    local inner_state, parent_seen
    local outer
    outer = coroutine.create(function()
      local inner = coroutine.create(function()
        inner_state = ai.task_info(outer).state
        parent_seen = ai.task_info(coroutine.running()).parent
      end)
      coroutine.resume(inner)
    end)
    coroutine.resume(outer)
    assert.are.equal("normal", inner_state)
    assert.are.equal(ai.task_info(outer).id, parent_seen)
    local resumes = ai.events{ kind = "resume" }
    assert.are.equal(ai.task_info(outer).id, resumes[2].other)
  end)

  it("names tasks with ai.name and co:inspect", function()
    local co = coroutine.create(function() end):inspect("fetch")
    assert.are.equal("fetch", ai.task_info(co).name)
    ai.name(co, "renamed")
    assert.are.equal("renamed", ai.task_info(co).name)
    ai.name(ai.task_info(co).id, "by id")
    assert.are.equal("by id", ai.task_info(co).name)
    assert.are.equal(3, #ai.events{ kind = "name" })
    -- naming a dead coroutine does not crash
    coroutine.resume(co)
    ai.name(co, "after death")
    assert.are.equal("after death", ai.task_info(co).name)
    -- huge names are cut, not refused
    ai.name(co, ("x"):rep(100000))
    assert.is_true(#ai.task_info(co).name <= 1024)
  end)

  it("adopts coroutines created while uninstalled or disabled", function()
    ai.uninstall()
    local co = coroutine.create(function() coroutine.yield() end)
    ai.install()
    coroutine.resume(co)
    assert.are.equal("suspended", ai.task_info(co).state)
    ai.disable()
    local c2 = coroutine.create(function() coroutine.yield(); coroutine.yield() end)
    coroutine.resume(c2)
    ai.enable()
    coroutine.resume(c2)
    local t = ai.task_info(c2)
    assert.are.equal("suspended", t.state)
    assert.are.equal(1, t.resumes)
  end)

  it("records nothing while disabled, everything again after enable", function()
    ai.disable()
    assert.is_false(ai.is_enabled())
    local co = coroutine.wrap(function() coroutine.yield() end)
    co()
    ai.point("ignored")
    assert.are.equal(0, ai.stats().tasks)
    assert.are.equal(0, ai.stats().events)
    ai.enable()
    assert.is_true(ai.is_enabled())
    coroutine.wrap(function() end)()
    assert.are.equal(1, ai.stats().tasks)
  end)
end)

describe("manual instrumentation", function()
  before_each(function() ai.install(); ai.enable(); ai.reset() end)

  it("marks inspection points in the current task", function()
    local co = coroutine.create(function()
      ai.point("step", "detail 1")
      coroutine.yield()
      ai.point("step2")
    end)
    coroutine.resume(co)
    coroutine.resume(co)
    local pts = ai.events{ kind = "point" }
    assert.are.equal(2, #pts)
    assert.are.equal("step", pts[1].loc)
    assert.are.equal("detail 1", pts[1].detail)
    assert.are.equal(ai.task_info(co).id, pts[1].task)
    ai.point("main")
    assert.are.equal(0, ai.events{ kind = "point" }[3].task)
  end)

  it("tracks a block with a to-be-closed guard: completed or failed", function()
    local id
    do
      local g <close> = ai.task("load config") -- BLOCK
      id = g.id
      ai.point("inside")
      assert.are.equal(id, ai.current())
      assert.are.equal("running", ai.task_info(id).state)
    end
    local t = ai.task_info(id)
    assert.are.equal("completed", t.state)
    assert.are.equal("block", t.kind)
    assert.are.equal(THIS .. ":" .. line_of("-- BLOCK"), t.created_at)
    assert.are.equal(id, ai.events{ kind = "point" }[1].task)
    local fid
    local ok = pcall(function()
      local g <close> = ai.task("doomed")
      fid = g.id
      error("nope")
    end)
    assert.is_false(ok)
    assert.are.equal("failed", ai.task_info(fid).state)
    assert.matches("nope", ai.task_info(fid).error)
  end)

  it("completes and fails the current task explicitly", function()
    local g = ai.task("manual")
    assert.is_true(ai.complete())
    assert.are.equal("completed", ai.task_info(g.id).state)
    assert.is_false(g:complete()) -- already ended
    local g2 = ai.task("manual2")
    assert.is_true(ai.fail("why"))
    assert.are.equal("failed", ai.task_info(g2.id).state)
    assert.are.equal("why", ai.task_info(g2.id).error)
    -- outside any task: nothing to end
    assert.is_false(ai.complete())
  end)

  it("keeps blocks inside coroutines as children of the coroutine's task", function()
    local co = coroutine.create(function()
      local g <close> = ai.task("child block")
      coroutine.yield(g.id)
    end)
    local _, bid = coroutine.resume(co)
    assert.are.equal(ai.task_info(co).id, ai.task_info(bid).parent)
    coroutine.resume(co)
    assert.are.equal("completed", ai.task_info(bid).state)
  end)
end)

describe("queries", function()
  before_each(function() ai.install(); ai.enable(); ai.reset() end)

  it("filters tasks by state, name and parent", function()
    local a = coroutine.create(function() coroutine.yield() end):inspect("alpha")
    local b = coroutine.create(function() end):inspect("beta")
    coroutine.resume(a)
    coroutine.resume(b)
    assert.are.equal(1, #ai.tasks{ state = "suspended" })
    assert.are.equal("alpha", ai.tasks{ state = "suspended" }[1].name)
    assert.are.equal(1, #ai.tasks{ name = "^be" })
    assert.are.equal(2, #ai.tasks())
    assert.are.equal(1, #ai.tasks{ active = true })
    assert.are.equal(0, #ai.tasks{ parent = 99 })
  end)

  it("counts in stats and restarts on reset", function()
    for _ = 1, 3 do coroutine.wrap(function() end)() end
    local co = coroutine.create(function() coroutine.yield() end)
    coroutine.resume(co)
    pcall(coroutine.wrap(function() error("x") end))
    local s = ai.stats()
    assert.are.equal(5, s.tasks)
    assert.are.equal(1, s.active)
    assert.are.equal(1, s.suspended)
    assert.are.equal(3, s.completed)
    assert.are.equal(1, s.failed)
    assert.is_true(s.events > 0)
    assert.are.equal(0, s.events_dropped)
    assert.is_true(s.uptime > 0)
    for _, k in ipairs({ "running", "cancelled", "dropped" }) do assert.are.equal(0, s[k]) end
    ai.reset()
    s = ai.stats()
    assert.are.equal(0, s.tasks)
    assert.are.equal(0, s.events)
    -- a coroutine from before the reset is adopted on its next resume
    coroutine.resume(co)
    assert.are.equal("completed", ai.task_info(co).state)
  end)

  it("streams events with increasing sequence numbers", function()
    -- kept referenced: collected while suspended, it would add a drop event
    local gen = coroutine.wrap(function() coroutine.yield() end)
    gen()
    local last = 0
    local n = 0
    for seq, t, task, kind in ai.iter_events() do
      assert.is_true(seq > last)
      assert.is_true(t >= 0)
      assert.are.equal("number", math.type(task) and "number")
      assert.are.equal("string", type(kind))
      last, n = seq, n + 1
    end
    assert.are.equal(3, n)
    local after = {}
    for seq in ai.iter_events(last) do after[#after + 1] = seq end
    assert.same({ last }, after)
    assert.are.equal("function", type(gen))
  end)

  it("builds a snapshot with tasks, stats and optional events", function()
    coroutine.wrap(function() end)()
    local snap = ai.snapshot{ events = true }
    assert.are.equal(1, #snap.tasks)
    assert.are.equal(1, snap.stats.tasks)
    assert.are.equal(3, #snap.events)
    assert.is_nil(ai.snapshot().events)
  end)
end)

describe("retention and the ring", function()
  before_each(function() ai.install(); ai.enable(); ai.reset() end)
  after_each(function() ai.configure{ preset = "default" } end)

  it("evicts the oldest finished records beyond max_tasks, never live ones", function()
    ai.configure{ max_tasks = 10 }
    local live = coroutine.create(function() coroutine.yield() end)
    coroutine.resume(live)
    local base = ai.task_info(live).id
    for _ = 1, 50 do coroutine.wrap(function() end)() end
    local s = ai.stats()
    assert.are.equal(51, s.tasks)
    assert.are.equal(40, s.evicted)
    assert.are.equal(11, #ai.tasks())
    assert.are.equal("suspended", ai.task_info(live).state)
    assert.is_nil(ai.task_info(base + 1))
    assert.is_not_nil(ai.task_info(base + 50))
  end)

  it("overwrites the oldest events when the ring is full and counts them", function()
    ai.configure{ ring_capacity = 16 }
    for _ = 1, 10 do coroutine.wrap(function() ai.point("p", "d") end)() end
    local s = ai.stats()
    assert.are.equal(16, s.events)
    assert.are.equal(40 - 16, s.events_dropped)
    local evs = ai.events()
    assert.are.equal(16, #evs)
    assert.are.equal(evs[1].seq + 15, evs[16].seq)
  end)

  it("records no yield location when locations are off", function()
    ai.configure{ locations = false }
    local co = coroutine.create(function() coroutine.yield() end)
    coroutine.resume(co)
    assert.is_nil(ai.task_info(co).where)
    ai.configure{ locations = true }
    coroutine.resume(co)
  end)

  it("samples a fraction of new tasks, decided at creation", function()
    ai.configure{ sample = 0.25, seed = 42 }
    local cos = {}
    for i = 1, 2000 do cos[i] = coroutine.create(function() coroutine.yield() end) end
    for _, c in ipairs(cos) do coroutine.resume(c) end
    local n = ai.stats().tasks
    assert.is_true(n > 350 and n < 650, "tracked " .. n)
    for _, c in ipairs(cos) do coroutine.resume(c) end
    assert.are.equal(n, ai.stats().tasks, "sampled-out tasks are never adopted later")
  end)
end)

describe("bad input", function()
  before_each(function() ai.install(); ai.enable(); ai.reset() end)
  after_each(function() ai.configure{ preset = "default" } end)

  local function fails(pattern, fn, ...)
    local ok, err = pcall(fn, ...)
    assert.is_false(ok)
    assert.matches(pattern, err)
  end

  it("checks every argument with a clear message", function()
    fails("bad argument #1 to 'name' %(coroutine or task id expected, got string%)", ai.name, "x", "y")
    fails("bad argument #2 to 'name' %(string expected, got number%)", ai.name, coroutine.running(), 5)
    fails("bad argument #1 to 'point' %(string expected, got no value%)", ai.point)
    fails("bad argument #2 to 'point' %(string expected, got table%)", ai.point, "x", {})
    fails("bad argument #1 to 'task' %(string expected, got number%)", ai.task, 1)
    fails("bad argument #1 to 'configure' %(table expected, got string%)", ai.configure, "x")
    fails("bad argument #1 to 'tasks' %(table expected, got number%)", ai.tasks, 1)
    fails("bad argument #1 to 'task_info'", ai.task_info, "x")
    fails("bad argument #1 to 'events' %(table expected", ai.events, 3)
    fails("bad argument #1 to 'iter_events' %(integer expected", ai.iter_events, "a")
    fails("bad argument #1 to 'inspect' %(coroutine expected",
      function() return coroutine.running().inspect(1, "x") end)
    fails("bad argument #2 to 'inspect' %(string expected", function() return coroutine.running():inspect(2) end)
  end)

  it("rejects bad settings and keeps the old ones", function()
    fails("ring_capacity", ai.configure, { ring_capacity = 0 })
    fails("ring_capacity", ai.configure, { ring_capacity = -1 })
    fails("max_tasks", ai.configure, { max_tasks = 1.5 })
    fails("sample", ai.configure, { sample = 2 })
    fails("unknown setting 'nope'", ai.configure, { nope = 1 })
    fails("unknown preset", ai.configure, { preset = "turbo" })
    assert.are.equal(1 << 20, ai.settings().ring_capacity)
  end)

  it("survives reset while tasks run and reporter calls with nothing tracked", function()
    local co = coroutine.create(function()
      ai.reset()
      coroutine.yield()
      error("later")
    end)
    assert.is_true((coroutine.resume(co)))
    assert.is_false((coroutine.resume(co)))
    ai.reset()
    assert.is_string(ai.report.summary())
    assert.is_string(ai.report.timeline())
    assert.is_string(ai.report.compact())
    assert.is_string(ai.report.tree())
    assert.is_string(ai.report.gantt())
  end)

  it("allows ai.task outside any coroutine and names of dead coroutines", function()
    local g = ai.task("top level")
    assert.is_nil(ai.task_info(g.id).parent)
    g:complete()
    local dead = coroutine.create(function() end)
    coroutine.resume(dead)
    assert.are.equal(dead, ai.name(dead, "gone"))
  end)
end)

describe("the scheduler bindings (sched.c, used by async_inspect.luv)", function()
  local core = ai.core
  local function fails(pattern, fn, ...)
    local ok, err = pcall(fn, ...)
    assert.is_false(ok)
    assert.matches(pattern, err)
  end
  local function noop() end
  -- a scheduler whose slow paths record what they were called with
  local function scheduler(log, class, adopted)
    local function note(what) return function(...) log[#log + 1] = { what, ... } end end
    return core.sched_new(class or {}, adopted or {}, note("idle"), note("failed"), note("raw"),
      note("main"), note("spurious"))
  end

  it("checks every argument with a clear message", function()
    local S = scheduler({})
    local co = coroutine.create(noop)
    local s = core.sched_spawn(S, co, nil, nil, "spawn", noop)
    fails("bad argument #1 to '.-sched_new' %(table expected, got number%)", core.sched_new, 1)
    fails("bad argument #2 to '.-sched_new' %(table expected, got function%)", core.sched_new, {}, noop)
    fails("bad argument #3 to '.-sched_new' %(function expected", core.sched_new, {}, {}, 1)
    fails("bad argument #1 to '.-sched_spawn' %(scheduler expected, got table%)", core.sched_spawn, {})
    fails("bad argument #1 to '.-sched_spawn' %(scheduler expected, got userdata%)", core.sched_spawn, s)
    fails("bad argument #2 to '.-sched_spawn' %(coroutine expected", core.sched_spawn, S, 1, nil, nil, "k", noop)
    fails("bad argument #3 to '.-sched_spawn' %(number expected",
      core.sched_spawn, S, coroutine.create(noop), "x", nil, "k", noop)
    fails("bad argument #3 to '.-sched_spawn' %(task id expected%)",
      core.sched_spawn, S, coroutine.create(noop), 0, nil, "k", noop)
    fails("bad argument #4 to '.-sched_spawn' %(string or nil expected",
      core.sched_spawn, S, coroutine.create(noop), nil, 1, "k", noop)
    fails("bad argument #5 to '.-sched_spawn' %(string or pinned text expected",
      core.sched_spawn, S, coroutine.create(noop), nil, nil, 1, noop)
    fails("bad argument #6 to '.-sched_spawn' %(function expected",
      core.sched_spawn, S, coroutine.create(noop), nil, nil, "k", 1)
    fails("bad argument #1 to '.-sched_adopt' %(scheduler expected", core.sched_adopt, 1)
    fails("bad argument #2 to '.-sched_adopt' %(coroutine expected", core.sched_adopt, S, {})
    fails("bad argument #1 to '.-sched_fields' %(table expected", core.sched_fields, 1)
    fails("bad argument #1 to '.-sched_wake' %(scheduler task expected, got userdata%)", core.sched_wake, S)
    fails("bad argument #2 to '.-sched_wake' %(string or pinned text expected", core.sched_wake, s, 1, 0)
    fails("bad argument #3 to '.-sched_wake' %(number expected", core.sched_wake, s, "k")
    fails("bad argument #3 to '.-sched_wake' %(value count", core.sched_wake, s, "k", -1)
    fails("bad argument #4 to '.-sched_wake' %(table expected", core.sched_wake, s, "k", 2, "x")
    fails("bad argument #2 to '.-sched_enqueue' %(number expected", core.sched_enqueue, s, "x")
    fails("bad argument #1 to '.-sched_run' %(scheduler task expected", core.sched_run, {})
    fails("bad argument #2 to '.-sched_suspend' %(string or pinned text expected", core.sched_suspend, s, 1)
    fails("bad argument #3 to '.-sched_suspend' %(level from 1 to 999", core.sched_suspend, s, "x", 0)
    fails("bad argument #1 to '.-sched_suspend' %(not the running task%)", core.sched_suspend,
      s, "x", 1)
    fails("bad argument #2 to '.-sched_drain' %(number expected", core.sched_drain, S)
    fails("bad argument #2 to '.-sched_drain' %(budget out of range%)", core.sched_drain, S, -1)
    fails("bad argument #1 to '.-sched_info' %(scheduler task expected", core.sched_info, co)
    fails("bad argument #1 to '.-sched_done' %(scheduler task expected", core.sched_done, io.stdout)
    fails("bad argument #2 to '.-sched_done' %(invalid option 'x'%)", core.sched_done, s, "x")
    fails("bad argument #1 to '.-sched_results' %(the task has not completed%)", core.sched_results, s)
    fails("bad argument #1 to '.-sched_bump' %(scheduler task expected", core.sched_bump, 1)
    fails("bad argument #2 to '.-sched_set' %(invalid option 'x'%)", core.sched_set, s, "x")
    fails("bad argument #1 to '.-sched_queued' %(scheduler expected", core.sched_queued, s)
    fails("bad argument #1 to '.-sched_waker' %(pinned text expected", core.sched_waker, "k")
    fails("bad argument #2 to '.-sched_waker' %(function expected", core.sched_waker, core.pin("wake"))
    -- sched_completed is a predicate: anything goes
    assert.is_false(core.sched_completed(nil))
    assert.is_false(core.sched_completed(io.stdout))
    assert.is_false(core.sched_completed(s))
  end)

  it("queues and resumes tasks, and calls the slow paths back", function()
    local log, class = {}, {}
    class.__index, class.__newindex = core.sched_fields(class)
    local S = scheduler(log, class)
    local got = {}
    local body = function(h, fn, ...) got[#got + 1] = { h, ... }; return fn(...) end
    local co1 = coroutine.create(body)
    local h = core.sched_spawn(S, co1, nil, "first", core.pin("spawn"), noop, 1, 2)
    assert.are.equal(class, getmetatable(h))
    assert.are.equal(1, core.sched_queued(S))
    assert.are.same({ "idle" }, log[1])
    assert.are.same({ 0, false, nil, false }, { core.sched_info(h) })
    local taken, empty, ran, t0 = core.sched_drain(S, 10)
    assert.are.same({ 1, true }, { taken, empty })
    -- the span of the pass's resumes, from the times the core recorded
    local info = ai.task_info(co1)
    assert.is_true(ran > 0 and ran <= info.busy, "pass time " .. ran .. " vs busy " .. info.busy)
    assert.are.equal(info.first_resume, t0)
    assert.are.same({ { h, 1, 2 } }, got)
    local gen, waits, _, started = core.sched_info(h)
    assert.are.same({ 1, false, true }, { gen, waits, started })
    -- it ended without saying so (sched_done): for the scheduler it ran on its own
    assert.are.same({ "raw", h }, log[#log])
    assert.is_false(core.sched_done(h, "completed", "a", "b")) -- no fields of its own yet
    assert.is_true(core.sched_completed(h))
    assert.are.same({ "a", "b" }, { core.sched_results(h) })
    assert.is_true(h.observed)
    fails("bad argument #1 to '.-sched_done' %(the task has ended already%)", core.sched_done, h, "failed")
    assert.is_false(core.sched_wake(h, "wake", 0))
    assert.are.equal(2, core.sched_bump(h))
    assert.are.equal(0, core.sched_queued(S))
    -- a waiting task: woken once, with its value; a second wake is void
    local w
    w = core.sched_spawn(S, coroutine.create(function(_, _)
      got.woken = core.sched_suspend(w, "recv", 1, "message", "message")
    end), nil, nil, "spawn", noop)
    core.sched_drain(S, 10)
    assert.are.same({ 1, true, "message", true }, { core.sched_info(w) })
    assert.is_true(core.sched_wake(w, "wake", 1, "hello"))
    assert.is_true(core.sched_wake(w, "wake", 1, "again"))
    taken, empty = core.sched_drain(S, 10)
    assert.are.same({ 1, true }, { taken, empty })
    assert.are.equal("hello", got.woken)
  end)

  it("serves a task's fields: its own read-only, others in a table of its own", function()
    local class = { greet = function() return "hi" end }
    class.__index, class.__newindex = core.sched_fields(class)
    local S = scheduler({}, class)
    local co = coroutine.create(noop)
    local h = core.sched_spawn(S, co, 7, "named", "spawn", noop)
    assert.are.same({ co, "named", 7 }, { h.co, h.title, h.tid })
    assert.is_nil(h.done)
    assert.is_nil(h.observed)
    assert.is_nil(h.adopted)
    assert.are.equal("hi", h:greet())
    for _, key in ipairs({ "co", "title", "tid", "done", "adopted", "main" }) do
      fails("the field '" .. key .. "' of a task is read%-only", function() h[key] = 1 end)
    end
    h.observed = true
    assert.is_true(h.observed)
    h.observed = nil
    assert.is_nil(h.observed)
    -- any other field: a table of the task's own, made on first use; a method wins
    h.joiners = { 1 }
    h[1], h[true] = "one", "yes"
    h.greet = "shadow"
    assert.are.same({ 1 }, h.joiners)
    assert.are.same({ "one", "yes" }, { h[1], h[true] })
    assert.are.equal("hi", h:greet())
    fails("index is nil", function() h[nil] = 1 end)
    -- ended: the flag says whether it has fields beyond its own
    assert.is_true(core.sched_done(h, "cancelled"))
    assert.are.equal("cancelled", h.done)
    assert.is_false(core.sched_completed(h))
    -- the methods check what they serve
    fails("bad argument #1 to '.-' %(scheduler task expected", class.__index, {}, "co")
    fails("bad argument #1 to '.-' %(scheduler task expected", class.__newindex, io.stdout, "x", 1)
    -- an adopted coroutine gets the other class, started, and main when it is
    local adopted = {}
    adopted.__index, adopted.__newindex = core.sched_fields({})
    local S2 = scheduler({}, {}, adopted)
    local a = core.sched_adopt(S2, coroutine.running(), nil, true)
    assert.are.equal(adopted, getmetatable(a))
    assert.is_true(a.adopted)
    assert.is_true(a.main)
    assert.is_nil(a.tid)
    assert.are.same({ 0, false, nil, true }, { core.sched_info(a) })
  end)

  it("keeps a task's body, arguments and results until they are taken", function()
    local S = scheduler({})
    local args = { n = 0 }
    local body = function(h, fn, ...) args = table.pack(h, fn, ...); return fn(...) end
    local function pair(x, y) return y, x end
    local co = coroutine.create(function(h, fn, ...)
      return core.sched_done(h, "completed", body(h, fn, ...))
    end)
    local h = core.sched_spawn(S, co, nil, nil, "spawn", pair, "a", nil)
    core.sched_drain(S, 10)
    assert.are.equal(4, args.n)
    assert.are.same({ h, pair, "a" }, { args[1], args[2], args[3] })
    assert.are.same({ n = 2, nil, "a" }, table.pack(core.sched_results(h)))
    assert.are.equal(2, select("#", core.sched_results(h)))
    -- a task that never started lets go of its body when it ends
    local weak = setmetatable({}, { __mode = "v" })
    local h2 = core.sched_spawn(S, coroutine.create(noop), nil, nil, "spawn", function() end)
    weak[1] = debug.getuservalue(h2, 1)
    core.sched_done(h2, "cancelled")
    collectgarbage(); collectgarbage()
    assert.is_nil(weak[1])
    -- dropping a queued task's last reference: the queue keeps it until taken,
    -- then the task and its coroutine go together
    local h3 = core.sched_spawn(S, coroutine.create(noop), nil, nil, "spawn", noop)
    weak[2], weak[3] = h3, debug.getuservalue(h3, 3) -- the coroutine
    core.sched_done(h3, "cancelled")
    h3 = nil -- luacheck: ignore
    collectgarbage(); collectgarbage()
    assert.is_not_nil(weak[2])
    core.sched_drain(S, 10)
    collectgarbage(); collectgarbage()
    assert.is_nil(weak[2])
    assert.is_nil(weak[3])
  end)
end)

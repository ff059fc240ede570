-- The public C header csrc/async_inspect.h, proven with a small C scheduler
-- (spec/c_scheduler/c_scheduler.c) compiled here: its coroutines are created
-- with lua_newthread and resumed from C through async_inspect_resume, and must
-- become tasks with their resumes, yields, completion and failure recorded;
-- without async_inspect in the state it must be plain lua_resume.
--
-- Every scenario runs in a child lua5.4 so that the state starts clean (and a
-- crash in C fails one test instead of the whole run).
local process = require("spec.support.process")
local markers = require("spec.support.markers")
local cjson = require("cjson")

local ROOT = process.ROOT

describe("the public C header async_inspect.h", function()
  local dir, cpath

  setup(function()
    dir = process.tmpdir()
    local res = process.run({ "cc", "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror",
      "-I/usr/include/lua5.4", "-I" .. ROOT .. "/csrc",
      "-o", dir .. "/c_scheduler.so", ROOT .. "/spec/c_scheduler/c_scheduler.c" })
    assert(res.code == 0, "compiling the C scheduler failed:\n" .. process.describe(res))
    cpath = dir .. "/?.so;" .. (os.getenv("LUA_CPATH_5_4") or (ROOT .. "/build/?.so;;"))
  end)

  teardown(function()
    if dir then process.rmdir(dir) end
  end)

  -- Run `body` in a child with the scheduler as `sched` (and `ai` when `with_ai`),
  -- `encode` and `tasks_of` in scope; the child prints one JSON document.
  local function child(body, with_ai)
    local code = table.concat({
      "local cjson = require 'cjson'",
      "local sched = require 'c_scheduler'",
      with_ai and "local ai = require 'async_inspect'" or "local ai = nil",
      "local function events_of(id) local out = {} for _, e in ipairs(ai.events{task = id}) do",
      "  out[#out + 1] = { kind = e.kind, loc = e.loc, other = e.other, detail = e.detail } end",
      "  return out end",
      "local out = {}",
      body,
      "io.write(cjson.encode(out))",
    }, "\n")
    local res = process.lua(code, { env = { LUA_CPATH_5_4 = cpath } })
    assert(res.code == 0, process.describe(res))
    return cjson.decode(res.stdout), res
  end

  -- the line of the child script where `marker` appears (the body starts at line 8)
  local function line_of(body, marker) return markers.line_in(body, marker, 8) end

  local LIFECYCLE = [[
local co = sched.spawn(function(a)
  local x = coroutine.yield(a + 1)  -- YIELD
  return x .. "!"
end, 41)
out.first = { sched.step(co) }
out.suspended = ai and ai.task_info(co)
out.second = { sched.step(co, "go") }
out.done = ai and ai.task_info(co)
out.events = ai and ai.task_info(co) and events_of(ai.task_info(co).id)
]]

  it("makes a coroutine created and resumed in C a task with its resumes, yield and completion", function()
    local out = child(LIFECYCLE, true)
    local yield_line = line_of(LIFECYCLE, "-- YIELD")
    assert.same({ "yield", 42 }, out.first)
    assert.same({ "dead", "go!" }, out.second)
    assert.is_table(out.suspended, "the C coroutine is not a task")
    assert.equal("suspended", out.suspended.state)
    assert.equal(1, out.suspended.resumes)
    assert.equal("child.lua:" .. yield_line, out.suspended.where:match("[^/]+$"))
    assert.equal("child.lua:" .. (yield_line - 1), out.suspended.name:match("[^/]+$"))
    assert.equal("completed", out.done.state)
    assert.equal(2, out.done.resumes)
    assert.is_number(out.done.ended)
    local kinds = {}
    for i, e in ipairs(out.events) do kinds[i] = e.kind end
    assert.same({ "spawn", "resume", "yield", "resume", "complete" }, kinds)
    assert.equal("child.lua:" .. yield_line, out.events[3].loc:match("[^/]+$"))
  end)

  local FAILURE = [[
local co = sched.spawn(function(what)
  coroutine.yield()
  error("bad " .. what)  -- FAIL
end, "input")
out.first = { sched.step(co) }
out.second = { sched.step(co) }
out.record = ai and ai.task_info(co)
out.events = ai and events_of(ai.task_info(co).id)
local obj = sched.spawn(function() error(setmetatable({}, { __tostring = function() return "obj" end })) end)
local st, e = sched.step(obj)
out.obj = { st, type(e), tostring(e) }
out.obj_record = ai and ai.task_info(obj)
]]

  it("records the failure of a C-resumed coroutine with its error and traceback", function()
    local out = child(FAILURE, true)
    local fail_line = line_of(FAILURE, "-- FAIL")
    assert.same({ "yield" }, out.first)
    assert.equal("error", out.second[1])
    local msg = out.second[2]
    assert.truthy(msg:find("child.lua:" .. fail_line .. ": bad input", 1, true), msg)
    assert.equal("failed", out.record.state)
    assert.equal(msg, out.record.error)
    assert.truthy(out.record.traceback:find("in function 'error'", 1, true), out.record.traceback)
    assert.truthy(out.record.traceback:find("child.lua:" .. fail_line, 1, true), out.record.traceback)
    assert.same({ "spawn", "resume", "yield", "resume", "fail" },
      (function() local k = {} for i, e in ipairs(out.events) do k[i] = e.kind end return k end)())
    assert.equal(msg, out.events[5].detail)
    -- an error object is left untouched on the coroutine's stack
    assert.same({ "error", "table", "obj" }, out.obj)
    assert.equal("failed", out.obj_record.state)
  end)

  local ROUND_ROBIN = [[
local order = {}
for i = 1, 3 do
  sched.spawn(function()
    for step = 1, 2 do order[#order + 1] = i .. ":" .. step; coroutine.yield() end
    if i == 2 then error("task two fails", 0) end
    return "ok " .. i
  end)
end
local results = sched.run()
out.order = order
out.results = results
out.tasks = {}
for _, t in ipairs(ai and ai.tasks() or {}) do
  out.tasks[#out.tasks + 1] = { state = t.state, resumes = t.resumes, error = t.error }
end
out.resumes = ai and #ai.events{ kind = "resume" }
]]

  it("tracks every task of a round-robin C scheduler", function()
    local out = child(ROUND_ROBIN, true)
    assert.same({ "1:1", "2:1", "3:1", "1:2", "2:2", "3:2" }, out.order)
    assert.same({ status = "dead", value = "ok 1" }, out.results[1])
    assert.same({ status = "error", value = "task two fails" }, out.results[2])
    assert.same({ status = "dead", value = "ok 3" }, out.results[3])
    assert.same({
      { state = "completed", resumes = 3 },
      { state = "failed", resumes = 3, error = "task two fails" },
      { state = "completed", resumes = 3 },
    }, out.tasks)
    assert.equal(9, out.resumes)
  end)

  local NESTED = [[
local outer = coroutine.wrap(function()
  local co = sched.spawn(function() coroutine.yield(); return 1 end)
  sched.step(co)
  sched.step(co)
  return co
end)
local co = outer()
local rec = ai.task_info(co)
out.parent = rec.parent
out.outer = ai.tasks()[1].id
out.resumers = {}
for _, e in ipairs(ai.events{ task = rec.id, kind = "resume" }) do out.resumers[#out.resumers + 1] = e.other end
]]

  it("records which task resumed a C task and which created it", function()
    local out = child(NESTED, true)
    assert.equal(out.outer, out.parent)
    assert.same({ out.outer, out.outer }, out.resumers)
  end)

  -- the same value with the children's temporary directories left out
  local function normalize(v)
    if type(v) == "string" then return (v:gsub("/tmp/[^/]+/", "")) end
    if type(v) ~= "table" then return v end
    local out = {}
    for k, x in pairs(v) do out[k] = normalize(x) end
    return out
  end

  it("is plain lua_resume when async_inspect is not loaded", function()
    local plain = child("out.api = sched.api_present()\n" .. LIFECYCLE .. FAILURE .. ROUND_ROBIN, false)
    local inspected = child("out.api = sched.api_present()\n" .. LIFECYCLE .. FAILURE .. ROUND_ROBIN, true)
    assert.is_false(plain.api)
    assert.is_true(inspected.api)
    for _, k in ipairs({ "first", "second", "obj", "order", "results" }) do
      assert.same(normalize(inspected[k]), normalize(plain[k]), k)
    end
  end)

  it("records nothing while disabled or after uninstall, and behaves the same", function()
    local out = child([[
ai.disable()
]] .. LIFECYCLE .. [[
out.disabled_tasks = #ai.tasks()
ai.enable()
ai.uninstall()
local co2 = sched.spawn(function() coroutine.yield(1); return 2 end)
out.after = { sched.step(co2) }
out.after2 = { sched.step(co2) }
out.uninstalled_tasks = #ai.tasks()
]], true)
    assert.same({ "yield", 42 }, out.first)
    assert.same({ "dead", "go!" }, out.second)
    assert.equal(0, out.disabled_tasks)
    assert.same({ "yield", 1 }, out.after)
    assert.same({ "dead", 2 }, out.after2)
    assert.equal(0, out.uninstalled_tasks)
  end)

  it("marks a C task dropped when its coroutine is collected while suspended", function()
    local out = child([[
local co = sched.spawn(function() coroutine.yield() end)
sched.step(co)
local id = ai.task_info(co).id
out.before = ai.task_info(id).state
co = nil
sched.clear()
collectgarbage(); collectgarbage()
out.after = ai.task_info(id).state
]], true)
    assert.equal("suspended", out.before)
    assert.equal("dropped", out.after)
  end)

  it("applies sampling to coroutines created in C", function()
    local out = child([[
ai.configure{ sample = 0 }
for _ = 1, 20 do
  local co = sched.spawn(function() coroutine.yield(); return 1 end)
  sched.step(co); sched.step(co)
end
out.none = #ai.tasks()
ai.configure{ sample = 1 }
local co = sched.spawn(function() return 1 end)
sched.step(co)
out.all = #ai.tasks()
]], true)
    assert.equal(0, out.none)
    assert.equal(1, out.all)
  end)
end)

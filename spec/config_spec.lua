-- Configuration that really applies: ai.configure{} and the environment
-- variables, each proven to change what is recorded. Every case runs in a
-- child lua5.4 so that the environment is read at load, as in production.
local process = require("spec.support.process")
local cjson = require("cjson")

-- Run `body` in a child with `ai` loaded under `env`; the body fills `out`,
-- which comes back decoded. Helpers in scope: `churn(n)` runs n coroutines
-- to completion (5 events each), `park(n)` leaves n suspended (kept alive).
local function child(body, env)
  local code = table.concat({
    "local cjson = require 'cjson'",
    "local ai = require 'async_inspect'",
    "local out = {}",
    "local function churn(n) for _ = 1, n do",
    "  local co = coroutine.create(function() coroutine.yield() end)",
    "  coroutine.resume(co); coroutine.resume(co) end end",
    "local parked = {}",
    "local function park(n) for _ = 1, n do",
    "  local co = coroutine.create(function() coroutine.yield() end)",
    "  coroutine.resume(co); parked[#parked + 1] = co end end",
    body,
    "io.write(cjson.encode(out))",
  }, "\n")
  local res = process.lua(code, { env = env })
  assert(res.code == 0, process.describe(res))
  return cjson.decode(res.stdout), res
end

local STATS = "out.stats = ai.stats(); out.settings = ai.settings()"

describe("configuration", function()
  describe("ASYNC_INSPECT", function()
    it("=0 leaves coroutine.* untouched and records nothing until install()", function()
      local out = child([[
out.installed = ai.is_installed()
out.same = coroutine.resume == ai.original.resume and coroutine.create == ai.original.create
churn(10)
out.before = ai.stats().tasks
ai.install()
churn(3)
out.after = ai.stats().tasks
]], { ASYNC_INSPECT = "0" })
      assert.is_false(out.installed)
      assert.is_true(out.same)
      assert.equal(0, out.before)
      assert.equal(3, out.after)
    end)

    it("unset or 1 installs and records", function()
      for _, v in ipairs({ "1", "" }) do
        local out = child("churn(4); out.installed = ai.is_installed(); out.tasks = ai.stats().tasks",
          { ASYNC_INSPECT = v })
        assert.is_true(out.installed)
        assert.equal(4, out.tasks)
      end
    end)
  end)

  describe("sampling", function()
    it("tracks a fraction of new tasks (ASYNC_INSPECT_SAMPLE)", function()
      local out = child("churn(2000); " .. STATS, { ASYNC_INSPECT_SAMPLE = "0.25" })
      -- binomial(2000, 0.25): mean 500, sd 19; the bounds are beyond 7 sd
      assert.is_true(out.stats.tasks > 360 and out.stats.tasks < 640, tostring(out.stats.tasks))
      assert.near(0.25, out.settings.sample, 1e-6)
      -- a task that is tracked is tracked whole: 5 events each
      assert.equal(out.stats.tasks * 5, out.stats.events)
    end)

    it("decides at creation: an untracked coroutine stays untracked, a tracked one stays tracked", function()
      local out = child([[
ai.configure{ sample = 0 }
local skipped = coroutine.create(function() coroutine.yield() end)
ai.configure{ sample = 1 }
local kept = coroutine.create(function() coroutine.yield() end)
ai.configure{ sample = 0 }
coroutine.resume(skipped); coroutine.resume(skipped)
coroutine.resume(kept); coroutine.resume(kept)
out.skipped = ai.task_info(skipped) ~= nil
out.kept = ai.task_info(kept)
]])
      assert.is_false(out.skipped)
      assert.equal("completed", out.kept.state)
      assert.equal(2, out.kept.resumes)
    end)

    it("is reproducible with a seed", function()
      local body = "ai.configure{ sample = 0.5, seed = 12345 }; churn(500); out.n = ai.stats().tasks"
      local a, b = child(body), child(body)
      assert.equal(a.n, b.n)
      assert.is_true(a.n > 0 and a.n < 500)
    end)

    it("sample = 0 records no task at all", function()
      local out = child("churn(300); " .. STATS, { ASYNC_INSPECT_SAMPLE = "0" })
      assert.equal(0, out.stats.tasks)
      assert.equal(0, out.stats.events)
    end)
  end)

  describe("bounded retention (ASYNC_INSPECT_MAX_TASKS)", function()
    it("keeps at most max_tasks finished records and counts the evicted", function()
      local out = child("park(30); churn(500); out.records = #ai.tasks(); " .. STATS,
        { ASYNC_INSPECT_MAX_TASKS = "50" })
      assert.equal(50, out.settings.max_tasks)
      assert.equal(530, out.stats.tasks)
      assert.equal(450, out.stats.evicted)
      -- live tasks are never evicted: 30 suspended + the 50 newest finished
      assert.equal(80, out.records)
      assert.equal(30, out.stats.suspended)
    end)

    it("evicts the oldest finished records first", function()
      local out = child([[
ai.configure{ max_tasks = 3 }
churn(10)
out.ids = {}
for _, t in ipairs(ai.tasks()) do out.ids[#out.ids + 1] = t.id end
]])
      assert.same({ 8, 9, 10 }, out.ids)
    end)

    it("keeps none with max_tasks = 0", function()
      local out = child("ai.configure{ max_tasks = 0 }; churn(20); out.n = #ai.tasks(); " .. STATS)
      assert.equal(0, out.n)
      assert.equal(20, out.stats.evicted)
    end)
  end)

  describe("ring capacity (ASYNC_INSPECT_RING)", function()
    it("keeps the newest events and counts the overwritten ones", function()
      local out = child([[
churn(100)
out.first_seq = ai.events{ limit = 1 }[1].seq
out.kept = #ai.events()
]] .. STATS, { ASYNC_INSPECT_RING = "128" })
      assert.equal(128, out.settings.ring_capacity)
      assert.equal(128, out.kept)
      assert.equal(128, out.stats.events)
      assert.equal(500 - 128, out.stats.events_dropped)
      assert.equal(500 - 128 + 1, out.first_seq)
    end)

    it("drops nothing while the ring is large enough", function()
      local out = child("churn(100); " .. STATS)
      assert.equal(500, out.stats.events)
      assert.equal(0, out.stats.events_dropped)
    end)
  end)

  describe("yield locations (ASYNC_INSPECT_LOCATIONS)", function()
    local BODY = [[
local co = coroutine.create(function()
  coroutine.yield()
end)
coroutine.resume(co)
out.where = ai.task_info(co).where
out.loc = ai.events{ kind = "yield" }[1].loc
out.settings = ai.settings()
]]

    it("records where each task is suspended by default", function()
      local out = child(BODY)
      assert.truthy(out.where and out.where:match("child%.lua:12$"), tostring(out.where))
      assert.equal(out.where, out.loc)
    end)

    it("=0 records no yield location", function()
      local out = child(BODY, { ASYNC_INSPECT_LOCATIONS = "0" })
      assert.is_false(out.settings.locations)
      assert.is_nil(out.where)
      assert.is_nil(out.loc)
    end)

    it("can be switched at run time with configure", function()
      local out = child([[
ai.configure{ locations = false }
local a = coroutine.create(function() coroutine.yield() end)
coroutine.resume(a)
ai.configure{ locations = true }
local b = coroutine.create(function() coroutine.yield() end)
coroutine.resume(b)
out.a = ai.task_info(a).where
out.b = ai.task_info(b).where
]])
      assert.is_nil(out.a)
      assert.truthy(out.b and out.b:match("child%.lua:15$"), tostring(out.b))
    end)
  end)

  describe("failure tracebacks (tracebacks)", function()
    local BODY = [[
local co = coroutine.create(function() error("boom") end)
coroutine.resume(co)
out.rec = ai.task_info(co)
]]

    it("keeps the traceback of a failed task by default", function()
      local out = child(BODY)
      assert.equal("failed", out.rec.state)
      assert.truthy(out.rec.error:find("boom", 1, true))
      assert.truthy(out.rec.traceback:find("in function 'error'", 1, true), out.rec.traceback)
    end)

    it("tracebacks = false keeps the error and drops the traceback", function()
      local out = child("ai.configure{ tracebacks = false }\n" .. BODY)
      assert.equal("failed", out.rec.state)
      assert.truthy(out.rec.error:find("boom", 1, true))
      assert.is_nil(out.rec.traceback)
    end)
  end)

  describe("creation traces (ASYNC_INSPECT_CREATION_TRACES)", function()
    local BODY = [[
local function spawn_worker()
  return coroutine.create(function() coroutine.yield() end)
end
local co = spawn_worker()  -- SPAWN
coroutine.resume(co)
out.dump = require("async_inspect.where").dump()
out.settings = ai.settings()
]]

    it("are not captured by default", function()
      local out = child(BODY)
      assert.is_false(out.settings.creation_traces)
      assert.is_nil(out.dump:find("creation traceback", 1, true), out.dump)
    end)

    it("=1 captures where each coroutine was created, shown in the dump", function()
      local out = child(BODY, { ASYNC_INSPECT_CREATION_TRACES = "1" })
      assert.is_true(out.settings.creation_traces)
      assert.truthy(out.dump:find("creation traceback:", 1, true), out.dump)
      assert.truthy(out.dump:find("child.lua:12: in function 'spawn_worker'", 1, true), out.dump)
      assert.truthy(out.dump:find("child.lua:14: in main chunk", 1, true), out.dump)
    end)

    it("can be turned on with configure", function()
      local out = child("ai.configure{ creation_traces = true }\n" .. BODY)
      assert.truthy(out.dump:find("creation traceback:", 1, true), out.dump)
    end)
  end)

  describe("long polls (ASYNC_INSPECT_LONG_POLL_MS)", function()
    -- one resume that keeps the CPU for 5 ms
    local BODY = [[
local co = coroutine.create(function()
  local t0 = os.clock()
  while os.clock() - t0 < 0.005 do end
end)
coroutine.resume(co)
]] .. STATS

    it("counts a resume longer than the threshold", function()
      local out = child(BODY, { ASYNC_INSPECT_LONG_POLL_MS = "1" })
      assert.equal(1, out.stats.long_polls)
      assert.is_true(math.abs(out.settings.long_poll_ns - 1e6) <= 1)
    end)

    it("does not count it under a higher threshold", function()
      local out = child(BODY, { ASYNC_INSPECT_LONG_POLL_MS = "2000" })
      assert.equal(0, out.stats.long_polls)
    end)
  end)

  describe("the production preset", function()
    it("applies its figures (ASYNC_INSPECT_PRESET=production)", function()
      local out = child(STATS, { ASYNC_INSPECT_PRESET = "production" })
      local s = out.settings
      assert.equal(65536, s.ring_capacity)
      assert.equal(10000, s.max_tasks)
      assert.is_false(s.locations)
      assert.is_true(s.tracebacks)
      assert.equal(1.0, s.sample)
      assert.is_true(math.abs(s.long_poll_ns - 50e6) <= 1)
    end)

    it("bounds what is recorded: no yield locations, retention and ring capped", function()
      local out = child([[
park(5)
churn(15000)
out.where = ai.task_info(parked[1]).where
]] .. STATS, { ASYNC_INSPECT_PRESET = "production" })
      assert.is_nil(out.where)
      assert.equal(15005, out.stats.tasks)
      assert.equal(5000, out.stats.evicted)
      assert.equal(65536, out.stats.events)
      assert.equal(5 * 3 + 15000 * 5 - 65536, out.stats.events_dropped)
    end)

    it("lets explicit settings override it, in configure and in the environment", function()
      local out = child([[
ai.configure{ preset = "production", locations = true, max_tasks = 7 }
out.settings = ai.settings()
]])
      assert.is_true(out.settings.locations)
      assert.equal(7, out.settings.max_tasks)
      assert.equal(65536, out.settings.ring_capacity)
      local env_out = child(STATS, { ASYNC_INSPECT_PRESET = "production", ASYNC_INSPECT_LOCATIONS = "1" })
      assert.is_true(env_out.settings.locations)
      assert.equal(10000, env_out.settings.max_tasks)
    end)

    it("the default preset restores the defaults", function()
      local out = child([[
ai.configure{ preset = "default" }
out.settings = ai.settings()
]], { ASYNC_INSPECT_PRESET = "production" })
      assert.equal(1 << 20, out.settings.ring_capacity)
      assert.equal(100000, out.settings.max_tasks)
      assert.is_true(out.settings.locations)
    end)
  end)

  describe("bad values", function()
    -- configure raises at the caller with the setting and what it must be
    local cases = {
      { "{ sample = 2 }", "setting 'sample' must be a number from 0 to 1" },
      { "{ sample = 'half' }", "setting 'sample' must be a number from 0 to 1" },
      { "{ max_tasks = -1 }", "setting 'max_tasks' must be an integer from 0" },
      { "{ max_tasks = 1.5 }", "setting 'max_tasks' must be an integer from 0" },
      { "{ ring_capacity = 8 }", "setting 'ring_capacity' must be an integer from 16" },
      { "{ locations = 'yes' }", "setting 'locations' must be a boolean" },
      { "{ long_poll_ms = -1 }", "setting 'long_poll_ms' must be a number from 0" },
      { "{ unjoined_errors = 'loud' }", "setting 'unjoined_errors' must be one of warn, raise, ignore" },
      { "{ preset = 'fast' }", "unknown preset 'fast'" },
      { "{ colour = true }", "unknown setting 'colour'" },
      { "'production'", "table expected, got string" },
    }
    for _, case in ipairs(cases) do
      it("configure" .. case[1] .. " is rejected", function()
        local out = child(([[
local ok, err = pcall(function()
  ai.configure(%s)  -- CALL
end)
out.ok, out.err = ok, tostring(err)
out.settings = ai.settings()
]]):format(case[1]))
        assert.is_false(out.ok)
        assert.truthy(out.err:find(case[2], 1, true), out.err)
        assert.truthy(out.err:find("bad argument #1 to 'configure'", 1, true), out.err)
        -- the error points at the caller's line, and nothing was changed
        assert.truthy(out.err:match("child%.lua:12: "), out.err)
        assert.equal(1.0, out.settings.sample)
        assert.equal(100000, out.settings.max_tasks)
      end)
    end

    it("a bad environment value is reported on stderr and not applied", function()
      local out, res = child(STATS, { ASYNC_INSPECT_SAMPLE = "2" })
      assert.truthy(res.stderr:find("sample", 1, true), res.stderr)
      assert.truthy(res.stderr:find("0 to 1", 1, true), res.stderr)
      assert.equal(1.0, out.settings.sample)
    end)

    it("a value that is not a number is reported and ignored", function()
      local out, res = child(STATS, { ASYNC_INSPECT_RING = "lots" })
      assert.truthy(res.stderr:find("ASYNC_INSPECT_RING", 1, true), res.stderr)
      assert.equal(1 << 20, out.settings.ring_capacity)
    end)

    it("a fractional ASYNC_INSPECT_MAX_TASKS is reported, not silently ignored", function()
      local out, res = child(STATS, { ASYNC_INSPECT_MAX_TASKS = "1.5" })
      assert.truthy(res.stderr:find("max_tasks", 1, true) or res.stderr:find("MAX_TASKS", 1, true),
        "no message on stderr")
      assert.equal(100000, out.settings.max_tasks)
    end)

    it("an unknown preset in the environment is reported", function()
      local out, res = child(STATS, { ASYNC_INSPECT_PRESET = "turbo" })
      assert.truthy(res.stderr:find("unknown preset 'turbo'", 1, true), res.stderr)
      assert.equal(1 << 20, out.settings.ring_capacity)
    end)
  end)
end)

-- Recording the event stream to a file and replaying it: the replay shows the figures the
-- live run showed at the same moment.
local env = require("env")
local fake_mod = require("fake_inspector")
local record = require("async_inspect.record")
local wire = require("async_inspect.wire")
local cjson = require("cjson")
local uv = require("luv")

local MS = 1000000

-- Every field of a task record the contract defines, and what only snapshots carry.
local FIELDS = { "id", "name", "parent", "state", "kind", "created", "created_at",
  "first_resume", "last_change", "ended", "resumes", "busy", "where", "await", "error" }

local function compare(live, replayed, fields, busy_tolerance)
  local by = {}
  for _, t in ipairs(replayed.tasks) do by[t.id] = t end
  assert.equal(#live.tasks, #replayed.tasks, "number of tasks")
  for _, lt in ipairs(live.tasks) do
    local rt = by[lt.id]
    assert.truthy(rt, "task " .. lt.id .. " missing")
    for _, f in ipairs(fields or FIELDS) do
      if f == "busy" and busy_tolerance then
        assert.is_true(math.abs(lt.busy - rt.busy) <= busy_tolerance(lt),
          ("task %d busy %d vs %d"):format(lt.id, lt.busy, rt.busy))
      else
        assert.equal(lt[f], rt[f], ("task %d field %s at t=%d"):format(lt.id, f, live.t))
      end
    end
  end
end

local function lines_of(path)
  local out = {}
  for line in io.lines(path) do out[#out + 1] = line end
  return out
end

-- A workload on the fake inspector: spawns, nested resumes, renames, failures, cancels.
local function workload(fake, snaps, flush)
  local adv = fake.advance
  local main = fake.spawn("main", nil, "app.lua:1")
  adv(10) fake.resume(main)
  local kids = {}
  for i = 1, 6 do
    adv(3)
    kids[i] = fake.spawn("app.lua:" .. (20 + i), main, "app.lua:5")
  end
  fake.set_kind(kids[6], "block")
  adv(5) fake.yield(main, "app.lua:9", "tick", "timer")
  snaps[#snaps + 1] = fake.snapshot()
  flush()
  for round = 1, 5 do
    for i, k in ipairs(kids) do
      local info = fake.task_info(k)
      if info.state == "pending" or info.state == "suspended" then
        adv(7 * i)
        fake.resume(k, nil, "timer")
        if i == 2 and round == 1 then
          fake.rename(k, "renamed")
        end
        if i == 3 and round == 2 then
          adv(2) fake.resume(main, k)
          adv(4) fake.yield(main, "app.lua:9", "tick")
        end
        adv(3 * round)
        if i == 4 and round == 3 then
          fake.fail(k, "app.lua:40: boom")
        elseif i == 5 and round == 4 then
          fake.complete(k)
        else
          fake.yield(k, "work.lua:" .. (10 + round), round % 2 == 0 and "io" or nil, "fs")
        end
      end
    end
    snaps[#snaps + 1] = fake.snapshot()
    flush()
    fake.point(main, "round", tostring(round))
  end
  adv(11) fake.cancel(kids[1])
  snaps[#snaps + 1] = fake.snapshot()
end

describe("record", function()
  local path

  before_each(function() path = env.tmpname(".aiv") end)
  after_each(function() os.remove(path) end)

  it("writes NDJSON: a header, events, task meta, snapshots and an end line", function()
    local fake = fake_mod.new()
    local snaps = {}
    local rec = record.record(path, { inspector = fake, snapshot_interval = 1e9 })
    workload(fake, snaps, function() rec:flush() end)
    local written = rec:stop()
    assert.equal(written, rec.events)
    local lines = lines_of(path)
    local types = {}
    for i, l in ipairs(lines) do
      local msg = cjson.decode(l)  -- every line is plain JSON for other readers
      types[msg.type] = (types[msg.type] or 0) + 1
      if i == 1 then
        assert.equal("header", msg.type)
        assert.equal("async_inspect.recording", msg.format)
        assert.equal(1, msg.version)
      end
    end
    local last = cjson.decode(lines[#lines])
    assert.equal("end", last.type)
    assert.equal(rec.events, last.events)
    assert.is_true(rec.events > 50)
    assert.equal(rec.events, types.event)
    assert.equal(7, types.task)
    assert.equal(2, types.snapshot)  -- the first one and the last one
    assert.is_nil(rec.error)
  end)

  it("replays the live figures at every moment a snapshot was taken", function()
    local fake = fake_mod.new()
    local snaps = {}
    local rec = record.record(path, { inspector = fake, snapshot_interval = 1e9 })
    workload(fake, snaps, function() rec:flush() end)
    rec:stop()
    local h = record.open(path)
    assert.is_true(h.complete)
    for _, live in ipairs(snaps) do compare(live, h:snapshot_at(live.t)) end
  end)

  it("brings back what events cannot tell from the periodic snapshots", function()
    local fake = fake_mod.new()
    local snaps = {}
    -- a partial snapshot on every flush
    local rec = record.record(path, { inspector = fake, snapshot_interval = 0 })
    workload(fake, snaps, function() rec:flush() end)
    rec:stop()
    local h = record.open(path)
    local fields = { "wait", table.unpack(FIELDS) }
    for i = 1, #snaps - 1 do compare(snaps[i], h:snapshot_at(snaps[i].t), fields) end
  end)

  it("records the history still in the ring when it is complete", function()
    local fake = fake_mod.new()
    local a = fake.spawn("early", nil, "a.lua:1")
    fake.advance(100) fake.resume(a)
    fake.advance(50) fake.yield(a, "a.lua:2", "wait")
    local rec = record.record(path, { inspector = fake })
    rec:stop()
    local h = record.open(path)
    local c = h:cursor()
    assert.equal(0, c:time())
    assert.same({ 1, 3 }, { c:position() })
    c:step(1)
    assert.equal("running", c:snapshot().tasks[1].state)
    assert.equal("early", c:snapshot().tasks[1].name)
  end)

  it("starts from a full snapshot when the ring lost events or history is off", function()
    local fake = fake_mod.new({ capacity = 4 })
    local a = fake.spawn("a", nil, "a.lua:1")
    for _ = 1, 3 do
      fake.advance(10) fake.resume(a)
      fake.advance(10) fake.yield(a, "a.lua:2")
    end
    local rec = record.record(path, { inspector = fake })
    fake.advance(10) fake.resume(a)
    fake.advance(10) fake.complete(a)
    local live = fake.snapshot()
    rec:stop()
    local h = record.open(path)
    assert.equal(2, h:count())  -- only the events after the start
    compare(live, h:snapshot_at(live.t))
    local before = h:snapshot_at(60)
    assert.equal("suspended", before.tasks[1].state)
    assert.equal(3, before.tasks[1].resumes)
  end)

  it("writes a gap and a full snapshot when the ring overwrote events", function()
    local fake = fake_mod.new({ capacity = 50 })
    local rec = record.record(path, { inspector = fake })
    local ids = {}
    for i = 1, 5 do ids[i] = fake.spawn("t" .. i, nil, "g.lua:" .. i) end
    for _ = 1, 30 do
      for _, id in ipairs(ids) do
        fake.advance(3) fake.resume(id)
        fake.advance(2) fake.yield(id, "g.lua:9")
      end
    end
    local live = fake.snapshot()
    rec:flush()
    fake.advance(5) fake.resume(ids[1])
    local live2 = fake.snapshot()
    rec:stop()
    local gap
    for _, l in ipairs(lines_of(path)) do
      local msg = wire.decode(l)
      if msg.type == "gap" then gap = msg end
    end
    assert.truthy(gap)
    assert.is_true(gap.lost > 200)
    local h = record.open(path)
    compare(live, h:snapshot_at(live.t))
    compare(live2, h:snapshot_at(live2.t))
    local stats = h:snapshot_at(live2.t).stats
    assert.equal(gap.lost, stats.events_lost)
    assert.equal(live2.stats.events_dropped, stats.events_dropped)
  end)

  it("records on a luv timer while the program runs", function()
    local fake = fake_mod.new()
    local snaps = {}
    local rec = record.record(path, { inspector = fake, interval = 10 })
    local id = fake.spawn("ticker", nil, "t.lua:1")
    local n = 0
    local gen = uv.new_timer()
    gen:start(5, 5, function()
      n = n + 1
      fake.advance(MS)
      fake.resume(id)
      fake.advance(MS // 2)
      fake.yield(id, "t.lua:" .. (n % 3 + 2), "sleep")
      if n % 10 == 0 then snaps[#snaps + 1] = fake.snapshot() end
    end)
    local size_while_running = 0
    env.run_until(function()
      if n >= 40 then
        local f = io.open(path, "rb")
        size_while_running = f:seek("end")
        f:close()
        return true
      end
      return false
    end, 5000)
    gen:close()
    uv.run("nowait")  -- completes the close: luv must not free a closing handle at exit
    rec:stop()
    assert.is_true(size_while_running > 1000, "written while running")
    local h = record.open(path)
    for _, live in ipairs(snaps) do compare(live, h:snapshot_at(live.t)) end
  end)

  it("finishes the file when the program exits without stopping", function()
    local script = env.tmpname(".lua")
    local f = assert(io.open(script, "w"))
    f:write(([[
      local fake = require("fake_inspector").new()
      local rec = require("async_inspect.record").record(%q, { inspector = fake })
      local id = fake.spawn("w", nil, "x.lua:1")
      fake.advance(5) fake.resume(id)
      fake.advance(5) fake.yield(id, "x.lua:2")
    ]]):format(path))
    f:close()
    local ok = os.execute(env.shell_lua() .. " " .. script)
    os.remove(script)
    assert.is_true(ok)
    local lines = lines_of(path)
    assert.equal("end", wire.decode(lines[#lines]).type)
    local h = record.open(path)
    assert.equal("suspended", h:snapshot_at(10).tasks[1].state)
  end)

  it("stops without disturbing the program when writing fails", function()
    local fake = fake_mod.new()
    local rec = record.record(path, { inspector = fake })
    rec.file:close()  -- the file goes away under the recorder
    fake.spawn("x", nil, "x.lua:1")
    local stderr = io.stderr
    local said = {}
    rawset(io, "stderr", { write = function(_, ...) said[#said + 1] = table.concat({ ... }) end })
    local ok = rec:flush()
    rawset(io, "stderr", stderr)
    assert.is_false(ok)
    assert.truthy(rec.error)
    assert.truthy(said[1]:find("stopped", 1, true))
    assert.is_false(rec:flush())
  end)

  it("checks its arguments and the file it reads", function()
    assert.has_error(function() record.record(5) end,
      "bad argument #1 to 'record' (string expected, got number)")
    assert.has_error(function() record.record(path, 5) end,
      "bad argument #2 to 'record' (table expected, got number)")
    assert.has_error(function() record.record("/nonexistent/dir/x.aiv", { inspector = fake_mod.new() }) end)
    assert.has_error(function() record.open(nil) end,
      "bad argument #1 to 'open' (string expected, got no value)")
    local f = assert(io.open(path, "w"))
    f:write('{"type":"something"}\n')
    f:close()
    assert.has_error(function() record.open(path) end, path .. " is not an async_inspect recording")
    f = assert(io.open(path, "w"))
    f:write('{"type":"header","format":"async_inspect.recording","version":99}\n')
    f:close()
    assert.has_error(function() record.open(path) end)
    f = assert(io.open(path, "w"))
    f:write('{"type":"header","format":"async_inspect.recording","version":1}\n')
    f:write('garbage\n{"type":"event","seq":1,"t":1,"task":1,"kind":"spawn"}\n')
    f:close()
    local ok, err = pcall(record.open, path)
    assert.is_false(ok)
    assert.truthy(err:find(":2: not a JSON object", 1, true))
  end)

  it("accepts a recording cut short by a crash", function()
    local f = assert(io.open(path, "w"))
    f:write('{"type":"header","format":"async_inspect.recording","version":1}\n')
    f:write('{"type":"event","seq":1,"t":5,"task":1,"kind":"spawn","loc":"a.lua:1"}\n')
    f:write('{"type":"event","seq":2,"t":9,"task":1,"ki')
    f:close()
    local h = record.open(path)
    assert.is_false(h.complete)
    assert.equal(1, h:count())
    local src = record.source(h)
    assert.truthy(src.status():find("cut short", 1, true))
    assert.equal("pending", src.snapshot().tasks[1].state)
  end)
end)

describe("record with the C core", function()
  local have_core = env.core_available()

  it("replays what ai.snapshot() showed at the same moments", function()
    if not have_core then
      pending("build/async_inspect/core.so is not built")
      return
    end
    local ai = require("async_inspect")
    local was_installed = ai.is_installed()
    ai.install()
    ai.reset()
    finally(function() if not was_installed then ai.uninstall() end end)
    local path = env.tmpname(".aiv")
    local rec = record.record(path)
    local lives = {}
    local cos = {}
    for i = 1, 6 do
      cos[i] = coroutine.create(function(n)
        for k = 1, n do
          ai.await_point("step" .. k)
          coroutine.yield(k)
          if k == 2 and i == 3 then
            local inner = coroutine.wrap(function() coroutine.yield() end)
            inner()
          end
        end
        if i == 4 then error("bad " .. i) end
      end)
    end
    ai.name(cos[2], "second")
    lives[#lives + 1] = ai.snapshot()
    for _ = 1, 4 do
      for i = 1, 6 do
        if coroutine.status(cos[i]) == "suspended" then coroutine.resume(cos[i], 3) end
      end
      lives[#lives + 1] = ai.snapshot()
      rec:flush()
    end
    coroutine.close(cos[5])
    lives[#lives + 1] = ai.snapshot()
    rec:stop()
    local h = record.open(path)
    os.remove(path)
    local fields = { "function", table.unpack(FIELDS) }
    -- the core sums busy time in clock ticks and converts the sum, events convert each
    -- timestamp: they may differ by a nanosecond per resume
    local tolerance = function(t) return t.resumes + 1 end
    for _, live in ipairs(lives) do compare(live, h:snapshot_at(live.t), fields, tolerance) end
  end)
end)

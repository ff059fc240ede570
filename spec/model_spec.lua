-- Rebuilding snapshots from the event stream (async_inspect.model).
local fx = require("fixtures")
local model = require("async_inspect.model")

local MS = 1000000

-- Fields a model derives from events alone.
local DERIVED = { "id", "parent", "state", "created", "created_at", "first_resume",
  "last_change", "ended", "resumes", "busy", "where", "await", "error" }

local function by_id(snap)
  local out = {}
  for _, t in ipairs(snap.tasks) do out[t.id] = t end
  return out
end

local function ev(seq, t, task, kind, loc, other, detail)
  return { seq = seq, t = t, task = task, kind = kind, loc = loc, other = other,
    detail = detail }
end

describe("model", function()
  it("rebuilds the derived figures of every task from the events", function()
    local m = model.new()
    for _, e in ipairs(fx.events()) do m:apply(e) end
    local got = by_id(m:snapshot({ t = 100 * MS }))
    for _, want in ipairs(fx.snapshot().tasks) do
      for _, f in ipairs(DERIVED) do
        assert.equal(want[f], got[want.id][f], ("task %d field %s"):format(want.id, f))
      end
    end
  end)

  it("names tasks from name events and from task meta", function()
    local m = model.new()
    for _, e in ipairs(fx.events()) do m:apply(e) end
    local snap = by_id(m:snapshot())
    assert.equal("fetcher", snap[3].name)
    assert.equal("task 1", snap[1].name)
    m:apply_meta({ id = 1, name = "main loop", kind = "coroutine" })
    m:apply_meta({ id = 3, name = "app.lua:21" })  -- a later rename wins over meta
    m:apply_meta({ id = 5, kind = "block" })
    snap = by_id(m:snapshot())
    assert.equal("main loop", snap[1].name)
    assert.equal("fetcher", snap[3].name)
    assert.equal("block", snap[5].kind)
  end)

  it("builds stats and keeps the events", function()
    local m = model.new()
    for _, e in ipairs(fx.events()) do m:apply(e) end
    local snap = m:snapshot({ t = 100 * MS, events = true })
    assert.equal(100 * MS, snap.t)
    assert.equal(21, snap.seq)
    local s = snap.stats
    assert.same({ 5, 2, 2, 2, 1, 0, 21, 0, 0 }, { s.tasks, s.active, s.suspended, s.completed,
      s.failed, s.pending, s.events, s.events_dropped, s.events_lost })
    assert.equal(21, #snap.events)
    assert.equal("spawn", snap.events[1].kind)
  end)

  it("marks a resumer normal while the task it resumed runs", function()
    local m = model.new()
    m:apply(ev(1, 0, 1, "spawn", "a.lua:1"))
    m:apply(ev(2, 10, 1, "resume"))
    m:apply(ev(3, 20, 2, "spawn", "a.lua:2", 1))
    m:apply(ev(4, 30, 2, "resume", nil, 1))
    local s = by_id(m:snapshot({ t = 35 }))
    assert.equal("normal", s[1].state)
    assert.equal(10, s[1].last_change)  -- like the core: no state-change time for normal
    assert.equal(25, s[1].busy)         -- nested resumes count for the resumer too
    assert.equal(5, s[2].busy)
    m:apply(ev(5, 40, 2, "yield", "a.lua:3", nil, "inner"))
    s = by_id(m:snapshot({ t = 50 }))
    assert.equal("running", s[1].state)
    assert.equal(40, s[1].busy)
    assert.equal("suspended", s[2].state)
    assert.equal("a.lua:3", s[2].where)
  end)

  it("keeps the await label until the next yield, and where on cancel", function()
    local m = model.new()
    m:apply(ev(1, 0, 1, "spawn", "a.lua:1"))
    m:apply(ev(2, 1, 1, "resume"))
    m:apply(ev(3, 2, 1, "yield", "a.lua:5", nil, "first"))
    m:apply(ev(4, 3, 1, "resume"))
    local s = by_id(m:snapshot())
    assert.equal("first", s[1].await)
    assert.is_nil(s[1].where)
    m:apply(ev(5, 4, 1, "yield", "a.lua:6"))
    assert.is_nil(by_id(m:snapshot())[1].await)
    m:apply(ev(6, 5, 1, "cancel"))
    s = by_id(m:snapshot())
    assert.equal("cancelled", s[1].state)
    assert.equal("a.lua:6", s[1].where)
    assert.equal(5, s[1].ended)
  end)

  it("counts a resume in progress up to the snapshot time", function()
    local m = model.new()
    m:apply(ev(1, 0, 1, "spawn", "a.lua:1"))
    m:apply(ev(2, 100, 1, "resume"))
    assert.equal(400, by_id(m:snapshot({ t = 500 }))[1].busy)
    assert.equal(100, by_id(m:snapshot({ t = 200 }))[1].busy)
  end)

  it("ignores events already applied and counts gaps as lost", function()
    local m = model.new()
    m:apply(ev(1, 0, 1, "spawn", "a.lua:1"))
    assert.is_false(m:apply(ev(1, 0, 1, "spawn", "a.lua:1")))
    m:apply(ev(5, 10, 1, "resume"))
    local snap = m:snapshot()
    assert.equal(3, snap.stats.events_lost)
    assert.equal(1, by_id(snap)[1].resumes)
  end)

  it("loads a full snapshot and applies only the events after it", function()
    local m = model.new()
    local snap = fx.snapshot()
    snap.seq = 21
    m:load_snapshot(snap)
    m:apply(fx.events()[14])  -- seq 14: already in the snapshot
    m:apply(ev(22, 110 * MS, 2, "resume", nil, nil, "fs"))
    local got = by_id(m:snapshot({ t = 120 * MS }))
    assert.equal(4, got[2].resumes)
    assert.equal(24 * MS, got[2].busy)
    assert.equal("running", got[2].state)
    assert.equal("main loop", got[1].name)
    assert.equal(snap.resources, m:snapshot().resources)
    assert.equal(snap.warnings, m:snapshot().warnings)
  end)

  it("merges a partial snapshot: only what events cannot tell", function()
    local m = model.new()
    for _, e in ipairs(fx.events()) do m:apply(e) end
    local partial = fx.snapshot()
    partial.tasks[2].busy = 999  -- a derived figure: events win
    partial.tasks[1].last_change = 1  -- another suspension: its wait does not apply
    m:load_snapshot(partial, { full = false })
    local got = by_id(m:snapshot())
    assert.equal(14 * MS, got[2].busy)
    assert.equal("lock:db", got[2].wait)
    assert.equal("flush", got[2].where_fn)
    assert.is_nil(got[1].wait)
    assert.equal("main loop", got[1].name)  -- a made-up name is replaced
    assert.equal("fetcher", got[3].name)
    assert.equal("block", got[5].kind)
    assert.equal(2, #m:snapshot().resources)
  end)

  it("takes protocol messages with feed", function()
    local m = model.new()
    m:feed({ type = "event", seq = 1, t = 5, task = 1, kind = "spawn", loc = "x.lua:1" })
    m:feed({ type = "task", id = 1, name = "worker", kind = "coroutine", t = 5 })
    m:feed({ type = "gap", lost = 7 })
    m:feed({ type = "hello" })
    local snap = m:snapshot()
    assert.equal("worker", snap.tasks[1].name)
    assert.equal(7, snap.stats.events_lost)
  end)

  it("checks its arguments", function()
    local m = model.new()
    assert.has_error(function() model.new(3) end,
      "bad argument #1 to 'new' (table expected, got number)")
    assert.has_error(function() m:apply(nil) end,
      "bad argument #1 to 'apply' (table expected, got no value)")
    assert.has_error(function() m:apply({ t = 1, task = 1, kind = "bogus" }) end,
      "bad argument #1 to 'apply' (event needs t, task and a known kind)")
    assert.has_error(function() m:load_snapshot({}) end,
      "bad argument #1 to 'load_snapshot' (snapshot needs 't' and 'tasks')")
    assert.has_error(function() m:snapshot(1) end,
      "bad argument #1 to 'snapshot' (table expected, got number)")
  end)
end)

-- A longer random-ish stream: 40 tasks, 12000 events, deterministic.
local function long_stream()
  local events, seq, t = {}, 0, 0
  local state = {}
  local x = 12345
  local function rand(n)
    x = (x * 1103515245 + 12345) % 2147483648
    return x % n + 1
  end
  local function add(task, kind, loc, other, detail)
    seq = seq + 1
    t = t + rand(1000)
    events[#events + 1] = ev(seq, t, task, kind, loc, other, detail)
  end
  for id = 1, 40 do
    add(id, "spawn", "gen.lua:" .. id, id > 1 and rand(id - 1) or nil)
    state[id] = "pending"
  end
  while seq < 12000 do
    local id = rand(40)
    if state[id] == "pending" or state[id] == "suspended" then
      add(id, "resume")
      if rand(100) == 1 then
        add(id, "complete")
        state[id] = "done"
      else
        add(id, "yield", "gen.lua:" .. (100 + rand(5)), nil, rand(2) == 1 and "label" or nil)
        state[id] = "suspended"
      end
    end
  end
  return events
end

describe("model.history", function()
  local events = long_stream()
  local h = model.history()
  for _, e in ipairs(events) do h:add({ type = "event", seq = e.seq, t = e.t, task = e.task,
    kind = e.kind, loc = e.loc, other = e.other, detail = e.detail }) end

  local function direct(t)
    local m = model.new()
    for _, e in ipairs(events) do
      if e.t <= t then m:apply(e) end
    end
    return m:snapshot({ t = t })
  end

  it("keeps checkpoints for long recordings", function()
    assert.is_true(#h.checkpoints > 3)
    assert.equal(#events, h:count())
    local first, last = h:range()
    assert.equal(events[1].t, first)
    assert.equal(events[#events].t, last)
  end)

  it("gives the same snapshot at any time as applying the events up to it", function()
    local first, last = h:range()
    for _, frac in ipairs({ 0, 0.013, 0.25, 0.5, 0.77, 0.999, 1 }) do
      local t = math.floor(first + (last - first) * frac)
      assert.same(direct(t).tasks, h:snapshot_at(t).tasks)
    end
  end)

  it("moves a cursor by events and by time, forward and back", function()
    local c = h:cursor()
    assert.equal(events[1].t, c:time())
    assert.same({ 1, #events }, { c:position() })
    c:step(100)
    assert.equal(events[101].t, c:time())
    assert.same(direct(c:time()).tasks, c:snapshot().tasks)
    c:step(-50)
    assert.equal(events[51].t, c:time())
    assert.same(direct(c:time()).tasks, c:snapshot().tasks)
    c:seek(events[9000].t)
    assert.same({ 9000, #events }, { c:position() })
    assert.same(direct(c:time()).tasks, c:snapshot().tasks)
    c:seek(events[3000].t)
    assert.same(direct(c:time()).tasks, c:snapshot().tasks)
    c:last()
    assert.same({ #events, #events }, { c:position() })
    c:step(5)
    assert.same({ #events, #events }, { c:position() })
    c:first()
    c:step(-5)
    assert.same({ 1, #events }, { c:position() })
  end)

  it("includes the events up to the cursor when asked", function()
    local c = h:cursor()
    c:step(9)
    local snap = c:snapshot({ events = true })
    assert.equal(10, #snap.events)
    assert.equal(events[10].seq, snap.events[10].seq)
    assert.is_nil(c:snapshot().events)
  end)

  it("replays snapshots, meta and gaps as recorded", function()
    local hh = model.history()
    local base = fx.snapshot()
    base.seq = 21
    hh:add({ type = "snapshot", full = true, seq = 21, snapshot = base })
    hh:add({ type = "event", seq = 22, t = 110 * MS, task = 6, kind = "spawn", loc = "b.lua:1" })
    hh:add({ type = "task", id = 6, name = "late", kind = "coroutine" })
    hh:add({ type = "gap", from = 23, to = 24, lost = 2, t = 120 * MS })
    hh:add({ type = "event", seq = 25, t = 130 * MS, task = 6, kind = "resume" })
    local at = by_id(hh:snapshot_at(115 * MS))
    assert.equal("late", at[6].name)
    assert.equal("pending", at[6].state)
    assert.equal("worker 1", at[2].name)
    local later = hh:snapshot_at(140 * MS)
    assert.equal("running", by_id(later)[6].state)
    assert.equal(2, later.stats.events_lost)
    assert.equal(0, later.stats.events_dropped)
  end)

  it("checks its arguments", function()
    assert.has_error(function() h:snapshot_at("x") end,
      "bad argument #1 to 'snapshot_at' (number expected, got string)")
    assert.has_error(function() h:cursor():seek(nil) end,
      "bad argument #1 to 'seek' (number expected, got no value)")
  end)
end)

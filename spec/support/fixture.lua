--- Fixture builder for specs: scripts a run of tasks and produces task
-- records, events, stats and snapshots exactly as docs/internals.md defines
-- them, so that views and exports can be tested without the C core.
local M = {}
M.__index = M

--- A new empty recording. `opts.capacity` limits the kept events like the
-- ring buffer does (older ones are dropped and counted).
function M.new(opts)
  opts = opts or {}
  return setmetatable({ tasks = {}, list = {}, events = {}, seq = 0, now = 0,
    capacity = opts.capacity, dropped = 0, running = nil }, M)
end

function M:event(t, task, kind, loc, other, detail)
  assert(t >= self.now, "fixture times must not go backwards")
  self.now = t
  self.seq = self.seq + 1
  self.events[#self.events + 1] = { seq = self.seq, t = t, task = task, kind = kind,
    loc = loc, other = other, detail = detail }
  if self.capacity and #self.events > self.capacity then
    table.remove(self.events, 1)
    self.dropped = self.dropped + 1
  end
end

--- Create a task at time t; returns its id.
function M:spawn(t, name, opts)
  opts = opts or {}
  local id = #self.list + 1
  local rec = { id = id, name = name, parent = opts.parent, state = "pending",
    kind = opts.kind or "coroutine", created = t, created_at = opts.loc,
    last_change = t, resumes = 0, busy = 0 }
  self.list[id] = rec
  self.tasks[id] = rec
  self:event(t, id, "spawn", opts.loc, opts.parent, nil)
  return id
end

function M:resume(t, id, by, wake)
  local rec = self.tasks[id]
  assert(rec.state == "pending" or rec.state == "suspended", "resume of " .. rec.state)
  if by then
    assert(self.tasks[by].state == "running", "resumer must be running")
    self.tasks[by].state = "normal"
  end
  rec.state, rec.last_change = "running", t
  rec.first_resume = rec.first_resume or t
  rec.resumes = rec.resumes + 1
  rec.run_start, rec.resumed_by = t, by
  rec.where, rec.where_fn, rec.await, rec.wait = nil, nil, nil, nil
  self:event(t, id, "resume", nil, by, wake)
end

local function back_to_resumer(self, rec, t)
  local by = rec.resumed_by
  if by and self.tasks[by].state == "normal" then
    self.tasks[by].state = "running"
    self.tasks[by].last_change = t
  end
end

function M:yield(t, id, loc, label, opts)
  local rec = self.tasks[id]
  assert(rec.state == "running")
  rec.busy = rec.busy + (t - rec.run_start)
  rec.state, rec.last_change = "suspended", t
  rec.where, rec.await = loc, label
  rec.where_fn = opts and opts.fn
  rec.wait = opts and opts.wait
  self:event(t, id, "yield", loc, nil, label)
  back_to_resumer(self, rec, t)
end

local function finish(self, t, id, state, kind, detail)
  local rec = self.tasks[id]
  if rec.state == "running" then rec.busy = rec.busy + (t - rec.run_start) end
  local was_running = rec.state == "running"
  rec.state, rec.last_change, rec.ended = state, t, t
  rec.where, rec.where_fn, rec.await, rec.wait = nil, nil, nil, nil
  self:event(t, id, kind, nil, nil, detail)
  if was_running then back_to_resumer(self, rec, t) end
end

function M:complete(t, id) finish(self, t, id, "completed", "complete") end
function M:fail(t, id, err)
  finish(self, t, id, "failed", "fail", err)
  self.tasks[id].error = err
  self.tasks[id].traceback = "stack traceback:\n\t[C]: in function 'error'\n\t" .. err
end
function M:cancel(t, id) finish(self, t, id, "cancelled", "cancel") end
function M:drop(t, id) finish(self, t, id, "dropped", "drop") end

function M:point(t, id, label, detail)
  self:event(t, id, "point", label, nil, detail)
end

function M:rename(t, id, name)
  self.tasks[id].name = name
  self:event(t, id, "name", name, nil, nil)
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  c.run_start, c.resumed_by = nil, nil
  return c
end

function M:task_records()
  local out = {}
  for i, rec in ipairs(self.list) do out[i] = copy(rec) end
  return out
end

function M:stats(t)
  local s = { tasks = #self.list, active = 0, running = 0, suspended = 0, pending = 0,
    completed = 0, failed = 0, cancelled = 0, dropped = 0, events = self.seq,
    events_dropped = self.dropped, evicted = 0, uptime = t or self.now }
  for _, rec in ipairs(self.list) do
    local st = rec.state == "normal" and "running" or rec.state
    if s[st] then s[st] = s[st] + 1 end
    if st == "running" or st == "suspended" or st == "pending" then s.active = s.active + 1 end
  end
  return s
end

--- Snapshot at time t (default: last event time) with the events array.
function M:snapshot(t, with_events)
  t = t or self.now
  local evs
  if with_events ~= false then
    evs = {}
    for i, e in ipairs(self.events) do evs[i] = copy(e) end
  end
  return { t = t, stats = self:stats(t), tasks = self:task_records(), events = evs,
    resources = {}, warnings = {} }
end

--- An export source (see export.source_snapshot) over this recording.
function M:source(t)
  local snap = self:snapshot(t)
  local evs = snap.events
  return { tasks = snap.tasks, stats = snap.stats, t = snap.t, iter_events = function()
    local i = 0
    return function()
      i = i + 1
      local e = evs[i]
      if e then return e.seq, e.t, e.task, e.kind, e.loc, e.other, e.detail end
    end
  end }
end

--- A small but complete scenario: nested spawns and resumes, waits with and
-- without labels, points, a failure, a cancellation, a rename, a task still
-- suspended at the end and one never started.
function M.scenario()
  local f = M.new()
  local main = f:spawn(0, "main loop", { loc = "app.lua:10" })
  f:resume(1000, main)
  local w1 = f:spawn(2000, "worker 1", { parent = main, loc = "app.lua:20" })
  local w2 = f:spawn(2500, "worker;2", { parent = main, loc = "app.lua:20" })
  f:resume(3000, w1, main)
  f:point(3500, w1, "fetch", "url=/a")
  f:yield(5000, w1, "net.lua:42", "http get", { fn = "get", wait = "tcp" })
  f:resume(6000, w2, main)
  f:yield(9000, w2, "timer.lua:7", nil, { fn = "sleep", wait = "timer" })
  f:yield(10000, main, "app.lua:30", "loop tick", { fn = "run" })
  f:resume(20000, w1, nil, "tcp")
  f:rename(21000, w1, "worker 1 (a)")
  f:yield(25000, w1, "net.lua:42", "http get", { fn = "get", wait = "tcp" })
  f:resume(30000, main)
  f:resume(31000, w2, main, "timer")
  f:fail(33000, w2, 'app.lua:55: bad "value" <here> & there')
  local stuck = f:spawn(34000, "stuck <reader>", { parent = main, loc = "app.lua:60" })
  f:resume(35000, stuck, main)
  f:yield(36000, stuck, "chan.lua:9", "recv", { fn = "recv", wait = "lock:queue" })
  f:yield(40000, main, "app.lua:30", "loop tick", { fn = "run" })
  f:resume(50000, w1, nil, "tcp")
  f:complete(60000, w1)
  local idle = f:spawn(61000, "never started", { parent = nil, loc = "app.lua:70" })
  local victim = f:spawn(62000, "victim", { loc = "app.lua:80" })
  f:resume(63000, victim)
  f:yield(64000, victim, "app.lua:81", "sleep", { wait = "timer" })
  f:cancel(70000, victim)
  f:resume(80000, main)
  f:point(85000, main, "checkpoint", nil)
  return f, { main = main, w1 = w1, w2 = w2, stuck = stuck, idle = idle, victim = victim }
end

--- A random but valid run: spawns, nested resumes, yields with and without
-- labels, points, completions, failures, cancellations and drops, with
-- times that sometimes differ by a single nanosecond (edge cases of slice
-- insets and flow placement). Deterministic for a given seed.
function M.random(seed, steps, max_tasks)
  math.randomseed(seed)
  steps, max_tasks = steps or 400, max_tasks or 40
  local f = M.new()
  local t, stack, live, nlive = 0, {}, {}, 0
  local function take_live()
    local ids = {}
    for id in pairs(live) do ids[#ids + 1] = id end
    table.sort(ids)
    local id = ids[math.random(#ids)]
    live[id] = nil
    nlive = nlive - 1
    return id
  end
  local labels = { nil, "sleep", "recv", "http get", "lock" }
  local function spawn(top)
    local id = f:spawn(t, "task " .. (#f.list + 1), { parent = top, loc = "gen.lua:" .. math.random(1, 9) })
    live[id] = true
    nlive = nlive + 1
  end
  local function resume(top)
    local id = take_live()
    f:resume(t, id, top, math.random() < 0.5 and "timer" or nil)
    stack[#stack + 1] = id
  end
  for _ = 1, steps do
    t = t + (math.random() < 0.2 and 1 or math.random(1, 5000))
    local top = stack[#stack]
    local r = math.random()
    local can_spawn = #f.list < max_tasks
    if not top then
      -- The main thread: start tasks, resume them, sometimes cancel one.
      if (r < 0.3 or nlive == 0) and can_spawn then spawn(nil)
      elseif r < 0.96 and nlive > 0 then resume(nil)
      elseif nlive > 0 then
        local id = take_live()
        if math.random() < 0.5 then f:cancel(t, id) else f:drop(t, id) end
      end
    elseif r < 0.1 and can_spawn then spawn(top)
    elseif r < 0.3 and nlive > 0 then resume(top)
    elseif r < 0.8 then
      f:yield(t, top, "gen.lua:" .. math.random(10, 19), labels[math.random(1, 5)])
      stack[#stack] = nil
      live[top] = true
      nlive = nlive + 1
    elseif r < 0.88 then
      f:point(t, top, "p" .. math.random(1, 3), math.random() < 0.5 and "d" or nil)
    else
      if math.random() < 0.3 then f:fail(t, top, "boom " .. top) else f:complete(t, top) end
      stack[#stack] = nil
    end
  end
  return f, t + 1000
end

return M

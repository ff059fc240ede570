--- Rebuild snapshots from an event stream, so the remote console and replay draw the same
-- views as the live dashboard.
--
-- A model holds task records (the fields of docs/internals.md) and applies events to them
-- as the C core does: `spawn` creates a pending task, `resume` makes it running (and its
-- resumer `normal`, without changing the resumer's `last_change`) and clears its yield
-- site, `yield` suspends it at `loc` with the await label `detail` (kept until the next
-- yield), `complete`/`fail`/`cancel`/`drop` end it, `name` renames it. Busy time is the
-- time between a resume and the next yield or end of the same task, nested resumes
-- included; a task running at the snapshot time counts up to it.
-- What events cannot tell (default names, kind, `wait`, `where_fn`, resources, warnings)
-- comes from task meta messages and snapshots loaded into the model.
--
-- A history keeps a whole recording and gives a cursor that moves over time.
-- @module async_inspect.model

local M = {}

local check = function(v, tname, n, fname, optional)
  if v == nil and optional then return v end
  if type(v) ~= tname then
    error(string.format("bad argument #%d to '%s' (%s expected, got %s)", n, fname, tname,
      v == nil and "no value" or type(v)), 3)
  end
  return v
end

local FINAL = { complete = "completed", fail = "failed", cancel = "cancelled", drop = "dropped" }
local KINDS = {
  spawn = true, resume = true, yield = true, complete = true, fail = true, cancel = true,
  drop = true, point = true, name = true,
}
-- Fields a snapshot knows better than the events (merged by partial snapshots).
local FROM_SNAPSHOT = { "kind", "where_fn", "wait", "error", "traceback", "created_at" }

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

local Model = {}
Model.__index = Model

--- Create an empty model.
-- @tparam[opt] table opts `max_events` (events kept for `snapshot{events=true}`, default
-- 100000; 0 keeps none)
-- @treturn table model
-- @usage local m = model.new(); m:apply(ev); local snap = m:snapshot{events=true}
function M.new(opts)
  check(opts, "table", 1, "new", true)
  opts = opts or {}
  local self = setmetatable({
    tasks = {},        -- id -> task record
    since = {},        -- id -> time of the resume in progress
    resumed_by = {},   -- id -> task that resumed it (set to `normal` meanwhile)
    named = {},        -- id -> true once a `name` event renamed it
    guessed = {},  -- id -> true while the name is made up (spawn event not seen yet)
    t = 0, seq = 0, lost = 0, count = 0,
    base_stats = {}, resources = nil, warnings = nil, deadlocks = nil,
    max_events = opts.max_events or 100000,
    ev = {}, ev_first = 1, ev_last = 0,
  }, Model)
  return self
end

local function task_of(self, id, t)
  local rec = self.tasks[id]
  if not rec then
    -- an event for a task created before the model started: keep what we can
    rec = { id = id, name = "task " .. tostring(id), state = "pending", kind = "coroutine",
      created = nil, last_change = t, resumes = 0, busy = 0 }
    self.tasks[id] = rec
    self.count = self.count + 1
    self.guessed[id] = true
  end
  return rec
end

local function stop_running(self, rec, t)
  local since = self.since[rec.id]
  if since then
    rec.busy = (rec.busy or 0) + (t - since)
    self.since[rec.id] = nil
  end
  local by = self.resumed_by[rec.id]
  if by then
    -- back to running; like the core, this is not a change of `last_change`
    self.resumed_by[rec.id] = nil
    local r = self.tasks[by]
    if r and r.state == "normal" then r.state = "running" end
  end
end

local function push_event(self, ev)
  if self.max_events <= 0 then return end
  self.ev_last = self.ev_last + 1
  self.ev[self.ev_last] = ev
  if self.ev_last - self.ev_first + 1 > self.max_events then
    self.ev[self.ev_first] = nil
    self.ev_first = self.ev_first + 1
  end
end

local APPLY = {}

function APPLY.spawn(self, e)
  local rec = self.tasks[e.task]
  if not rec then self.count = self.count + 1 end
  if not rec or self.guessed[e.task] then
    rec = { id = e.task, name = rec and rec.name or ("task " .. tostring(e.task)),
      kind = rec and rec.kind or "coroutine" }
    self.tasks[e.task] = rec
    self.guessed[e.task] = true
  end
  rec.parent = (e.other ~= 0) and e.other or nil
  rec.state = "pending"
  rec.created = e.t
  rec.created_at = e.loc
  rec.last_change = e.t
  rec.resumes = 0
  rec.busy = 0
end

function APPLY.resume(self, e)
  local rec = task_of(self, e.task, e.t)
  rec.state = "running"
  rec.resumes = (rec.resumes or 0) + 1
  rec.first_resume = rec.first_resume or e.t
  rec.last_change = e.t
  -- the await label stays until the next yield; the yield site and the wait end here
  rec.where, rec.where_fn, rec.wait = nil, nil, nil
  self.since[e.task] = e.t
  local by = e.other
  if by and by ~= 0 and by ~= e.task then
    local r = self.tasks[by]
    if r and r.state == "running" then
      r.state = "normal"
      self.resumed_by[e.task] = by
    end
  end
end

function APPLY.yield(self, e)
  local rec = task_of(self, e.task, e.t)
  stop_running(self, rec, e.t)
  rec.state = "suspended"
  rec.last_change = e.t
  rec.where = e.loc
  rec.where_fn = nil
  rec.await = e.detail
  rec.wait = nil
end

local function finish(self, e)
  local rec = task_of(self, e.task, e.t)
  stop_running(self, rec, e.t)
  rec.state = FINAL[e.kind]
  rec.ended = e.t
  rec.last_change = e.t
  -- a task cancelled while suspended keeps its yield site and await label
  rec.wait = nil
  if e.kind == "fail" then rec.error = e.detail end
end
APPLY.complete, APPLY.fail, APPLY.cancel, APPLY.drop = finish, finish, finish, finish

function APPLY.point() end

function APPLY.name(self, e)
  local rec = task_of(self, e.task, e.t)
  rec.name = e.loc
  self.named[e.task] = true
  self.guessed[e.task] = nil
end

--- Apply one event (a table with `seq, t, task, kind, loc, other, detail`). Events with a
-- `seq` not above the last applied one are ignored (already contained in a loaded
-- snapshot); a jump in `seq` is counted as lost events.
-- @tparam table ev event
-- @treturn boolean whether it was applied
function Model:apply(ev)
  check(ev, "table", 1, "apply")
  if type(ev.t) ~= "number" or type(ev.task) ~= "number" or not KINDS[ev.kind] then
    error("bad argument #1 to 'apply' (event needs t, task and a known kind)", 2)
  end
  local seq = ev.seq
  if seq then
    if seq <= self.seq then return false end
    if self.seq > 0 and seq > self.seq + 1 then self.lost = self.lost + (seq - self.seq - 1) end
    self.seq = seq
  end
  if ev.t > self.t then self.t = ev.t end
  push_event(self, ev)
  APPLY[ev.kind](self, ev)
  return true
end

--- Apply one event given as the values of an `ai.iter_events()` row.
-- @tparam integer seq
-- @tparam integer t
-- @tparam integer task
-- @tparam string kind
-- @param loc
-- @param other
-- @param detail
-- @treturn boolean whether it was applied
function Model:apply_row(seq, t, task, kind, loc, other, detail)
  return self:apply({ seq = seq, t = t, task = task, kind = kind, loc = loc, other = other,
    detail = detail })
end

--- Apply task meta data (what a `spawn` event does not carry): `{id=, name=, kind=,
-- parent=, created_at=}`. A name given by a `name` event is kept.
-- @tparam table meta
function Model:apply_meta(meta)
  check(meta, "table", 1, "apply_meta")
  check(meta.id, "number", 1, "apply_meta")
  local rec = self.tasks[meta.id]
  if not rec then return end
  if meta.name and not self.named[meta.id] then
    rec.name = meta.name
    self.guessed[meta.id] = nil
  end
  if meta.kind then rec.kind = meta.kind end
  if meta["function"] then rec["function"] = meta["function"] end
  if meta.created_at and not rec.created_at then rec.created_at = meta.created_at end
  if meta.parent and meta.parent ~= 0 and not rec.parent then rec.parent = meta.parent end
end

local function merge_task(self, rec, snap_task)
  if self.guessed[rec.id] and snap_task.name and not self.named[rec.id] then
    rec.name = snap_task.name
    self.guessed[rec.id] = nil
  end
  -- fields that belong to a state (wait, where_fn) only while it is the same state
  local same = rec.state == snap_task.state and rec.last_change == snap_task.last_change
  for _, k in ipairs(FROM_SNAPSHOT) do
    local v = snap_task[k]
    if v ~= nil and (same or (k ~= "wait" and k ~= "where_fn")) then rec[k] = v end
  end
end

--- Load a snapshot. A full load replaces every task record (the snapshot is the truth at
-- its time); a partial load (`full=false`) adds unknown tasks and merges, for known ones,
-- what events cannot tell (`kind`, `wait`, `where_fn`, `error`, `traceback`, default
-- names). Both take the snapshot's stats, resources, warnings and deadlocks.
-- @tparam table snap snapshot (`t`, `tasks`, ...)
-- @tparam[opt] table opts `full` (default true), `seq` (last event contained, default
-- `snap.seq`): later events with a seq up to it are ignored
function Model:load_snapshot(snap, opts)
  check(snap, "table", 1, "load_snapshot")
  check(opts, "table", 2, "load_snapshot", true)
  if type(snap.tasks) ~= "table" or type(snap.t) ~= "number" then
    error("bad argument #1 to 'load_snapshot' (snapshot needs 't' and 'tasks')", 2)
  end
  opts = opts or {}
  local full = opts.full ~= false
  if full then
    self.tasks, self.since, self.resumed_by, self.named, self.guessed = {}, {}, {}, {}, {}
    for _, st in ipairs(snap.tasks) do
      local rec = copy(st)
      self.tasks[rec.id] = rec
      -- the snapshot counted a resume in progress up to its own time
      if rec.state == "running" then self.since[rec.id] = snap.t end
    end
    self.count = #snap.tasks
  else
    for _, st in ipairs(snap.tasks) do
      local rec = self.tasks[st.id]
      if rec then
        merge_task(self, rec, st)
      else
        self.tasks[st.id] = copy(st)
        self.count = self.count + 1
      end
    end
  end
  if type(snap.events) == "table" then
    -- keep the snapshot's events for the views (they are already in the figures)
    local last = self.ev[self.ev_last]
    local last_seq = last and last.seq or 0
    for _, e in ipairs(snap.events) do
      if not e.seq or e.seq > last_seq then push_event(self, e) end
    end
  end
  local seq = opts.seq or snap.seq
  if seq and seq > self.seq then self.seq = seq end
  if snap.t > self.t then self.t = snap.t end
  if type(snap.stats) == "table" then self.base_stats = snap.stats end
  self.resources, self.warnings, self.deadlocks = snap.resources, snap.warnings, snap.deadlocks
end

--- Count a gap of lost events (the source overwrote them before they were read).
-- @tparam integer n number of events lost
-- @tparam[opt] integer to seq of the last event lost: the next event is not a gap again
function Model:lose(n, to)
  check(n, "number", 1, "lose")
  check(to, "number", 2, "lose", true)
  self.lost = self.lost + n
  if to and to > self.seq then self.seq = to end
end

--- The events kept by the model, oldest first (a new array).
-- @treturn {table,...}
function Model:events()
  return table.move(self.ev, self.ev_first, self.ev_last, 1, {})
end

local STAT_KEYS = { "running", "suspended", "pending", "completed", "failed", "cancelled",
  "dropped" }

--- Build a snapshot at time `t` in the format of `ai.snapshot()`.
-- @tparam[opt] table opts `t` (default: the latest time seen), `events` (include the
-- kept events)
-- @treturn table snapshot `{t=, seq=, stats=, tasks=, events=, resources=, warnings=, deadlocks=}`
function Model:snapshot(opts)
  check(opts, "table", 1, "snapshot", true)
  opts = opts or {}
  local t = opts.t or self.t
  local list, counts, active = {}, {}, 0
  for id, rec in pairs(self.tasks) do
    local c = copy(rec)
    local since = self.since[id]
    if since and t > since then c.busy = (c.busy or 0) + (t - since) end
    list[#list + 1] = c
    counts[c.state] = (counts[c.state] or 0) + 1
    if c.state ~= "completed" and c.state ~= "failed" and c.state ~= "cancelled"
      and c.state ~= "dropped" then
      active = active + 1
    end
  end
  table.sort(list, function(a, b) return a.id < b.id end)
  local base = self.base_stats
  -- events_dropped is the source's count (ring overwrites, from its last snapshot);
  -- events_lost counts the events missing from the stream this model read
  local stats = {
    tasks = #list, active = active, events = self.seq,
    events_dropped = base.events_dropped or 0, events_lost = self.lost,
    evicted = base.evicted or 0, uptime = t,
  }
  for _, k in ipairs(STAT_KEYS) do stats[k] = counts[k] or 0 end
  return {
    t = t, seq = self.seq, stats = stats, tasks = list,
    events = opts.events and self:events() or nil,
    resources = self.resources, warnings = self.warnings, deadlocks = self.deadlocks,
  }
end

--- Copy the model (checkpoints of a history).
-- @treturn table an independent model in the same state (events are shared, not copied)
function Model:clone()
  local c = setmetatable(copy(self), Model)
  c.tasks = {}
  for id, rec in pairs(self.tasks) do c.tasks[id] = copy(rec) end
  c.since, c.resumed_by = copy(self.since), copy(self.resumed_by)
  c.named, c.guessed = copy(self.named), copy(self.guessed)
  c.ev = copy(self.ev)
  return c
end

--- Apply one protocol/recording message: `{type="event", ...}`, `{type="task", ...}` (meta),
-- `{type="snapshot", snapshot=, full=, seq=}` or `{type="gap", lost=}`; other types are
-- ignored.
-- @tparam table msg
function Model:feed(msg)
  check(msg, "table", 1, "feed")
  local ty = msg.type
  if ty == "event" then
    self:apply(msg)
  elseif ty == "task" then
    self:apply_meta(msg)
  elseif ty == "snapshot" then
    self:load_snapshot(msg.snapshot, { full = msg.full ~= false, seq = msg.seq })
  elseif ty == "gap" then
    self:lose(msg.lost or 0, msg.to)
  end
end

M.Model = Model

-- History and cursor --------------------------------------------------------------------

local History = {}
History.__index = History

--- Create a history: every message of a recording, with checkpoints, for replay at any
-- time.
-- @tparam[opt] table opts `max_events` (events in a replayed snapshot, default 100000)
-- @treturn table history with `add`, `snapshot_at`, `cursor`, `range`
-- @usage local h = model.history(); for _, msg in ipairs(msgs) do h:add(msg) end
-- local snap = h:snapshot_at(2e9)
function M.history(opts)
  check(opts, "table", 1, "history", true)
  opts = opts or {}
  local self = setmetatable({
    entries = {},       -- messages in order, each with `t`
    event_index = {},   -- positions (in entries) of the event messages
    checkpoints = {},   -- {pos=, model=}
    max_events = opts.max_events or 100000,
    since_checkpoint = 0,
  }, History)
  -- the building model is never asked for events: checkpoints must stay small
  self.building = M.new({ max_events = 0 })
  self.checkpoints[1] = { pos = 0, model = self.building:clone() }
  return self
end

--- Add one message (see `Model:feed`). Messages must come in time order; a message
-- without `t` takes the time of the previous one.
-- @tparam table msg
function History:add(msg)
  check(msg, "table", 1, "add")
  local entries = self.entries
  local prev = entries[#entries]
  local t = msg.t
  if msg.type == "snapshot" and type(msg.snapshot) == "table" then t = msg.snapshot.t end
  if type(t) ~= "number" then t = prev and prev.t or 0 end
  if prev and t < prev.t then t = prev.t end
  entries[#entries + 1] = { t = t, msg = msg }
  if msg.type == "event" then self.event_index[#self.event_index + 1] = #entries end
  self.building:feed(msg)
  self.since_checkpoint = self.since_checkpoint + 1
  -- checkpoint cost is proportional to the tasks: space them so they stay a fraction
  if self.since_checkpoint >= math.max(2048, 4 * self.building.count) then
    self.checkpoints[#self.checkpoints + 1] = { pos = #entries, model = self.building:clone() }
    self.since_checkpoint = 0
  end
end

--- Time of the first and last message.
-- @treturn integer first time (0 when empty)
-- @treturn integer last time
function History:range()
  local e = self.entries
  if #e == 0 then return 0, 0 end
  return e[1].t, e[#e].t
end

--- Number of event messages.
-- @treturn integer
function History:count()
  return #self.event_index
end

-- Last position whose entry time is <= t (0 when none).
local function pos_at(self, t)
  local e = self.entries
  local lo, hi = 0, #e
  while lo < hi do
    local mid = (lo + hi + 1) // 2
    if e[mid].t <= t then lo = mid else hi = mid - 1 end
  end
  return lo
end

-- Model state after applying entries 1..pos, reusing `m` at `from` when it is on the way.
local function model_at(self, pos, m, from)
  if not m or from > pos or pos - from > 4096 then
    local cps = self.checkpoints
    local lo, hi = 1, #cps
    while lo < hi do
      local mid = (lo + hi + 1) // 2
      if cps[mid].pos <= pos then lo = mid else hi = mid - 1 end
    end
    if not m or from > pos or cps[lo].pos > from then
      m, from = cps[lo].model:clone(), cps[lo].pos
    end
  end
  local e = self.entries
  for i = from + 1, pos do m:feed(e[i].msg) end
  return m
end

-- The events with time <= t, at most max_events of them (a new array of the messages).
local function events_until(self, t)
  local idx, e = self.event_index, self.entries
  local lo, hi = 0, #idx
  while lo < hi do
    local mid = (lo + hi + 1) // 2
    if e[idx[mid]].t <= t then lo = mid else hi = mid - 1 end
  end
  local out = {}
  for i = math.max(1, lo - self.max_events + 1), lo do out[#out + 1] = e[idx[i]].msg end
  return out
end

--- Snapshot at time `t`: the state after every message up to `t`, in the format of
-- `ai.snapshot()`.
-- @tparam integer t
-- @tparam[opt] table opts `events` (include the events up to `t`)
-- @treturn table snapshot
function History:snapshot_at(t, opts)
  check(t, "number", 1, "snapshot_at")
  check(opts, "table", 2, "snapshot_at", true)
  local m = model_at(self, pos_at(self, t))
  local snap = m:snapshot({ t = t })
  if opts and opts.events then snap.events = events_until(self, t) end
  return snap
end

local Cursor = {}
Cursor.__index = Cursor

--- A time cursor over the history, at the first message.
-- @treturn table cursor with `time`, `seek`, `step`, `first`, `last`, `snapshot`, `position`
-- @usage local c = h:cursor(); c:step(10); local snap = c:snapshot()
function History:cursor()
  local c = setmetatable({ history = self, pos = 0, t = 0, model = nil }, Cursor)
  c:first()
  return c
end

--- Current time of the cursor.
-- @treturn integer
function Cursor:time()
  return self.t
end

--- Move to time `t` (clamped to the recording).
-- @tparam integer t
-- @treturn integer the new time
function Cursor:seek(t)
  check(t, "number", 1, "seek")
  local h = self.history
  local first, last = h:range()
  t = math.max(first, math.min(last, t))
  local pos = pos_at(h, t)
  self.model = model_at(h, pos, self.model, self.pos)
  self.pos, self.t = pos, t
  return t
end

--- Move by `n` events (negative: back); the cursor lands on the time of that event.
-- @tparam integer n
-- @treturn integer the new time
function Cursor:step(n)
  check(n, "number", 1, "step")
  local h = self.history
  local idx, e = h.event_index, h.entries
  if #idx == 0 then return self.t end
  -- index (in event_index) of the last event at or before the cursor
  local lo, hi = 0, #idx
  while lo < hi do
    local mid = (lo + hi + 1) // 2
    if idx[mid] <= self.pos then lo = mid else hi = mid - 1 end
  end
  local k = math.max(1, math.min(#idx, lo + n))
  local t = e[idx[k]].t
  -- take every message up to the next event (task meta and snapshots belong to this one)
  local pos = (idx[k + 1] or (#e + 1)) - 1
  while pos > idx[k] and e[pos].t > t do pos = pos - 1 end
  self.model = model_at(h, pos, self.model, self.pos)
  self.pos, self.t = pos, t
  return t
end

--- Move to the start of the recording.
-- @treturn integer the new time
function Cursor:first()
  local first = self.history:range()
  return self:seek(first)
end

--- Move to the end of the recording.
-- @treturn integer the new time
function Cursor:last()
  local _, last = self.history:range()
  return self:seek(last)
end

--- Number of events at or before the cursor, and in all.
-- @treturn integer
-- @treturn integer
function Cursor:position()
  local h = self.history
  local idx = h.event_index
  local lo, hi = 0, #idx
  while lo < hi do
    local mid = (lo + hi + 1) // 2
    if idx[mid] <= self.pos then lo = mid else hi = mid - 1 end
  end
  return lo, #idx
end

--- Snapshot at the cursor.
-- @tparam[opt] table opts `events` (include the events up to the cursor)
-- @treturn table snapshot
function Cursor:snapshot(opts)
  check(opts, "table", 1, "snapshot", true)
  local snap = self.model:snapshot({ t = self.t })
  if opts and opts.events then snap.events = events_until(self.history, self.t) end
  return snap
end

M.History, M.Cursor = History, Cursor

return M

--- Performance profiling (`ai.profile`): where the time goes, latency percentiles, long
-- polls that block the loop, lints with recommendations, and run comparison.
--
-- Figures come from three places, each used for what it knows exactly:
--
-- * task records: busy time (inside resume), wall time, resume counts. A finished task's
--   wall time is `ended - created`, fixed forever; only a live task's grows (its age).
-- * the event timeline: each resume paired with the yield or end that follows it (a poll)
--   and each yield with the resume that follows it (a wait, charged to the await point of
--   that yield). When the ring overflowed, these cover the events still held.
-- * the C core: `core.resume_hist()` (every resume ever, independent of the ring) and
--   `core.long_polls()` (the last 64 resumes longer than `long_poll_ms`, with where they
--   yielded, kept even when locations are off or the ring overflowed).
--
-- Distributions use the core's log-linear histograms (`core.hist()`: fixed memory,
-- mergeable, under 1% relative error). See docs/profiling.md.
-- @module async_inspect.profile
-- @usage
-- local ai = require "async_inspect"
-- ... run the workload ...
-- ai.profile.print_report()
-- ai.profile.save("run-a.json")
-- print(table.concat(ai.profile.compare("run-a.json", "run-b.json").lines, "\n"))

local ai = require("async_inspect")
local core = require("async_inspect.core")
local view = require("async_inspect.views.profile")
local vutil = require("async_inspect.views.util")

local M = {}

--- Format name of saved profiles.
M.FORMAT = "async_inspect.profile"
--- Version of the saved format; `load` accepts this version and older.
M.VERSION = 1

local floor, max, min = math.floor, math.max, math.min
local format, concat, sort = string.format, table.concat, table.sort
local duration = vutil.duration

local MS = 1000000 -- ns

--- Lint thresholds and their defaults. `long_poll_ms` comes from the C core (set with
-- `ai.configure{long_poll_ms=}`); the others from `ai.settings()` when set there, and
-- every one can be overridden per call through `opts`.
M.DEFAULTS = {
  long_poll_ms = 10,       -- a single resume longer than this blocks the loop
  never_yield_ms = 1000,   -- a single resume this long is an error: the task never yields
  busy_wait_resumes = 1000, -- resumes without waiting on anything before busy_wait fires
  busy_wait_gap_ms = 1,    -- "without waiting": suspended less than this on average
  churn_per_second = 10000, -- tasks of one name created within any one second
  slow_callback_ms = 10,   -- luv callbacks longer than this (from the luv helper)
  stuck_ms = 10000,        -- suspended (or never started) this long with nothing resuming it
}

-- the quantiles of the curve of every summary (the sparkline of its shape)
local CURVE = { 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1 }

--- The quantiles of the `curve` of every summary (the sparkline of its shape).
M.CURVE = CURVE

-- argument checks --------------------------------------------------------------------------

-- raise at the caller of the public function: `depth` is 1 when called from it directly,
-- 2 from a helper it called
local function arg_error(n, fname, msg, depth)
  error(format("bad argument #%d to '%s' (%s)", n, fname, msg), 2 + (depth or 1))
end

local function check_opts(opts, n, fname)
  if opts ~= nil and type(opts) ~= "table" then
    arg_error(n, fname, "table expected, got " .. type(opts), 2)
  end
  opts = opts or {}
  for key in pairs(M.DEFAULTS) do
    local v = opts[key]
    if v ~= nil and (type(v) ~= "number" or v < 0) then
      arg_error(n, fname, format("option '%s' must be a number >= 0", key), 2)
    end
  end
  for _, key in ipairs({ "top", "hist_groups" }) do
    local v = opts[key]
    if v ~= nil and (math.type(v) ~= "integer" or v < 1) then
      arg_error(n, fname, format("option '%s' must be a positive integer", key), 2)
    end
  end
  return opts
end

local function check_snapshot(snap, n, fname)
  if type(snap) ~= "table" or type(snap.t) ~= "number" or type(snap.tasks) ~= "table" then
    arg_error(n, fname, "snapshot expected (a table with 't' and 'tasks'), got "
      .. (type(snap) == "table" and "another table" or type(snap)), 2)
  end
  return snap
end

-- thresholds -----------------------------------------------------------------------------

--- The thresholds in force: defaults, then `ai.settings()`, then `opts`.
-- @tparam[opt] table opts overrides, keys of `DEFAULTS`
-- @treturn table thresholds in milliseconds (and counts)
-- @usage local th = ai.profile.thresholds{long_poll_ms = 5}
function M.thresholds(opts)
  opts = check_opts(opts, 1, "thresholds")
  local th, settings = {}, ai.settings()
  for k, v in pairs(M.DEFAULTS) do th[k] = type(settings[k]) == "number" and settings[k] or v end
  if type(settings.long_poll_ns) == "number" then th.long_poll_ms = settings.long_poll_ns / MS end
  for k in pairs(M.DEFAULTS) do
    if opts[k] ~= nil then th[k] = opts[k] end
  end
  return th
end

-- distributions ----------------------------------------------------------------------------

--- Summary of a histogram: count, min, max, mean, p50, p90, p99, p999 and `curve` (the
-- values at the quantiles of `CURVE`), or nil when it is empty.
-- @param h a `core.hist()` histogram
-- @treturn table|nil
function M.summarize(h)
  if type(h) ~= "userdata" or type(h.summary) ~= "function" then
    arg_error(1, "summarize", "histogram expected, got " .. type(h))
  end
  local s = h:summary()
  if s.count == 0 then return nil end
  local curve = {}
  for i, q in ipairs(CURVE) do curve[i] = h:quantile(q) end
  s.curve = curve
  return s
end

local function record(h, v)
  h:record(max(0, floor(v)))
end

-- per-task times from a record ---------------------------------------------------------------

--- Times of one task record at snapshot time `now`, in ns.
-- Wall time runs from creation to the end: for a finished task `ended - created`, never its
-- age at report time; for a live task its age so far. It splits exactly into pending (before
-- the first resume), busy (inside resume, including tasks it resumed itself) and suspended.
-- @tparam table rec a task record
-- @tparam integer now snapshot time
-- @treturn table `{wall=, busy=, suspended=, pending=, live=bool}`
-- @usage local t = ai.profile.task_times(ai.task_info(co), ai.now())
function M.task_times(rec, now)
  if type(rec) ~= "table" then arg_error(1, "task_times", "task record expected") end
  if type(now) ~= "number" then arg_error(2, "task_times", "number expected, got " .. type(now)) end
  local created = rec.created or 0
  local live = rec.ended == nil
  local wall = max(0, (rec.ended or now) - created)
  local pending = rec.first_resume and min(wall, max(0, rec.first_resume - created)) or wall
  local busy = min(rec.busy or 0, wall - pending)
  return { wall = wall, busy = busy, suspended = max(0, wall - pending - busy),
           pending = pending, live = live }
end

local FINISHED = { completed = true, failed = true, cancelled = true, dropped = true }

-- events ---------------------------------------------------------------------------------

local function array_events(events)
  return function()
    local i = 0
    return function()
      i = i + 1
      local e = events[i]
      if e then return e.seq, e.t, e.task, e.kind, e.loc, e.other, e.detail end
    end
  end
end

-- Walk the events once, pairing each resume with the yield or end that follows it (a poll)
-- and each yield with the resume, cancel or drop that follows it (a wait). `cb.poll(task,
-- t0, t1, resumer, wake, ended, loc, label)`, `cb.wait(task, t0, t1, loc, label, wake,
-- interleaved, resumer)` where interleaved says other tasks were resumed meanwhile,
-- `cb.open(task, t0, loc, label)` for waits still going on at the end, `cb.name(task, name)`.
local function walk(iter, cb)
  local run_t, run_by, run_wake = {}, {}, {}
  local y_t, y_loc, y_label, y_mark = {}, {}, {}, {}
  local resumes = 0
  for _, t, task, kind, loc, other, detail in iter do
    if kind == "resume" then
      local t0 = y_t[task]
      if t0 then
        cb.wait(task, t0, t, y_loc[task], y_label[task], detail, resumes > y_mark[task],
          other or 0)
        y_t[task] = nil
      end
      resumes = resumes + 1
      run_t[task], run_by[task], run_wake[task] = t, other or 0, detail
    elseif kind == "yield" or kind == "complete" or kind == "fail" then
      local t0 = run_t[task]
      if t0 then
        cb.poll(task, t0, t, run_by[task], run_wake[task], kind, loc,
          kind == "yield" and detail or nil)
        run_t[task] = nil
      end
      if kind == "yield" then
        y_t[task], y_loc[task], y_label[task], y_mark[task] = t, loc, detail, resumes
      else
        y_t[task] = nil
      end
    elseif kind == "cancel" or kind == "drop" then
      local t0 = y_t[task]
      if t0 then
        cb.wait(task, t0, t, y_loc[task], y_label[task], kind, true)
        y_t[task] = nil
      end
      run_t[task] = nil
    elseif kind == "name" and cb.name then
      cb.name(task, loc)
    end
  end
  if cb.open then
    for task, t0 in pairs(y_t) do cb.open(task, t0, y_loc[task], y_label[task]) end
  end
end

local function point_key(label, loc)
  return (label or "") .. "\0" .. (loc or "?")
end

--- Display name of an await point: its label and where it is.
-- @tparam table p a point `{label=, loc=}`
-- @treturn string
function M.point_name(p)
  if type(p) ~= "table" then arg_error(1, "point_name", "table expected, got " .. type(p)) end
  if p.label and p.loc then return p.label .. " @ " .. p.loc end
  return p.label or p.loc or "?"
end

-- the end of a poll that did not yield: charged to a pseudo point at the task's function
local function end_point(ended, fn)
  return ended == "fail" and "(raised)" or "(returned)", fn
end

-- the await point of a label and a location, created on first use; indexed by label then
-- location so the hot loop builds no key strings
local function point_of(ctx, label, loc)
  local by_loc = ctx.point_idx[label or ""]
  if by_loc == nil then
    by_loc = {}
    ctx.point_idx[label or ""] = by_loc
  end
  local p = by_loc[loc or "?"]
  if p == nil then
    local key = point_key(label, loc)
    p = { key = key, label = label, loc = loc, waits = 0, wait = 0, wait_max = 0, open = 0,
          open_wait = 0, busy = 0, polls = 0, wakes = {} }
    by_loc[loc or "?"] = p
    ctx.points[key] = p
  end
  return p
end

-- Distributions per group (task name, await point) are recorded in the first pass for the
-- first HIST_GROUPS groups met; a top group met later gets a second pass of its own.
local HIST_GROUPS = 64

local function new_hist(ctx, group)
  if ctx.hists >= ctx.hist_cap then return nil end
  ctx.hists = ctx.hists + 1
  group.hist = core.hist()
  return group.hist
end

-- first pass: totals per task (in columns indexed by task id: no table per task), per name,
-- per await point; the polls over the threshold
local function first_pass(ctx, iter)
  local names = ctx.names
  local polls, poll_max, poll_max_loc = ctx.polls, ctx.poll_max, ctx.poll_max_loc
  local nested, last_wake, idle = ctx.nested, ctx.last_wake, ctx.idle
  local long_ns = ctx.th.long_poll_ms * MS
  local poll_hist, name_of = ctx.poll_hist, ctx.name_of
  walk(iter, {
    poll = function(task, t0, t1, by, wake, ended, loc, label)
      local d = t1 - t0
      polls[task] = (polls[task] or 0) + 1
      if d > (poll_max[task] or -1) then poll_max[task], poll_max_loc[task] = d, loc end
      local s = idle[task]
      if s and s.now then s.busy, s.now = s.busy + d, false end
      last_wake[task] = wake
      if by ~= 0 then nested[by] = (nested[by] or 0) + d end
      local name = name_of(task)
      local g = names[name]
      if g then
        g.polls = g.polls + 1
        if d > g.poll_max then g.poll_max = d end
        local h = g.hist or new_hist(ctx, g)
        if h then h:record(d) end
      end
      local plabel, ploc = label, loc
      if ended ~= "yield" then plabel, ploc = end_point(ended, ctx.fn_of(task)) end
      local p = point_of(ctx, plabel, ploc)
      p.busy, p.polls = p.busy + d, p.polls + 1
      if poll_hist then poll_hist:record(d) end
      if d > long_ns then
        local lp = ctx.long_polls
        lp[#lp + 1] = { task = task, name = name, t = t0, duration = d, loc = loc,
                        label = label, ended = ended }
      end
    end,
    wait = function(task, t0, t1, loc, label, wake, interleaved, by)
      local d = t1 - t0
      local p = point_of(ctx, label, loc)
      p.waits, p.wait = p.waits + 1, p.wait + d
      if d > p.wait_max then p.wait_max = d end
      local h = p.hist or new_hist(ctx, p)
      if h then h:record(d) end
      if wake then p.wakes[wake] = (p.wakes[wake] or 0) + 1 end
      -- an idle resume: nothing announced (no label) and nothing woke it (no wake kind)
      if label == nil and wake == nil then
        local s = idle[task]
        if s == nil then
          s = { n = 0, gap = 0, busy = 0, inter = 0, resumers = {} }
          idle[task] = s
        end
        s.n, s.gap = s.n + 1, s.gap + d
        if interleaved then s.inter = s.inter + 1 end
        s.resumers[by] = (s.resumers[by] or 0) + 1
        s.loc, s.now = loc, true -- the poll that follows is an idle one
      end
    end,
    open = function(_, t0, loc, label)
      local p = point_of(ctx, label, loc)
      p.open, p.open_wait = p.open + 1, p.open_wait + max(0, ctx.now - t0)
    end,
    name = function(task, name) ctx.event_names[task] = name end,
  })
end

-- second pass: distributions of the top groups the first pass had no histogram for
local function second_pass(ctx, iter)
  local names, name_of, point_idx = ctx.names, ctx.name_of, ctx.point_idx
  walk(iter, {
    poll = function(task, t0, t1)
      local g = names[name_of(task)]
      if g and g.late then g.hist:record(t1 - t0) end
    end,
    wait = function(_, t0, t1, loc, label)
      local by_loc = point_idx[label or ""]
      local p = by_loc and by_loc[loc or "?"]
      if p and p.late then p.hist:record(t1 - t0) end
    end,
  })
end

-- records ----------------------------------------------------------------------------------

local function new_group(name)
  return { name = name, tasks = 0, live = 0, finished = 0, failed = 0, busy = 0, self_busy = 0,
           suspended = 0, pending = 0, wall = 0, resumes = 0, polls = 0, poll_max = 0,
           long_polls = 0 }
end

local function task_rows(ctx, snap)
  local rows, names = {}, ctx.names
  local lifetime = core.hist()
  for _, rec in ipairs(snap.tasks) do
    local tt = M.task_times(rec, snap.t)
    local self_busy = max(0, tt.busy - (ctx.nested[rec.id] or 0))
    local row = { id = rec.id, name = rec.name, state = rec.state, kind = rec.kind,
                  busy = tt.busy, self_busy = self_busy, suspended = tt.suspended,
                  pending = tt.pending, wall = tt.wall, live = tt.live,
                  resumes = rec.resumes or 0, max_poll = ctx.poll_max[rec.id],
                  max_poll_loc = ctx.poll_max_loc[rec.id], created_at = rec.created_at,
                  where = rec.where }
    rows[#rows + 1] = row
    local g = names[rec.name]
    g.tasks = g.tasks + 1
    g.busy, g.self_busy = g.busy + tt.busy, g.self_busy + self_busy
    g.suspended, g.pending = g.suspended + tt.suspended, g.pending + tt.pending
    g.resumes = g.resumes + (rec.resumes or 0)
    if rec.state == "failed" then g.failed = g.failed + 1 end
    if tt.live then
      g.live = g.live + 1
    else
      g.finished, g.wall = g.finished + 1, g.wall + tt.wall
      record(lifetime, tt.wall)
    end
  end
  return rows, lifetime
end

-- the n first values of table t (walked with `each`: pairs or ipairs) in the order
-- `before`, without sorting them all (there may be a hundred thousand tasks or names)
local function select_top(t, each, n, before)
  local top = {}
  for _, v in each(t) do
    if #top < n or before(v, top[#top]) then
      local i = min(#top, n - 1)
      while i >= 1 and before(v, top[i]) do
        top[i + 1] = top[i]
        i = i - 1
      end
      top[i + 1] = v
    end
  end
  return top
end

-- top entries of a map by a field (non-zero), largest first, ties by key; and their total
local function top_by(map, field, n, keyfield)
  local nonzero, total = {}, 0
  for k, v in pairs(map) do
    local x = v[field] or 0
    if x > 0 then
      nonzero[k] = v
      total = total + x
    end
  end
  local top = select_top(nonzero, pairs, n, function(a, b)
    if a[field] ~= b[field] then return a[field] > b[field] end
    return tostring(a[keyfield]) < tostring(b[keyfield])
  end)
  return top, total
end

local function ranking(map, field, n, keyfield, denom, label_of, count_field)
  local list, total = top_by(map, field, n, keyfield)
  local out = {}
  for i, v in ipairs(list) do
    local base = denom or total
    out[i] = { key = v[keyfield], name = label_of and label_of(v) or v[keyfield], total = v[field],
               share = base > 0 and v[field] / base or 0, count = v[count_field] }
  end
  return out, total
end

local function lock_rows(snap)
  local rows = {}
  for _, r in ipairs(snap.resources or {}) do
    local row = { name = r.name, kind = r.kind, acquisitions = r.acquisitions or 0,
                  contended = r.contended or 0, wait = r.wait_total or 0, wait_max = r.wait_max }
    row.wait_mean = row.contended > 0 and row.wait / row.contended or nil
    local h = r.wait_hist
    if type(h) == "userdata" and type(h.summary) == "function" then
      row.dist = M.summarize(h)
    elseif type(h) == "table" and h.p50 then
      row.dist = h
    elseif type(r.wait_quantiles) == "table" then
      row.dist = r.wait_quantiles
    end
    rows[#rows + 1] = row
  end
  sort(rows, function(a, b)
    if a.wait ~= b.wait then return a.wait > b.wait end
    return tostring(a.name) < tostring(b.name)
  end)
  return rows
end

-- long polls: the C log and the timeline, merged (the same resume appears in both)
local function merge_long_polls(ctx, c_log)
  local by_start, list = {}, {}
  local function add(p)
    local k = tostring(p.task) .. "@" .. tostring(p.t)
    local old = by_start[k]
    if old then
      old.label = old.label or p.label
      old.loc = old.loc or p.loc
      return
    end
    local copy = {}
    for key, v in pairs(p) do copy[key] = v end
    copy.name = copy.name or ctx.name_of(p.task)
    local rec = ctx.by_id[p.task]
    if copy.ended == "fail" and copy.loc == nil and rec then copy.loc = M.error_location(rec) end
    by_start[k] = copy
    list[#list + 1] = copy
  end
  for _, p in ipairs(c_log or {}) do
    if p.duration > ctx.th.long_poll_ms * MS then add(p) end
  end
  for _, p in ipairs(ctx.long_polls) do add(p) end
  sort(list, function(a, b)
    if a.duration ~= b.duration then return a.duration > b.duration end
    return a.t < b.t
  end)
  return list
end

-- context: what both passes and the lints share ---------------------------------------------

local function new_context(snap, th, opts)
  local ctx = { now = snap.t, th = th, names = {}, points = {}, point_idx = {},
                polls = {}, poll_max = {}, poll_max_loc = {}, nested = {}, last_wake = {},
                idle = {}, long_polls = {}, event_names = {}, hists = 0, hist_cap = 0 }
  local by_id = {}
  for _, rec in ipairs(snap.tasks) do
    by_id[rec.id] = rec
    if ctx.names[rec.name] == nil then ctx.names[rec.name] = new_group(rec.name) end
  end
  ctx.by_id = by_id
  function ctx.name_of(task)
    local rec = by_id[task]
    if rec then return rec.name end
    return ctx.event_names[task] or "(evicted)"
  end
  function ctx.fn_of(task)
    local rec = by_id[task]
    return rec and (rec["function"] or rec.created_at) or nil
  end
  local source = opts.events
  if source == nil and snap.events then source = array_events(snap.events) end
  ctx.source = source
  return ctx
end

-- lints -----------------------------------------------------------------------------------

local function quote(s) return '"' .. vutil.sanitize(s) .. '"' end

local thousands = view.count

local function who(task, name)
  return format("task #%d %s", task, quote(name or "?"))
end

--- Where a failed task raised its error: the `source:line` its message starts with, else
-- the first Lua frame of its traceback, else where its function is defined.
-- @tparam table rec a task record
-- @treturn string|nil
function M.error_location(rec)
  if type(rec) ~= "table" then arg_error(1, "error_location", "task record expected") end
  local msg = rec.error
  local loc = type(msg) == "string" and msg:match("^(.-:%d+): ") or nil
  if loc then return loc end
  for line in tostring(rec.traceback or ""):gmatch("[^\n]+") do
    local l = line:match("^%s*(.-:%d+):")
    if l and not l:find("^%[C%]") then return l end
  end
  return rec["function"] or rec.created_at
end

local function poll_end_text(p, fn)
  if p.ended == "yield" then
    return p.loc and ("it finally yielded at " .. p.loc) or "then it yielded"
  elseif p.ended == "fail" then
    return "then it raised an error" .. (p.loc and (" at " .. p.loc) or "")
  end
  return "then it returned" .. (fn and (" (function at " .. fn .. ")") or "")
end

-- where the work of a long poll is, for the recommendation
local function work_place(p, fn)
  if p.ended == "yield" and p.loc then return "before it yields at " .. p.loc end
  if p.ended == "fail" and p.loc then return "before its error at " .. p.loc end
  if p.ended == "complete" then
    return "after its last yield, up to its return" .. (fn and (" (function at " .. fn .. ")") or "")
  end
  return "in that resume"
end

-- long polls and never-yields, grouped by task name and place so a hot loop is one warning
local function lint_long_polls(ctx, long_polls, out)
  local groups, order = {}, {}
  for _, p in ipairs(long_polls) do
    local k = tostring(p.name) .. "\0" .. tostring(p.loc) .. "\0" .. p.ended
    local g = groups[k]
    if g == nil then
      g = { n = 0, worst = p, tasks = {} }
      groups[k] = g
      order[#order + 1] = k
    end
    g.n = g.n + 1
    g.tasks[p.task] = true
    if p.duration > g.worst.duration then g.worst = p end
  end
  local never_ns = ctx.th.never_yield_ms * MS
  for _, k in ipairs(order) do
    local g, p = groups[k], groups[k].worst
    local fn = ctx.fn_of(p.task)
    local place = p.loc or fn
    local many = g.n > 1 and format("; %d long polls there, this the longest", g.n) or ""
    local w = { task = p.task, name = p.name, loc = place, value = p.duration, count = g.n }
    if p.duration >= never_ns then
      w.lint, w.severity = "never_yields", "error"
      w.message = format("%s ran %s in one resume without yielding (limit %s%s); %s. "
        .. "Nothing else ran meanwhile: every other task and every luv callback waited.",
        who(p.task, p.name), duration(p.duration), duration(never_ns), many, poll_end_text(p, fn))
    else
      w.lint, w.severity = "long_poll", "warn"
      w.message = format("%s ran %s without yielding (threshold %s%s), blocking the loop; %s.",
        who(p.task, p.name), duration(p.duration), duration(ctx.th.long_poll_ms * MS), many,
        poll_end_text(p, fn))
    end
    w.recommendation = format("Split the work %s does %s into steps of a few milliseconds "
      .. "that yield in between (coroutine.yield(), or aio.sleep(0) under luv), or move the "
      .. "CPU-heavy part to a luv worker thread (uv.new_work) so the loop keeps running.",
      quote(p.name), work_place(p, fn))
    out[#out + 1] = w
    for task in pairs(g.tasks) do ctx.linted[task] = true end
  end
end

-- tasks running right now for longer than never_yield_ms, and finished tasks that ran that
-- long in their only resume (their long poll may have left the log and the ring)
local function lint_never_yields(ctx, snap, out)
  local never_ns = ctx.th.never_yield_ms * MS
  for _, rec in ipairs(snap.tasks) do
    local running_for = rec.state == "running" and rec.kind ~= "block"
        and snap.t - (rec.last_change or snap.t) or 0
    local one_shot = FINISHED[rec.state] and rec.kind ~= "block" and rec.resumes == 1
        and (rec.busy or 0) or 0
    local d = max(running_for, one_shot)
    if d >= never_ns and not ctx.linted[rec.id] then
      local place = rec["function"] or rec.created_at
      out[#out + 1] = {
        lint = "never_yields", severity = "error", task = rec.id, name = rec.name, loc = place,
        value = d,
        message = format("%s %s %s without yielding once (limit %s); nothing else ran meanwhile.",
          who(rec.id, rec.name), running_for > 0 and "has been running for" or "ran for",
          duration(d), duration(never_ns)),
        recommendation = format("Make %s (function at %s) yield regularly: put "
          .. "coroutine.yield() or aio.sleep(0) inside its long loop, or run the computation "
          .. "in a luv worker thread (uv.new_work).", quote(rec.name), place or "?"),
      }
      ctx.linted[rec.id] = true
    end
  end
end

local function dominant_resumer(resumers)
  local best, best_n, total = nil, 0, 0
  for by, n in pairs(resumers) do
    total = total + n
    if n > best_n or (n == best_n and by < best) then best, best_n = by, n end
  end
  return best, best_n, total
end

-- busy waiting: resumed over and over by the same resumer with nothing announced or woken,
-- suspended only briefly while others ran, and doing little each time (see profiling.md)
local function lint_busy_wait(ctx, out)
  local th = ctx.th
  for task, s in pairs(ctx.idle) do
    if s.n >= th.busy_wait_resumes then
      local by, by_n, total = dominant_resumer(s.resumers)
      local gap = s.gap / s.n
      local spin = s.busy / max(1, s.busy + s.gap)
      if by and by_n >= 0.9 * total and gap < th.busy_wait_gap_ms * MS
          and s.inter >= s.n / 2 and spin < 0.2 then
        local name = ctx.name_of(task)
        local resumer = by == 0 and "the main thread" or who(by, ctx.name_of(by))
        out[#out + 1] = {
          lint = "busy_wait", severity = "warn", task = task, name = name, loc = s.loc,
          value = s.n,
          message = format("%s was resumed %s times by %s without waiting on anything (no await "
            .. "point, no wake-up event; %s suspended on average, %d%% of the time running)%s.",
            who(task, name), thousands(s.n), resumer, duration(gap), floor(spin * 100 + 0.5),
            s.loc and (", each time yielding at " .. s.loc) or ""),
          recommendation = format("%s polls a condition in a loop%s: instead of yielding until "
            .. "it holds, wait for the thing that makes it true (an ai.sync.event or channel, "
            .. "aio.await on the luv operation, a timer with aio.sleep), so it is resumed once, "
            .. "when there is something to do.", quote(name),
            s.loc and (" at " .. s.loc) or ""),
        }
      end
    end
  end
end

local function lint_stuck(ctx, snap, out)
  local stuck_ns = ctx.th.stuck_ms * MS
  for _, rec in ipairs(snap.tasks) do
    local since = snap.t - (rec.last_change or rec.created or snap.t)
    if rec.kind ~= "block" and since >= stuck_ns
        and (rec.state == "suspended" or rec.state == "pending") then
      local w = { lint = "stuck", severity = "warn", task = rec.id, name = rec.name, value = since }
      if rec.state == "pending" then
        w.loc = rec.created_at or rec["function"]
        w.message = format("%s was created %s ago%s and has never been resumed.",
          who(rec.id, rec.name), duration(since), w.loc and (" at " .. w.loc) or "")
        w.recommendation = format("Start %s (coroutine.resume or aio.spawn) or drop the "
          .. "coroutine: a task that never runs holds its closure and what it references.",
          quote(rec.name))
      else
        w.loc = rec.where
        local what = {}
        if rec.await then what[#what + 1] = "await " .. quote(rec.await) end
        if rec.wait then what[#what + 1] = "waiting for " .. vutil.sanitize(rec.wait) end
        w.message = format("%s has been suspended for %s%s%s and nothing has resumed it.",
          who(rec.id, rec.name), duration(since), rec.where and (" at " .. rec.where) or "",
          #what > 0 and (" (" .. concat(what, ", ") .. ")") or "")
        if rec.wait and rec.wait:find("^lock:") then
          w.recommendation = format("Find who holds %s (the deadlock report names holders and "
            .. "where they acquired it) and make sure it is released on every path, including "
            .. "errors (a to-be-closed guard does that).", vutil.sanitize(rec.wait))
        else
          w.recommendation = format("Make sure something will resume %s%s: the callback or "
            .. "task meant to wake it may have failed or never been set up. Add a timeout, or "
            .. "close it (coroutine.close) when it is no longer needed.", quote(rec.name),
            rec.where and (" at " .. rec.where) or "")
        end
      end
      out[#out + 1] = w
    end
  end
end

-- the joined marks of the luv helper: a record field, or a set/array on the snapshot
local function joined_set(snap)
  local set = {}
  local j = snap.joined
  if type(j) == "table" then
    for k, v in pairs(j) do
      if math.type(k) == "integer" and v == true then set[k] = true end
      if math.type(v) == "integer" then set[v] = true end
    end
  end
  return set
end

local function is_joined(rec, joined)
  return joined[rec.id] or rec.joined == true or (type(rec.joiners) == "number" and rec.joiners > 0)
end

-- the failures the luv helper lists as unjoined (`snap.unjoined`), by task id
local function listed_unjoined(snap)
  local set = {}
  if type(snap.unjoined) == "table" then
    for _, e in ipairs(snap.unjoined) do
      if type(e) == "table" and math.type(e.task) == "integer" and not e.observed then
        set[e.task] = true
      end
    end
  end
  return set
end

local function luv_loaded() return package.loaded["async_inspect.luv"] ~= nil end

-- failed tasks nobody joined. Rule: a failure counts when nobody joined the task and it was
-- run by a scheduler: listed by the luv helper (`snap.unjoined`), marked `scheduled`, or,
-- without the luv helper, resumed by a luv callback (its failing resume carries a wake kind).
-- A task resumed directly with coroutine.resume handed its error to that caller as `false,
-- err`, and coroutine.wrap re-raised it there: observed. With the luv helper loaded, wake
-- kinds mark every task it runs, joined or not, so only its own list counts.
local function lint_unjoined(ctx, snap, out)
  local policy = ai.settings().unjoined_errors
  if policy == "ignore" then return end
  local joined, listed = joined_set(snap), listed_unjoined(snap)
  local by_wake = not luv_loaded()
  local function run_by_scheduler(rec)
    return listed[rec.id] or rec.scheduled == true or rec.spawned == true
        or (by_wake and ctx.last_wake[rec.id] ~= nil)
  end
  for _, rec in ipairs(snap.tasks) do
    if rec.state == "failed" and rec.kind ~= "block" and not is_joined(rec, joined)
        and run_by_scheduler(rec) then
      local loc = M.error_location(rec)
      out[#out + 1] = {
        lint = "unjoined_failure", severity = "error", task = rec.id, name = rec.name, loc = loc,
        message = format("%s failed and nobody joined it, so its error was lost: %s",
          who(rec.id, rec.name), vutil.sanitize(tostring(rec.error or "(no message)"))),
        recommendation = format("Join %s (handle:join() or aio.wait_all) or check what "
          .. "coroutine.resume returns in the callback that resumes it, so the error%s is "
          .. "handled; catch errors the task expects inside it with pcall.", quote(rec.name),
          loc and (" raised at " .. loc) or ""),
      }
    end
  end
end

-- the most tasks of one name created within any one second (a sliding window)
local function peak_per_second(times)
  sort(times)
  local best, j = 0, 1
  for i = 1, #times do
    while times[i] - times[j] >= 1e9 do j = j + 1 end
    if i - j + 1 > best then best = i - j + 1 end
  end
  return best
end

local function lint_churn(ctx, snap, out)
  local limit = ctx.th.churn_per_second
  -- count first: only names with enough tasks in all need their creation times
  local count = {}
  for _, rec in ipairs(snap.tasks) do
    if rec.kind ~= "block" and rec.created then count[rec.name] = (count[rec.name] or 0) + 1 end
  end
  local created, sample, lifetimes = {}, {}, {}
  for _, rec in ipairs(snap.tasks) do
    local name = rec.name
    if rec.kind ~= "block" and rec.created and count[name] >= limit and count[name] >= 2 then
      local list = created[name]
      if list == nil then
        list = {}
        created[name], sample[name], lifetimes[name] = list, rec, {}
      end
      list[#list + 1] = rec.created
      if rec.ended then
        local l = lifetimes[name]
        l[#l + 1] = rec.ended - rec.created
      end
    end
  end
  for name, times in pairs(created) do
    local peak = peak_per_second(times)
    if peak >= limit then
      local rec, l = sample[name], lifetimes[name]
      sort(l)
      local life = vutil.percentile(l, 50)
      local loc = rec.created_at or rec["function"]
      out[#out + 1] = {
        lint = "churn", severity = "warn", task = rec.id, name = name, loc = loc, value = peak,
        message = format("%s tasks named %s were created within one second (%s in all%s)%s.",
          thousands(peak), quote(name), thousands(#times),
          life and (", median lifetime " .. duration(life)) or "",
          loc and (", created at " .. loc) or ""),
        recommendation = format("Reuse a long-lived worker for %s (a loop that takes work "
          .. "from a channel or queue) instead of creating a coroutine per item%s: each one "
          .. "costs a creation, tracking and a collection.", quote(name),
          life and format(" that lives %s", duration(life)) or ""),
      }
    end
  end
end

-- a slow callback that resumed a task whose long poll (inside it) is already a warning
local function explained_by_poll(cb, polls_of)
  for _, p in ipairs(polls_of[cb.task] or {}) do
    if p.t >= cb.t and p.t <= cb.t + cb.duration and p.duration >= cb.duration / 2 then
      return true
    end
  end
  return false
end

local function lint_slow_callbacks(ctx, snap, long_polls, out)
  local limit = ctx.th.slow_callback_ms * MS
  local groups, order, polls_of = {}, {}, {}
  for _, p in ipairs(long_polls) do
    local list = polls_of[p.task] or {}
    list[#list + 1] = p
    polls_of[p.task] = list
  end
  for _, cb in ipairs(snap.slow_callbacks or {}) do
    if type(cb) == "table" and type(cb.duration) == "number" and cb.duration >= limit
        and not (type(cb.t) == "number" and explained_by_poll(cb, polls_of)) then
      local k = tostring(cb.kind) .. "\0" .. tostring(cb.at)
      local g = groups[k]
      if g == nil then
        g = { n = 0, worst = cb }
        groups[k] = g
        order[#order + 1] = k
      end
      g.n = g.n + 1
      if cb.duration > g.worst.duration then g.worst = cb end
    end
  end
  for _, k in ipairs(order) do
    local g, cb = groups[k], groups[k].worst
    local kind = vutil.sanitize(cb.kind or "luv")
    local task = math.type(cb.task) == "integer" and cb.task ~= 0 and cb.task or nil
    out[#out + 1] = {
      lint = "slow_callback", severity = "warn", task = task, name = task and ctx.name_of(task)
          or kind .. " callback", loc = cb.at, value = cb.duration,
      message = format("A luv %s callback%s ran %s%s (threshold %s), blocking the event loop%s.",
        kind, cb.at and (" at " .. cb.at) or "", duration(cb.duration),
        g.n > 1 and format(" (%d times)", g.n) or "", duration(limit),
        task and (" while resuming " .. who(task, ctx.name_of(task))) or ""),
      recommendation = format("Keep luv callbacks short: move the work of the %s callback%s into "
        .. "a task (aio.spawn) that yields between steps, or into a worker thread (uv.new_work).",
        kind, cb.at and (" at " .. cb.at) or ""),
    }
  end
end

local function run_lints(ctx, snap, long_polls)
  local out = {}
  ctx.linted = {}
  lint_long_polls(ctx, long_polls, out)
  lint_never_yields(ctx, snap, out)
  lint_busy_wait(ctx, out)
  lint_stuck(ctx, snap, out)
  lint_unjoined(ctx, snap, out)
  lint_churn(ctx, snap, out)
  lint_slow_callbacks(ctx, snap, long_polls, out)
  sort(out, function(a, b)
    if a.severity ~= b.severity then return a.severity == "error" end
    if a.lint ~= b.lint then return a.lint < b.lint end
    if (a.value or 0) ~= (b.value or 0) then return (a.value or 0) > (b.value or 0) end
    return (a.task or 0) < (b.task or 0)
  end)
  return out
end

local function scan_events(ctx)
  if ctx.source == nil then return end
  first_pass(ctx, ctx.source())
end

--- The lints of a snapshot: long polls, tasks that never yield, busy waiting, stuck tasks,
-- failed tasks nobody joined, task churn and slow luv callbacks, each a warning as in
-- docs/internals.md with a recommendation naming the task and the source line.
-- Uses the snapshot's events when it has them (busy waiting needs them), `snap.long_polls`
-- (the C log) and `snap.slow_callbacks` (the luv helper).
-- @tparam table snap a snapshot
-- @tparam[opt] table opts threshold overrides (keys of `DEFAULTS`); `events` an iterator
-- factory `function() return iterator end` used instead of `snap.events`
-- @treturn table array of warnings, errors first
-- @usage for _, w in ipairs(ai.profile.lints(ai.snapshot{events = true})) do print(w.message) end
function M.lints(snap, opts)
  check_snapshot(snap, 1, "lints")
  opts = check_opts(opts, 2, "lints")
  local ctx = new_context(snap, M.thresholds(opts), opts)
  scan_events(ctx)
  return run_lints(ctx, snap, merge_long_polls(ctx, snap.long_polls))
end

-- analysis ---------------------------------------------------------------------------------

-- the top groups keep a histogram: those the first pass did not give one get it now
local function late_hists(list)
  local late = false
  for _, g in ipairs(list) do
    if g.hist == nil then
      g.hist, g.late = core.hist(), true
      late = true
    end
  end
  return late
end

local function fill_histograms(ctx, snap, n)
  local names_top = top_by(ctx.names, "busy", n, "name")
  local points_top = top_by(ctx.points, "wait", n, "key")
  local late_names, late_points = late_hists(names_top), late_hists(points_top)
  if ctx.source and (late_names or late_points) then second_pass(ctx, ctx.source()) end
  local life = {}
  for _, g in ipairs(names_top) do life[g.name] = core.hist() end
  for _, rec in ipairs(snap.tasks) do
    local h = life[rec.name]
    if h and rec.ended and rec.created then record(h, rec.ended - rec.created) end
  end
  for _, g in ipairs(names_top) do
    g.poll, g.lifetime = M.summarize(g.hist), M.summarize(life[g.name])
  end
  for _, p in ipairs(points_top) do p.dist = M.summarize(p.hist) end
  for _, list in ipairs({ ctx.names, ctx.points }) do
    for _, g in pairs(list) do g.hist, g.late = nil, nil end
  end
end

local function finish_groups(ctx, long_polls)
  for _, p in ipairs(long_polls) do
    local g = ctx.names[p.name]
    if g then g.long_polls = g.long_polls + 1 end
  end
  local names, points = {}, {}
  for _, g in pairs(ctx.names) do
    g.busy_mean = g.tasks > 0 and g.busy / g.tasks or 0
    g.wall_mean = g.finished > 0 and g.wall / g.finished or nil
    names[#names + 1] = g
  end
  for _, p in pairs(ctx.points) do
    p.name = M.point_name(p)
    p.wait_total = p.wait + p.open_wait
    p.count = p.waits + p.open
    p.wait_mean = p.waits > 0 and p.wait / p.waits or nil
    points[#points + 1] = p
  end
  sort(names, function(a, b)
    if a.self_busy ~= b.self_busy then return a.self_busy > b.self_busy end
    return a.name < b.name
  end)
  sort(points, function(a, b)
    if a.wait_total ~= b.wait_total then return a.wait_total > b.wait_total end
    return a.key < b.key
  end)
  return names, points
end

-- the n busiest tasks (by self busy time, then id)
local function busiest(rows, n)
  return select_top(rows, ipairs, n, function(a, b)
    if a.self_busy ~= b.self_busy then return a.self_busy > b.self_busy end
    return a.id < b.id
  end)
end

local function hot_paths(ctx, n, run)
  local hot = {}
  hot.names_by_busy = ranking(ctx.names, "self_busy", n, "name", run, nil, "tasks")
  hot.names_by_wait = ranking(ctx.names, "suspended", n, "name", nil, nil, "tasks")
  hot.points_by_wait = ranking(ctx.points, "wait_total", n, "key", nil, M.point_name, "count")
  hot.points_by_busy = ranking(ctx.points, "busy", n, "key", run, M.point_name, "polls")
  return hot
end

--- Analyse a snapshot: per task, per task name and per await point times, distributions,
-- hot paths, long polls and lints. Pure apart from building `core.hist()` histograms.
-- @tparam table snap a snapshot; its `events` (or `opts.events`) give polls and waits
-- @tparam[opt] table opts threshold overrides; `top` (rows per ranking, default 10);
-- `hist_groups` (the busiest task names and await points given a distribution, 32);
-- `events` an iterator factory over event rows; `resume_hist` a histogram of every resume
-- (default: built from the events); `long_polls` the C log (default `snap.long_polls`)
-- @treturn table the profile: `run`, `dist` (resume, lifetime), `tasks`, `names`, `points`,
-- `top_tasks`, `locks`, `hot`, `long_polls`, `warnings`, `thresholds` (see docs/profiling.md)
-- @usage local prof = ai.profile.analyze(ai.snapshot{events = true})
function M.analyze(snap, opts)
  check_snapshot(snap, 1, "analyze")
  opts = check_opts(opts, 2, "analyze")
  if opts.events ~= nil and type(opts.events) ~= "function" then
    arg_error(2, "analyze", "option 'events' must be a function returning an iterator")
  end
  local th = M.thresholds(opts)
  local ctx = new_context(snap, th, opts)
  ctx.hist_cap = HIST_GROUPS -- the lints alone need no distributions
  local top = opts.top or 10
  local resume_hist = opts.resume_hist
  if resume_hist == nil then
    ctx.poll_hist = core.hist()
    resume_hist = ctx.poll_hist
  end
  scan_events(ctx)
  local tasks, lifetime = task_rows(ctx, snap)
  local long_polls = merge_long_polls(ctx, opts.long_polls or snap.long_polls)
  fill_histograms(ctx, snap, opts.hist_groups or 32)
  local stats = snap.stats or {}
  local prof = {
    format = M.FORMAT, version = M.VERSION, t = snap.t, thresholds = th,
    run = { duration = snap.t, tasks = stats.tasks or #snap.tasks, live = stats.active,
            events = stats.events, events_dropped = stats.events_dropped or 0,
            evicted = stats.evicted or 0, long_polls = max(stats.long_polls or 0, #long_polls),
            has_events = ctx.source ~= nil },
    dist = { resume = M.summarize(resume_hist), lifetime = M.summarize(lifetime) },
    tasks = tasks, long_polls = long_polls, locks = lock_rows(snap),
  }
  local busy, resumes = 0, 0
  for _, row in ipairs(tasks) do
    if row.kind ~= "block" then busy, resumes = busy + row.self_busy, resumes + row.resumes end
  end
  prof.run.busy, prof.run.resumes = busy, resumes
  prof.warnings = run_lints(ctx, snap, long_polls)
  prof.names, prof.points = finish_groups(ctx, long_polls)
  prof.hot = hot_paths(ctx, top, snap.t)
  prof.top_tasks = busiest(tasks, top)
  return prof
end

--- Profile the live program: a fresh snapshot, every event still in the ring (streamed,
-- never copied), the C histogram of every resume and the C log of long polls.
-- @tparam[opt] table opts as for `analyze`
-- @treturn table the profile
-- @usage local prof = ai.profile.collect{top = 5}
function M.collect(opts)
  opts = check_opts(opts, 1, "collect")
  M.register()
  local snap = ai.snapshot({ profile = false })
  snap.long_polls = core.long_polls()
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.events = o.events or function() return core.iter_events() end
  o.resume_hist = o.resume_hist or core.resume_hist()
  return M.analyze(snap, o)
end

local function report_options(opts, fname)
  opts = check_opts(opts, 1, fname)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  local reporter = require("async_inspect.reporter")
  if o.color == nil then o.color = reporter.default_color() end
  if o.ascii == nil then o.ascii = reporter.default_ascii() end
  return o
end

--- The profile report as text: summary, percentiles table with sparklines, hot paths, tasks,
-- long polls, lints and recommendations.
-- @tparam[opt] table opts view options (`width`, `ascii`, `color`, `top`), thresholds,
-- `snapshot` (analyse this snapshot instead of the live program) or `profile` (render it)
-- @treturn string
-- @usage print(ai.profile.report{width = 100})
function M.report(opts)
  local o = report_options(opts, "report")
  if o.snapshot ~= nil then check_snapshot(o.snapshot, 1, "report") end
  local prof = o.profile or (o.snapshot and M.analyze(o.snapshot, o)) or M.collect(o)
  return concat(view.render(prof, o), "\n")
end

--- Print `report(opts)` to stdout.
-- @tparam[opt] table opts as for `report`
function M.print_report(opts)
  io.stdout:write(M.report(opts), "\n")
end

-- saving and comparing ----------------------------------------------------------------------

local SUMMARY_KEYS = { "count", "min", "max", "mean", "p50", "p90", "p99", "p999" }

local function slim_summary(s)
  if type(s) ~= "table" then return nil end
  local out = {}
  for _, k in ipairs(SUMMARY_KEYS) do out[k] = s[k] end
  return out
end

--- The aggregates of a profile in the saved form: run, distributions (quantiles only), task
-- names, await points, locks, the longest polls and the warnings.
-- @tparam table prof a profile from `analyze` or `collect`
-- @tparam[opt] string label a name for the run
-- @treturn table
function M.export(prof, label)
  if type(prof) ~= "table" or prof.format ~= M.FORMAT then
    arg_error(1, "export", "profile expected (from ai.profile.analyze or collect)")
  end
  if label ~= nil and type(label) ~= "string" then
    arg_error(2, "export", "string expected, got " .. type(label))
  end
  local data = { format = M.FORMAT, version = M.VERSION, label = label, saved_at = os.time(),
                 run = prof.run, thresholds = prof.thresholds,
                 dist = { resume = slim_summary(prof.dist.resume),
                          lifetime = slim_summary(prof.dist.lifetime) },
                 names = {}, points = {}, locks = {}, long_polls = {}, warnings = prof.warnings }
  for i, g in ipairs(prof.names) do
    data.names[i] = { name = g.name, tasks = g.tasks, live = g.live, failed = g.failed,
      busy = g.busy, self_busy = g.self_busy, suspended = g.suspended, wall = g.wall,
      finished = g.finished, resumes = g.resumes, polls = g.polls, poll_max = g.poll_max,
      long_polls = g.long_polls, busy_mean = g.busy_mean, wall_mean = g.wall_mean,
      poll = slim_summary(g.poll), lifetime = slim_summary(g.lifetime) }
  end
  for i, p in ipairs(prof.points) do
    data.points[i] = { key = p.name, label = p.label, loc = p.loc, waits = p.waits,
      wait = p.wait, wait_total = p.wait_total, wait_max = p.wait_max, wait_mean = p.wait_mean,
      open = p.open, busy = p.busy, polls = p.polls, wait_dist = slim_summary(p.dist) }
  end
  for i, l in ipairs(prof.locks) do
    data.locks[i] = { name = l.name, kind = l.kind, acquisitions = l.acquisitions,
      contended = l.contended, wait = l.wait, wait_max = l.wait_max, wait_mean = l.wait_mean,
      wait_dist = slim_summary(l.dist) }
  end
  for i = 1, min(20, #prof.long_polls) do data.long_polls[i] = prof.long_polls[i] end
  return data
end

--- Encode saved profile data as JSON text (sorted keys, exact integers).
-- @tparam table data from `export`
-- @treturn string
function M.encode(data)
  if type(data) ~= "table" then arg_error(1, "encode", "table expected, got " .. type(data)) end
  -- sorted keys and exact integers, so saved runs diff cleanly
  return require("async_inspect.wire").encode_pretty(data)
end

--- Save the profile of the live program (or `opts.profile`) to a versioned JSON file.
-- @tparam string path
-- @tparam[opt] table opts as for `collect`, plus `label` (a name for the run) and `profile`
-- @treturn table the saved data
-- @usage ai.profile.save("before.json", {label = "before the cache"})
function M.save(path, opts)
  if type(path) ~= "string" then arg_error(1, "save", "string expected, got " .. type(path)) end
  opts = check_opts(opts, 2, "save")
  if opts.label ~= nil and type(opts.label) ~= "string" then
    arg_error(2, "save", "option 'label' must be a string")
  end
  local prof = opts.profile or M.collect(opts)
  local data = M.export(prof, opts.label)
  local f, err = io.open(path, "w")
  if not f then error("cannot save the profile: " .. tostring(err), 2) end
  local ok, werr = f:write(M.encode(data))
  f:close()
  if not ok then error("cannot save the profile: " .. tostring(werr), 2) end
  return data
end

--- Load a saved profile.
-- @tparam string path
-- @treturn table the saved data
-- @raise when the file is missing, not JSON, or not a profile of a known version
function M.load(path)
  if type(path) ~= "string" then arg_error(1, "load", "string expected, got " .. type(path)) end
  local f, err = io.open(path, "r")
  if not f then error("cannot load the profile: " .. tostring(err), 2) end
  local text = f:read("a")
  f:close()
  local data, derr = require("async_inspect.wire").decode(text)
  if type(data) ~= "table" then
    error(format("cannot load the profile %s: %s", path, derr or "not a JSON object"), 2)
  end
  if data.format ~= M.FORMAT or math.type(data.version) ~= "integer" or data.version > M.VERSION
  then
    error(format("cannot load the profile %s: not an %s file of version <= %d", path, M.FORMAT,
      M.VERSION), 2)
  end
  data.source = path
  return data
end

-- metrics compared per scope: all are times, so higher is worse
local NAME_METRICS = {
  { "busy_mean", "busy per task", function(g) return g.busy_mean end },
  { "poll_p50", "poll p50", function(g) return g.poll and g.poll.p50 end },
  { "poll_p99", "poll p99", function(g) return g.poll and g.poll.p99 end },
  { "wall_mean", "lifetime mean", function(g) return g.wall_mean end },
  { "lifetime_p99", "lifetime p99", function(g) return g.lifetime and g.lifetime.p99 end },
}
local POINT_METRICS = {
  { "wait_mean", "wait mean", function(p) return p.wait_mean end },
  { "wait_p50", "wait p50", function(p) return p.wait_dist and p.wait_dist.p50 end },
  { "wait_p99", "wait p99", function(p) return p.wait_dist and p.wait_dist.p99 end },
  { "busy_mean", "busy per poll", function(p) return p.polls > 0 and p.busy / p.polls or nil end },
}
local LOCK_METRICS = {
  { "wait_mean", "lock wait mean", function(l) return l.wait_mean end },
  { "wait_max", "lock wait max", function(l) return l.wait_max end },
}
local RUN_METRICS = {
  { "resume_p50", "resume p50", function(d) return d.dist.resume and d.dist.resume.p50 end },
  { "resume_p99", "resume p99", function(d) return d.dist.resume and d.dist.resume.p99 end },
  { "lifetime_p50", "task lifetime p50",
    function(d) return d.dist.lifetime and d.dist.lifetime.p50 end },
  { "lifetime_p99", "task lifetime p99",
    function(d) return d.dist.lifetime and d.dist.lifetime.p99 end },
}

local function as_saved(x, n)
  if type(x) == "string" then return M.load(x) end
  if type(x) ~= "table" then
    arg_error(n, "compare", "path or profile table expected, got " .. type(x), 2)
  end
  if x.format ~= M.FORMAT then arg_error(n, "compare", "not a profile (format field)", 2) end
  if x.tasks ~= nil and x.hot ~= nil then return M.export(x) end -- a live analysis
  return x
end

local function index(list, keyfield)
  local by = {}
  for _, v in ipairs(list or {}) do by[v[keyfield]] = v end
  return by
end

local function compare_scope(res, scope, a_list, b_list, keyfield, metrics, opts)
  local a_by, b_by = index(a_list, keyfield), index(b_list, keyfield)
  for key, a in pairs(a_by) do
    local b = b_by[key]
    if b == nil then
      res.only_a[#res.only_a + 1] = { scope = scope, key = key }
    else
      for _, m in ipairs(metrics) do
        local va, vb = m[3](a), m[3](b)
        if type(va) == "number" and type(vb) == "number" and max(va, vb) >= opts.min_ns
            and va > 0 then
          local pct = (vb - va) / va * 100
          local row = { scope = scope, key = key, metric = m[1], what = m[2], a = va, b = vb,
                        pct = pct }
          res.compared = res.compared + 1
          if pct >= opts.threshold then
            res.regressions[#res.regressions + 1] = row
          elseif pct <= -opts.threshold then
            res.improvements[#res.improvements + 1] = row
          end
        end
      end
    end
  end
  for key in pairs(b_by) do
    if a_by[key] == nil then res.only_b[#res.only_b + 1] = { scope = scope, key = key } end
  end
end

local function by_key(a, b)
  if a.scope ~= b.scope then return a.scope < b.scope end
  return tostring(a.key) < tostring(b.key)
end

--- Compare two runs: regressions and improvements per task name, await point and lock, and
-- of the whole run, in percent (positive: slower in `b`).
-- @param a the baseline: a path to a saved profile, saved data, or a profile from `analyze`
-- @param b the run to judge, the same kinds
-- @tparam[opt] table opts `threshold` (percent, default 10), `min_ns` (ignore figures below
-- this in both runs, default 1000), and view options for the lines
-- @treturn table `{regressions=, improvements=, only_a=, only_b=, compared=, a=, b=, lines=}`
-- where each change is `{scope=, key=, metric=, what=, a=, b=, pct=}`
-- @usage local cmp = ai.profile.compare("before.json", "after.json")
-- print(table.concat(cmp.lines, "\n"))
function M.compare(a, b, opts)
  if opts ~= nil and type(opts) ~= "table" then
    arg_error(3, "compare", "table expected, got " .. type(opts))
  end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.threshold = o.threshold or 10
  o.min_ns = o.min_ns or 1000
  if type(o.threshold) ~= "number" or o.threshold < 0 then
    arg_error(3, "compare", "option 'threshold' must be a number >= 0")
  end
  if type(o.min_ns) ~= "number" or o.min_ns < 0 then
    arg_error(3, "compare", "option 'min_ns' must be a number >= 0")
  end
  local da, db = as_saved(a, 1), as_saved(b, 2)
  local res = { regressions = {}, improvements = {}, only_a = {}, only_b = {}, compared = 0,
                threshold = o.threshold,
                a = { label = da.label or da.source or "a", run = da.run },
                b = { label = db.label or db.source or "b", run = db.run } }
  compare_scope(res, "run", { { key = "run", dist = da.dist } }, { { key = "run", dist = db.dist } },
    "key", RUN_METRICS, o)
  compare_scope(res, "name", da.names, db.names, "name", NAME_METRICS, o)
  compare_scope(res, "point", da.points, db.points, "key", POINT_METRICS, o)
  compare_scope(res, "lock", da.locks, db.locks, "name", LOCK_METRICS, o)
  sort(res.regressions, function(x, y)
    if x.pct ~= y.pct then return x.pct > y.pct end
    return by_key(x, y)
  end)
  sort(res.improvements, function(x, y)
    if x.pct ~= y.pct then return x.pct < y.pct end
    return by_key(x, y)
  end)
  sort(res.only_a, by_key)
  sort(res.only_b, by_key)
  res.lines = view.compare(res, o)
  return res
end

-- integration ------------------------------------------------------------------------------

-- warnings this module added to a snapshot, so the diagnoser does not lint twice
local linted = setmetatable({}, { __mode = "k" })

local function provider(snap, opts)
  if opts.profile == false then return end
  snap.long_polls = snap.long_polls or core.long_polls()
  local list = M.lints(snap)
  linted[snap] = list
  local warnings = snap.warnings or {}
  for _, w in ipairs(list) do warnings[#warnings + 1] = w end
  snap.warnings = warnings
end

-- what the luv helper's own diagnoser reports with knowledge we lack (joins, the loop's end)
local LUV_REPORTS = { unjoined_failure = true, slow_callback = true, stuck = true }

local function diagnoser(snap)
  local list = linted[snap]
  if list == nil then
    snap.long_polls = snap.long_polls or core.long_polls()
    list = M.lints(snap)
  end
  local skip = luv_loaded() and LUV_REPORTS or {}
  local findings = {}
  for _, w in ipairs(list) do
    if not skip[w.lint] then
      findings[#findings + 1] = { kind = w.lint, severity = w.severity, task = w.task,
        name = w.name, loc = w.loc, value = w.value, message = w.message,
        recommendation = w.recommendation }
    end
  end
  return findings
end

-- the lints read parts other providers add (slow_callbacks): run after them
local function register(list, fn)
  for i = #list, 1, -1 do
    if list[i] == fn then table.remove(list, i) end
  end
  list[#list + 1] = fn
end

--- Move the snapshot provider to the end of `ai._snapshot_providers`, after the providers of
-- modules loaded since (the lints read `slow_callbacks`, added by the luv helper's).
-- Done when this module loads and by `collect`; call it after loading such a module.
function M.register()
  register(ai._snapshot_providers, provider)
  if ai._diagnosers then register(ai._diagnosers, diagnoser) end
end

M.register()

return M

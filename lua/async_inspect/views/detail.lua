--- Everything about one task: figures, where it is suspended (with its traceback and
-- locals when the snapshot carries them), a histogram of its resume (poll) times, its
-- await points, the resources it holds or waits for, its warnings, parent and children.
--
-- Pure: a snapshot and view options in, lines out. Optional task fields used when present:
-- `traceback_now` (string, traceback of the suspended coroutine), `locals` (string or array
-- of lines), `where_fn`, `error`, `traceback`.
-- @module async_inspect.views.detail

local util = require("async_inspect.views.util")

local M = {}

local sanitize, duration, timestamp = util.sanitize, util.duration, util.timestamp
local format = string.format

local ENDS = { yield = true, complete = true, fail = true, cancel = true, drop = true }

--- Durations of a task's resumes (from each `resume` event to the next `yield`, `complete`,
-- `fail`, `cancel` or `drop` of the same task), in event order.
-- @tparam {table,...}|nil events snapshot events
-- @tparam integer id task id
-- @treturn {integer,...} nanoseconds
function M.resume_times(events, id)
  util.check(id, "number", 2, "resume_times")
  local out, since = {}, nil
  for _, e in ipairs(events or {}) do
    if e.task == id then
      if e.kind == "resume" then
        since = e.t
      elseif since and ENDS[e.kind] then
        out[#out + 1] = e.t - since
        since = nil
      end
    end
  end
  return out
end

--- A task's await points from the events: each distinct yield site (and label) with the
-- number of suspensions there and the total and longest time suspended; a suspension still
-- open at `now` counts up to `now` and marks the point `current`.
-- @tparam {table,...}|nil events snapshot events
-- @tparam integer id task id
-- @tparam integer now snapshot time
-- @treturn {table,...} `{loc=, label=, count=, total=, max=, current=bool}`, largest total first
function M.await_points(events, id, now)
  util.check(id, "number", 2, "await_points")
  util.check(now, "number", 3, "await_points")
  local points, list, open = {}, {}, nil
  local function close(t)
    if open then
      local d = t - open.since
      open.point.total = open.point.total + d
      if d > open.point.max then open.point.max = d end
      open = nil
    end
  end
  for _, e in ipairs(events or {}) do
    if e.task == id then
      if e.kind == "yield" then
        local key = tostring(e.loc) .. "\0" .. tostring(e.detail)
        local p = points[key]
        if not p then
          p = { loc = e.loc, label = e.detail, count = 0, total = 0, max = 0, current = false }
          points[key] = p
          list[#list + 1] = p
        end
        p.count = p.count + 1
        open = { point = p, since = e.t }
      elseif e.kind == "resume" or ENDS[e.kind] then
        close(e.t)
      end
    end
  end
  if open then
    open.point.current = true
    close(now)
  end
  table.sort(list, function(a, b)
    if a.total ~= b.total then return a.total > b.total end
    return tostring(a.loc) < tostring(b.loc)
  end)
  return list
end

local function section(lines, title, opts)
  lines[#lines + 1] = ""
  lines[#lines + 1] = util.paint(title, "bold", opts.color)
end

local function text_lines(lines, text, indent)
  if type(text) == "table" then
    for _, l in ipairs(text) do lines[#lines + 1] = indent .. sanitize(l) end
  elseif type(text) == "string" then
    for l in (text .. "\n"):gmatch("(.-)\r?\n") do lines[#lines + 1] = indent .. sanitize(l) end
  end
end

local function figures(lines, task, by, snap, opts)
  local a = opts.ascii
  local total, busy, idle = util.task_times(task, snap.t)
  local parent = task.parent and task.parent ~= 0 and util.task_ref(by[task.parent], task.parent)
    or "-"
  lines[#lines + 1] = format(" kind %s   parent %s", sanitize(task.kind or "coroutine"), parent)
  lines[#lines + 1] = format(" created %s at %s", timestamp(task.created),
    sanitize(task.created_at or "?"))
  lines[#lines + 1] = format(" first resume %s   last change %s   ended %s",
    timestamp(task.first_resume), timestamp(task.last_change), timestamp(task.ended))
  local share = total > 0 and format(" (%.1f%%)", busy * 100 / total) or ""
  lines[#lines + 1] = format(" total %s   busy %s%s   idle %s", duration(total, a),
    duration(busy, a), share, duration(idle, a))
  local polls = task.resumes or 0
  lines[#lines + 1] = format(" polls %d   mean poll %s", polls,
    polls > 0 and duration(busy // polls, a) or "-")
end

local function where(lines, task, snap, opts)
  if task.state ~= "suspended" and not task.traceback_now and not task.locals then return end
  section(lines, "Where", opts)
  if task.where then
    local fn = task.where_fn and (" in " .. sanitize(task.where_fn)) or ""
    lines[#lines + 1] = " suspended at " .. sanitize(task.where) .. fn
  end
  local parts = {}
  if task.await then parts[#parts + 1] = "await " .. sanitize(task.await) end
  if task.wait then parts[#parts + 1] = "waits for " .. sanitize(task.wait) end
  if task.state == "suspended" and task.last_change then
    parts[#parts + 1] = "for " .. duration(snap.t - task.last_change, opts.ascii)
  end
  if #parts > 0 then lines[#lines + 1] = " " .. table.concat(parts, "   ") end
  if task.traceback_now then
    lines[#lines + 1] = " traceback:"
    text_lines(lines, task.traceback_now, "   ")
  end
  if task.locals then
    section(lines, "Locals", opts)
    text_lines(lines, task.locals, "  ")
  end
end

local function histogram(lines, times, opts)
  local n = #times
  section(lines, format("Resume times (%d)", n), opts)
  if n == 0 then
    lines[#lines + 1] = "  (no resume in the events of this snapshot)"
    return
  end
  local a = opts.ascii
  local sorted = table.move(times, 1, n, 1, {})
  table.sort(sorted)
  lines[#lines + 1] = format("  p50 %s   p90 %s   p99 %s   max %s",
    duration(util.percentile(sorted, 50), a), duration(util.percentile(sorted, 90), a),
    duration(util.percentile(sorted, 99), a), duration(sorted[n], a))
  -- log-spaced buckets between the shortest and the longest resume
  local lo, hi = math.max(1, sorted[1]), math.max(1, sorted[n])
  local rows = math.min(8, n)
  if hi <= lo then rows = 1 end
  local counts, edges = {}, {}
  for i = 1, rows do
    edges[i] = rows == 1 and hi or lo * (hi / lo) ^ (i / rows)
    counts[i] = 0
  end
  local top = 0
  for _, v in ipairs(sorted) do
    local i = 1
    while i < rows and v > edges[i] do i = i + 1 end
    counts[i] = counts[i] + 1
    if counts[i] > top then top = counts[i] end
  end
  local bar_w = math.max(4, (opts.width or 80) - 24)
  for i = 1, rows do
    lines[#lines + 1] = format("  <=%7s %s %d", duration(math.floor(edges[i] + 0.5), a),
      util.bar(counts[i] / top, bar_w - 8, a), counts[i])
  end
  local last = math.max(1, n - bar_w + 1)
  lines[#lines + 1] = "  trend " .. util.sparkline(table.move(times, last, n, 1, {}), a)
end

local function await_section(lines, points, opts)
  section(lines, "Await points", opts)
  if #points == 0 then
    lines[#lines + 1] = "  (none in the events of this snapshot)"
    return
  end
  local a = opts.ascii
  for _, p in ipairs(points) do
    local label = p.label and ("  [" .. sanitize(p.label) .. "]") or ""
    lines[#lines + 1] = format("  %s%s  %dx  total %s  max %s%s", sanitize(p.loc or "?"),
      label, p.count, duration(p.total, a), duration(p.max, a), p.current and "  (now)" or "")
  end
end

local function resource_section(lines, id, snap, opts)
  local found = {}
  for _, r in ipairs(snap.resources or {}) do
    local name = sanitize(r.name or ("resource " .. tostring(r.id)))
    for _, h in ipairs(r.holders or {}) do
      if h.task == id then
        found[#found + 1] = format("  holds %s %s since %s at %s", sanitize(r.kind or "?"),
          name, duration(snap.t - (h.since or snap.t), opts.ascii), sanitize(h.at or "?"))
      end
    end
    for _, w in ipairs(r.waiters or {}) do
      if w.task == id then
        found[#found + 1] = format("  waits for %s %s for %s at %s%s", sanitize(r.kind or "?"),
          name, duration(snap.t - (w.since or snap.t), opts.ascii), sanitize(w.at or "?"),
          r.deadlocked and "  DEADLOCK" or "")
      end
    end
  end
  if #found == 0 then return end
  section(lines, "Resources", opts)
  table.move(found, 1, #found, #lines + 1, lines)
end

local function warning_section(lines, id, snap, opts)
  local found = {}
  for _, w in ipairs(snap.warnings or {}) do
    if w.task == id then
      found[#found + 1] = format("  [%s] %s: %s", sanitize(w.severity or "warn"),
        sanitize(w.lint or "?"), sanitize(w.message or ""))
    end
  end
  if #found == 0 then return end
  section(lines, "Warnings", opts)
  table.move(found, 1, #found, #lines + 1, lines)
end

local function children(lines, task, snap, opts)
  local list = {}
  for _, t in ipairs(snap.tasks) do
    if t.parent == task.id and t.id ~= task.id then list[#list + 1] = t end
  end
  section(lines, format("Children (%d)", #list), opts)
  if #list == 0 then
    lines[#lines + 1] = "  (none)"
    return
  end
  table.sort(list, function(x, y) return x.id < y.id end)
  for _, t in ipairs(list) do
    local total = util.task_times(t, snap.t)
    lines[#lines + 1] = format("  %-4s %s  %s", util.state_label(t.state), util.task_ref(t),
      duration(total, opts.ascii))
  end
end

--- Render the detail of one task.
-- @tparam table snap snapshot
-- @tparam table opts `id` (task id, required), `width` (80), `color`, `ascii`
-- @treturn {string,...} lines (the caller scrolls them)
-- @usage local lines = detail.render(snap, {id=3, width=80})
function M.render(snap, opts)
  util.check_snapshot(snap, "render")
  util.check(opts, "table", 2, "render")
  local width = opts.width or 80
  local id = opts.id
  local by = util.index(snap)
  local task = id and by[id]
  local lines = {}
  if not task then
    lines[1] = id and format("Task #%s is not in this snapshot (finished and evicted?)",
      tostring(id)) or "No task selected: pick one in the Tasks view and press enter."
    return lines
  end
  local title = format("Task #%d %s", task.id, sanitize(task.name or ""))
  local state = util.state_label(task.state)
  lines[1] = util.paint(util.pad(title, width - #state - 1) .. " ", "bold", opts.color)
    .. util.paint(state, util.state_style(task.state), opts.color)
  lines[2] = util.chars(opts.ascii).h:rep(width)
  figures(lines, task, by, snap, opts)
  if task.error or task.traceback then
    section(lines, "Error", opts)
    text_lines(lines, task.error, "  ")
    text_lines(lines, task.traceback, "  ")
  end
  where(lines, task, snap, opts)
  histogram(lines, M.resume_times(snap.events, task.id), opts)
  await_section(lines, M.await_points(snap.events, task.id, snap.t), opts)
  resource_section(lines, task.id, snap, opts)
  warning_section(lines, task.id, snap, opts)
  children(lines, task, snap, opts)
  for i, l in ipairs(lines) do
    if util.width(l) > width then
      lines[i] = l:find("\27", 1, true) and util.fit(l, width) or util.truncate(l, width, opts)
    end
  end
  return lines
end

return setmetatable(M, { __call = function(_, ...) return M.render(...) end })

--- Concurrency view: a Gantt chart of tasks over time, for the terminal.
--
-- One row per task, ordered by start (creation time). Time runs across the
-- width; each cell shows what the task was doing in that slice of time,
-- built from the snapshot's events: resume..yield is running, yield..resume
-- suspended, creation..first resume pending, after the end finished.
-- Inspection points and abnormal ends are marked on top.
--
-- The rasteriser (`raster`) and the time axis helpers (`ticks`,
-- `tick_label`) are public because the HTML report draws the same timeline
-- as SVG from the same cells.
-- @module async_inspect.views.gantt

local util = require("async_inspect.export.util")

local M = {}

local ns = util.ns
local floor = math.floor

-- Cell states, in priority order: when several states share one cell the
-- highest wins, so a short run inside a long wait is never hidden.
local NONE, FIN, PEND, ACTIVE, SUSP, RUN = 0, 1, 2, 3, 4, 5
M.NONE, M.FINISHED, M.PENDING, M.ACTIVE, M.SUSPENDED, M.RUNNING =
  NONE, FIN, PEND, ACTIVE, SUSP, RUN

--- Names of the cell states (index = state number).
M.STATE_NAMES = { [NONE] = "none", [FIN] = "finished", [PEND] = "pending",
  [ACTIVE] = "active", [SUSP] = "suspended", [RUN] = "running" }

local GLYPHS = {
  unicode = { [NONE] = " ", [FIN] = "·", [PEND] = "┈", [ACTIVE] = "▒",
    [SUSP] = "░", [RUN] = "█", point = "◆", failed = "✗", cancelled = "⊘",
    dropped = "⊘", bar = "│", axis = "─", tick = "┬", left = "└", right = "┘",
    more = "…" },
  ascii = { [NONE] = " ", [FIN] = ".", [PEND] = ":", [ACTIVE] = "=",
    [SUSP] = "-", [RUN] = "#", point = "*", failed = "X", cancelled = "/",
    dropped = "/", bar = "|", axis = "-", tick = "+", left = "+", right = "+",
    more = "~" },
}

local COLORS = { [FIN] = "\27[2m", [PEND] = "\27[36m", [ACTIVE] = "\27[34m",
  [SUSP] = "\27[33m", [RUN] = "\27[32m", point = "\27[1;35m",
  failed = "\27[1;31m", cancelled = "\27[1;31m", dropped = "\27[1;31m" }
local RESET = "\27[0m"

local END_MARK = { fail = "failed", cancel = "cancelled", drop = "dropped" }
local RECORD_END_MARK = { failed = "failed", cancelled = "cancelled",
  dropped = "dropped" }
local RECORD_STATE = { running = RUN, normal = RUN, suspended = SUSP,
  pending = PEND }

--- Rasterise task timelines into cells.
-- Returns a sink: feed it every event (in order) with `r.feed(seq, t, task,
-- kind, loc, other, detail)`, then call `r.finish(t_end)`. Tasks that
-- received no event at all are drawn from their records alone (creation,
-- first resume, last change, end), with `ACTIVE` where the records cannot
-- tell running from suspended.
-- @tparam table tasks array of task records, one row each, in row order
-- @tparam integer from window start (ns)
-- @tparam integer to window end (ns)
-- @tparam integer cells number of cells across the window
-- @treturn table sink with `feed`, `finish` and `rows` (array of
--   `{task=, cells={state...}, marks={false or "point"|"failed"|"cancelled"|"dropped"...}}`,
--   both arrays with one entry per cell)
function M.raster(tasks, from, to, cells)
  local span = to - from
  if span <= 0 then span = 1 end
  local rows, by_id = {}, {}
  for i, task in ipairs(tasks) do
    -- Both arrays are allocated in full up front: memory depends on rows
    -- and cells only, never on how many events are fed.
    local c, m = {}, {}
    for j = 1, cells do c[j] = NONE; m[j] = false end
    rows[i] = { task = task, cells = c, marks = m }
    by_id[task.id] = rows[i]
  end

  local function cell(t)
    local c = (t - from) * cells // span + 1
    if c < 1 then return 1 end
    if c > cells then return cells end
    return floor(c)
  end

  -- Paint [a, b) with state st, keeping the higher-priority state per cell.
  local function paint(row, a, b, st)
    if not a or not b or b <= a or b <= from or a > to then return end
    if a < from then a = from end
    if b > to + 1 then b = to + 1 end
    local c = row.cells
    for i = cell(a), cell(b - 1) do
      if c[i] < st then c[i] = st end
    end
  end

  local function mark(row, t, what)
    if t and t >= from and t <= to then row.marks[cell(t)] = what end
  end

  local cur, since, seen = {}, {}, {}
  local r = { rows = rows }

  function r.feed(_, t, id, kind)
    local row = by_id[id]
    if not row then return end
    t = ns(t)
    seen[id] = true
    local st = cur[id]
    if kind == "point" then mark(row, t, "point"); return end
    if kind == "name" then return end
    -- Unknown history (events lost to ring overflow) stays blank: `st` nil.
    if st then paint(row, since[id], t, st) end
    if kind == "spawn" then cur[id] = PEND
    elseif kind == "resume" then cur[id] = RUN
    elseif kind == "yield" then cur[id] = SUSP
    elseif kind == "complete" or END_MARK[kind] then
      cur[id] = FIN
      if END_MARK[kind] then mark(row, t, END_MARK[kind]) end
    else
      return
    end
    since[id] = t
  end

  -- A task without any event: approximate from its record.
  local function from_record(row, t_end)
    local task = row.task
    local created, first = ns(task.created), ns(task.first_resume)
    local ended, changed = ns(task.ended), ns(task.last_change)
    paint(row, created, first or ended or t_end, PEND)
    if first then
      if ended then
        paint(row, first, ended, ACTIVE)
      else
        local now = RECORD_STATE[task.state] or ACTIVE
        paint(row, first, changed or t_end, ACTIVE)
        paint(row, changed or first, t_end, now)
      end
    end
    if ended then
      paint(row, ended, t_end, FIN)
      if RECORD_END_MARK[task.state] then mark(row, ended, RECORD_END_MARK[task.state]) end
    end
  end

  function r.finish(t_end)
    t_end = ns(t_end) or to
    if t_end < to then t_end = to end
    for _, row in ipairs(rows) do
      local id = row.task.id
      if seen[id] then
        if cur[id] then paint(row, since[id], t_end + 1, cur[id]) end
      else
        from_record(row, t_end + 1)
      end
    end
    return rows
  end
  return r
end

local UNITS = { { 1, "ns" }, { 1e3, "µs", "us" }, { 1e6, "ms" }, { 1e9, "s" } }

--- Nice tick positions for a time axis.
-- @tparam integer from ns
-- @tparam integer to ns
-- @tparam integer cells number of cells across
-- @tparam[opt=10] integer spacing minimum cells between two ticks
-- @treturn table array of `{t=ns, cell=index}`
-- @treturn integer step between ticks in ns
function M.ticks(from, to, cells, spacing)
  spacing = spacing or 10
  local span = math.max(to - from, 1)
  local want = math.max(1, cells // spacing)
  local raw = span / want
  local mag = 10 ^ floor(math.log(raw, 10))
  local step
  for _, m in ipairs({ 1, 2, 5, 10 }) do
    step = m * mag
    if step >= raw then break end
  end
  step = math.max(1, floor(step + 0.5))
  local out = {}
  local t = -(-from // step) * step
  while t <= to do
    local c = floor((t - from) * cells / span) + 1
    if c > cells then c = cells end
    out[#out + 1] = { t = t, cell = c }
    t = t + step
  end
  return out, step
end

--- The unit to label an axis whose ticks are `step` ns apart.
-- @tparam integer step ns
-- @tparam[opt] boolean ascii "us" instead of "µs"
-- @treturn number divisor
-- @treturn string unit name
-- @treturn integer decimals needed
function M.axis_unit(step, ascii)
  local u = UNITS[1]
  for _, cand in ipairs(UNITS) do
    if step >= cand[1] then u = cand end
  end
  local decimals = 0
  local x = step / u[1]
  while x < 1 - 1e-9 and decimals < 9 do x = x * 10; decimals = decimals + 1 end
  -- Steps like 2.5 need one more digit than their magnitude says.
  if math.abs(x - floor(x + 0.5)) > 1e-6 then decimals = decimals + 1 end
  return u[1], (ascii and u[3]) or u[2], decimals
end

--- Label of one tick in the axis unit.
-- @tparam integer t ns
-- @tparam number div unit divisor from `axis_unit`
-- @tparam integer decimals from `axis_unit`
-- @treturn string
function M.tick_label(t, div, decimals)
  return ("%." .. decimals .. "f"):format(t / div)
end

-- Display length of a UTF-8 string (code points; bytes when invalid).
local function dlen(s)
  return utf8.len(s) or #s
end

-- A task name made safe for a terminal: control characters (escape
-- sequences, line breaks) become "?", invalid UTF-8 becomes U+FFFD, and in
-- ASCII mode every non-ASCII character becomes "?".
local function printable(name, ascii)
  local s = tostring(name):gsub("%c", "?")
  if ascii then return (s:gsub("[\128-\191]*[\192-\255][\128-\191]*", "?"):gsub("[\128-\255]", "?")) end
  return util.utf8_clean(s)
end

-- Cut or pad a string to exactly n display cells.
local function fit(s, n, more)
  local len = dlen(s)
  if len > n then
    if not utf8.len(s) then return s:sub(1, n - 1) .. more end
    return s:sub(1, utf8.offset(s, n) - 1) .. more
  end
  return s .. (" "):rep(n - len)
end

local function pick_tasks(snapshot, opts)
  local filter = opts.filter
  local out = {}
  for _, task in ipairs(snapshot.tasks or {}) do
    local keep = true
    if type(filter) == "function" then
      keep = filter(task)
    elseif type(filter) == "string" then
      keep = tostring(task.name or ""):find(filter) ~= nil
    end
    if keep then out[#out + 1] = task end
  end
  return util.by_start(out)
end

-- The time window: explicit options, else the span of the chosen tasks.
local function window(snapshot, tasks, opts)
  local to = ns(opts.to) or ns(snapshot.t)
  local from = ns(opts.from)
  if not to then
    to = 0
    for _, e in ipairs(snapshot.events or {}) do
      if e.t > to then to = ns(e.t) end
    end
    for _, task in ipairs(tasks) do
      to = math.max(to, ns(task.last_change) or 0, ns(task.ended) or 0)
    end
  end
  if not from then
    from = to
    for _, task in ipairs(tasks) do
      local c = ns(task.created) or 0
      if c < from then from = c end
    end
    if #tasks == 0 then from = 0 end
  end
  return from, to
end

local function overlaps(task, from, to)
  local created = ns(task.created) or 0
  local ended = ns(task.ended)
  return created <= to and (ended == nil or ended >= from)
end

local function glyph_of(row, i, g)
  local m = row.marks[i]
  if m then return g[m], m end
  local st = row.cells[i]
  return g[st], st
end

-- Render one row's cells, colouring runs of the same glyph together.
local function render_cells(row, cells, g, color)
  local parts = {}
  if not color then
    for i = 1, cells do parts[i] = (glyph_of(row, i, g)) end
    return table.concat(parts)
  end
  local i = 1
  while i <= cells do
    local gl, key = glyph_of(row, i, g)
    local j = i
    while j < cells do
      local g2, k2 = glyph_of(row, j + 1, g)
      if g2 ~= gl or k2 ~= key then break end
      j = j + 1
    end
    local run = gl:rep(j - i + 1)
    local c = COLORS[key]
    parts[#parts + 1] = c and (c .. run .. RESET) or run
    i = j + 1
  end
  return table.concat(parts)
end

local function axis_lines(from, to, cells, label_w, g, ascii)
  local ticks, step = M.ticks(from, to, cells, 8)
  local div, unit, decimals = M.axis_unit(step, ascii)
  local bar = {}
  for i = 1, cells do bar[i] = g.axis end
  local labels = {}
  for i = 1, cells + 8 do labels[i] = " " end
  local free = 1 -- first label position still free
  for _, tk in ipairs(ticks) do
    bar[tk.cell] = g.tick
    local text = M.tick_label(tk.t, div, decimals)
    local pos = tk.cell + 1 -- +1: the left corner takes a column
    if pos >= free and pos + #text - 1 <= cells + 2 then
      for k = 1, #text do labels[pos + k - 1] = text:sub(k, k) end
      free = pos + #text + 1
    end
  end
  local pad = (" "):rep(label_w + 1)
  local caption = fit(("time (%s)"):format(unit), label_w, g.more)
  return {
    pad .. g.left .. table.concat(bar) .. g.right,
    caption .. " " .. (table.concat(labels):gsub("%s+$", "")),
  }
end

local function legend(g, color, used)
  local items = {
    { RUN, "running" }, { SUSP, "suspended" }, { PEND, "pending" },
    { FIN, "finished" }, { "point", "point" }, { "failed", "failed" },
    { "cancelled", "cancelled/dropped" },
  }
  if used[ACTIVE] then table.insert(items, 4, { ACTIVE, "active (no event detail)" }) end
  local parts = {}
  for _, it in ipairs(items) do
    local gl = g[it[1]]
    if color and COLORS[it[1]] then gl = COLORS[it[1]] .. gl .. RESET end
    parts[#parts + 1] = gl .. " " .. it[2]
  end
  return "legend: " .. table.concat(parts, "  ")
end

local function check_opts(snapshot, opts)
  if type(snapshot) ~= "table" then
    error(("bad argument #1 to 'gantt' (snapshot table expected, got %s)"):format(type(snapshot)), 3)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #2 to 'gantt' (table expected, got %s)"):format(type(opts)), 3)
  end
  opts = opts or {}
  local f = opts.filter
  if f ~= nil and type(f) ~= "string" and type(f) ~= "function" then
    error("bad argument #2 to 'gantt' (filter must be a string pattern or a function)", 3)
  end
  if type(f) == "string" and not pcall(string.find, "", f) then
    error(("bad argument #2 to 'gantt' (malformed filter pattern %q)"):format(f), 3)
  end
  for _, k in ipairs({ "from", "to", "width", "limit" }) do
    if opts[k] ~= nil and type(opts[k]) ~= "number" then
      error(("bad argument #2 to 'gantt' (%s must be a number)"):format(k), 3)
    end
  end
  if opts.from and opts.to and opts.to <= opts.from then
    error("bad argument #2 to 'gantt' (to must be greater than from)", 3)
  end
  return opts
end

--- Render the Gantt chart of a snapshot.
-- @tparam table snapshot `{t=, tasks=, events=, stats=}` as from
--   `ai.snapshot{events=true}` (without events the chart is drawn from the
--   task records alone, coarsely)
-- @tparam[opt] table opts
--   `from`, `to` (ns window; default: first task creation .. snapshot.t),
--   `filter` (Lua pattern matched against the task name, or a function
--   `task -> boolean`), `width` (total columns, default 80),
--   `limit` (maximum rows), `color` (ANSI colours), `ascii` (no Unicode)
-- @treturn table array of lines
-- @usage for _, l in ipairs(gantt(ai.snapshot{events=true}, {width=100})) do print(l) end
function M.gantt(snapshot, opts)
  opts = check_opts(snapshot, opts)
  local g = opts.ascii and GLYPHS.ascii or GLYPHS.unicode
  local width = floor(opts.width or 80)
  local label_w = math.max(8, math.min(28, width // 4))
  local state_w = 10
  local cells = math.max(10, width - label_w - 3 - state_w)

  local tasks = pick_tasks(snapshot, opts)
  local from, to = window(snapshot, tasks, opts)
  if to <= from then to = from + 1 end
  local shown = {}
  for _, task in ipairs(tasks) do
    if overlaps(task, from, to) then shown[#shown + 1] = task end
  end
  local total = #shown
  if opts.limit and #shown > opts.limit then
    for i = #shown, floor(opts.limit) + 1, -1 do shown[i] = nil end
  end

  local r = M.raster(shown, from, to, cells)
  for _, e in ipairs(snapshot.events or {}) do
    r.feed(e.seq, e.t, e.task, e.kind, e.loc, e.other, e.detail)
  end
  r.finish(snapshot.t or to)

  local lines = {}
  lines[1] = ("tasks %d of %d  window %s .. %s  (1 cell = %s)"):format(
    #shown, #(snapshot.tasks or {}), util.human_ns(from, opts.ascii),
    util.human_ns(to, opts.ascii), util.human_ns((to - from) / cells, opts.ascii))
  if not snapshot.events then
    lines[#lines + 1] = "(snapshot without events: drawn from task records only)"
  elseif snapshot.stats and (snapshot.stats.events_dropped or 0) > 0 then
    lines[#lines + 1] = ("(%d early events were overwritten: older history is blank)")
      :format(snapshot.stats.events_dropped)
  end
  if #shown == 0 then
    lines[#lines + 1] = "(no tasks in this window)"
    return lines
  end
  local used = {}
  for _, row in ipairs(r.rows) do
    local task = row.task
    for i = 1, cells do used[row.cells[i]] = true end
    local label = fit(("#%d %s"):format(task.id, printable(task.name or "?", opts.ascii)),
      label_w, g.more)
    lines[#lines + 1] = label .. " " .. g.bar .. render_cells(row, cells, g, opts.color)
      .. g.bar .. " " .. fit(tostring(task.state or "?"), state_w - 1, g.more)
  end
  if total > #shown then
    lines[#lines + 1] = ("(%d more tasks not shown)"):format(total - #shown)
  end
  for _, l in ipairs(axis_lines(from, to, cells, label_w, g, opts.ascii)) do
    lines[#lines + 1] = l
  end
  lines[#lines + 1] = legend(g, opts.color, used)
  return lines
end

return setmetatable(M, { __call = function(_, ...) return M.gantt(...) end })

--- The profile report: run summary, latency percentiles with sparklines, hot paths, the
-- busiest tasks, long polls, lints with recommendations; and the comparison of two runs.
--
-- Pure: a profile (from `async_inspect.profile.analyze`, or its saved form for `compare`)
-- and view options in, lines out.
-- @module async_inspect.views.profile

local util = require("async_inspect.views.util")
local warnings_view = require("async_inspect.views.warnings")

local M = {}

local format, floor, max, min, log = string.format, math.floor, math.max, math.min, math.log
local sanitize, duration, pad = util.sanitize, util.duration, util.pad

local function check_profile(prof, fname)
  if type(prof) ~= "table" or type(prof.run) ~= "table" or type(prof.dist) ~= "table" then
    error(format("bad argument #1 to '%s' (profile expected, got %s)", fname,
      type(prof) == "table" and "another table" or type(prof)), 3)
  end
end

--- A count with thousands separators: `12,345`.
-- @tparam number n
-- @treturn string
function M.count(n)
  if type(n) ~= "number" then return "-" end
  local s = tostring(floor(n))
  local sign, digits = s:match("^(%-?)(%d+)$")
  if not digits then return s end
  return sign .. digits:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
end

--- A percentage with one decimal: `43.4%`.
-- @tparam number share 0..1
-- @treturn string
function M.percent(share)
  return format("%.1f%%", (share or 0) * 100)
end

--- The shape of a distribution: its quantile curve on a log scale, one character a point,
-- from the lowest to the highest value.
-- @tparam {number,...}|nil curve values at increasing quantiles
-- @tparam[opt] boolean ascii
-- @treturn string
function M.curve(curve, ascii)
  if type(curve) ~= "table" or #curve == 0 then return "" end
  local chars = util.chars(ascii).spark
  local lo, hi = math.huge, -math.huge
  local logs = {}
  for i, v in ipairs(curve) do
    logs[i] = log(max(1, v))
    lo, hi = min(lo, logs[i]), max(hi, logs[i])
  end
  local out = {}
  for i, l in ipairs(logs) do
    local k = hi > lo and floor((l - lo) / (hi - lo) * (#chars - 1) + 0.5) + 1 or 1
    out[i] = chars[k]
  end
  return table.concat(out)
end

-- sections -----------------------------------------------------------------------------------

local function header(prof, lines, opts)
  local r = prof.run
  local live = (r.live and r.live > 0) and format(" (%s live)", M.count(r.live)) or ""
  local function add(text)
    for _, l in ipairs(util.wrap(text, opts.width, "  ")) do lines[#lines + 1] = l end
  end
  add(format("Profile: run %s, %s tasks%s, %s resumes, busy %s (%s of the run), "
    .. "%s long poll%s", duration(r.duration, opts.ascii), M.count(r.tasks), live,
    M.count(r.resumes), duration(r.busy, opts.ascii),
    M.percent(r.duration > 0 and (r.busy or 0) / r.duration or 0), M.count(r.long_polls),
    r.long_polls == 1 and "" or "s"))
  if not r.has_events then
    add("note: no events in this snapshot; waits per await point and poll distributions per "
      .. "task name are not available.")
  elseif (r.events_dropped or 0) > 0 then
    add(format("note: the timeline dropped %s old events (ring full); figures per await point "
      .. "cover the rest, totals per task come from the records and are exact.",
      M.count(r.events_dropped)))
  end
  if (r.evicted or 0) > 0 then
    add(format("note: %s finished task records were evicted (max_tasks).", M.count(r.evicted)))
  end
end

local function title(lines, text, opts)
  lines[#lines + 1] = ""
  lines[#lines + 1] = util.paint(text, "bold", opts.color)
end

local QCOLS = { { "count", 8 }, { "p50", 8 }, { "p90", 8 }, { "p99", 8 }, { "p99.9", 8 },
                { "max", 8 } }

local function dist_row(label, d, w, ascii, shape)
  local cells = { pad(sanitize(label), w, nil, { ascii = ascii }) }
  if d == nil then
    cells[2] = pad("(none)", 8, "right")
    return table.concat(cells, " ")
  end
  cells[#cells + 1] = pad(M.count(d.count), 8, "right")
  for _, k in ipairs({ "p50", "p90", "p99", "p999", "max" }) do
    cells[#cells + 1] = pad(duration(d[k], ascii), 8, "right")
  end
  if shape then cells[#cells + 1] = " " .. M.curve(d.curve, ascii) end
  return table.concat(cells, " ")
end

--- The rows of the percentiles table: `{label, summary}` for every distribution of the
-- profile (all resumes, task lifetimes, polls per task name, waits per await point, lock
-- waits), in display order.
-- @tparam table prof a profile
-- @tparam[opt] integer limit rows per kind (default 10)
-- @treturn {table,...}
function M.distribution_rows(prof, limit)
  check_profile(prof, "distribution_rows")
  limit = limit or 10
  local rows = {
    { "resume (every poll)", prof.dist.resume },
    { "task lifetime", prof.dist.lifetime },
  }
  local n = 0
  for _, g in ipairs(prof.names or {}) do
    if g.poll and n < limit then
      rows[#rows + 1] = { "poll  " .. g.name, g.poll }
      n = n + 1
    end
  end
  n = 0
  for _, g in ipairs(prof.names or {}) do
    if g.lifetime and g.lifetime.count > 0 and n < limit then
      rows[#rows + 1] = { "life  " .. g.name, g.lifetime }
      n = n + 1
    end
  end
  n = 0
  for _, p in ipairs(prof.points or {}) do
    if p.dist and n < limit then
      rows[#rows + 1] = { "wait  " .. (p.name or "?"), p.dist }
      n = n + 1
    end
  end
  for _, l in ipairs(prof.locks or {}) do
    if l.dist then rows[#rows + 1] = { "lock  " .. tostring(l.name), l.dist } end
  end
  return rows
end

local function percentiles(prof, lines, opts)
  local width = opts.width
  -- the shape column goes first when the labels would get too narrow
  local shape = width - (6 * 9 + 16) >= 24
  local w = max(12, width - 6 * 9 - (shape and 16 or 0))
  title(lines, "Latency percentiles", opts)
  local head = { pad("", w) }
  for _, c in ipairs(QCOLS) do head[#head + 1] = pad(c[1], c[2], "right") end
  if shape then head[#head + 1] = " shape" end
  lines[#lines + 1] = table.concat(head, " ")
  for _, row in ipairs(M.distribution_rows(prof, opts.top)) do
    lines[#lines + 1] = dist_row(row[1], row[2], w, opts.ascii, shape)
  end
  local note = "(poll = one resume, life = created to ended, wait = yield to the next resume"
    .. (shape and "; shape = the quantiles from p5 to the max, log scale)" or ")")
  for _, l in ipairs(util.wrap(note, width - 2, " ")) do lines[#lines + 1] = "  " .. l end
end

-- a row of cells padded to display widths (durations hold multi-byte `µ`): each spec is
-- `{text, width, align}`, joined by spaces after an indent of two
local function row(opts, cells)
  local out = {}
  for i, c in ipairs(cells) do out[i] = pad(c[1], c[2], c[3], opts) end
  return "  " .. table.concat(out, " ")
end

local function ranking(lines, list, what, opts)
  if #list == 0 then
    lines[#lines + 1] = "  (none)"
    return
  end
  local barw = 20
  for _, r in ipairs(list) do
    local count = r.count and format(" (%s)", M.count(r.count)) or ""
    local text = sanitize(r.name) .. count
    local line = row(opts, { { duration(r.total, opts.ascii), 7, "right" },
      { M.percent(r.share), 6, "right" }, { util.bar(r.share, barw, opts.ascii), barw },
      { text, util.width(text) } })
    lines[#lines + 1] = util.truncate(line, opts.width, opts)
  end
  if what then lines[#lines + 1] = what end
end

local function hot_paths(prof, lines, opts)
  local hot = prof.hot or {}
  local run = duration(prof.run.duration, opts.ascii)
  title(lines, format("Hot paths: task names by busy time (share of the %s run)", run), opts)
  ranking(lines, hot.names_by_busy or {}, nil, opts)
  title(lines, "Hot paths: task names by time suspended (share of all suspended time)", opts)
  ranking(lines, hot.names_by_wait or {}, nil, opts)
  title(lines, "Hot paths: await points by wait time (share of all waiting)", opts)
  ranking(lines, hot.points_by_wait or {}, nil, opts)
  title(lines, format("Hot paths: await points by busy time before them (share of the %s run)",
    run), opts)
  ranking(lines, hot.points_by_busy or {}, nil, opts)
end

local function tasks(prof, lines, opts)
  local list = prof.top_tasks or {}
  title(lines, "Busiest tasks", opts)
  if #list == 0 then
    lines[#lines + 1] = "  (none)"
    return
  end
  local w = max(10, opts.width - 64)
  local function cells(id, name, st, busy, self, susp, wall, resumes, maxp)
    return row(opts, { { id, 6, "right" }, { name, w }, { st, 4 }, { busy, 7, "right" },
      { self, 7, "right" }, { susp, 7, "right" }, { wall, 7, "right" },
      { resumes, 7, "right" }, { maxp, 8, "right" } })
  end
  lines[#lines + 1] = cells("id", "name", "st", "busy", "self", "susp", "wall", "resumes",
    "max poll")
  local a = opts.ascii
  for i = 1, min(opts.top, #list) do
    local t = list[i]
    lines[#lines + 1] = cells("#" .. t.id, sanitize(t.name), util.state_label(t.state),
      duration(t.busy, a), duration(t.self_busy, a), duration(t.suspended, a),
      duration(t.wall, a) .. (t.live and "+" or ""), M.count(t.resumes), duration(t.max_poll, a))
  end
  lines[#lines + 1] = "  (wall: created to ended; + marks a live task, still growing)"
end

local function locks(prof, lines, opts)
  local list = prof.locks or {}
  if #list == 0 then return end
  title(lines, "Locks and channels by wait time", opts)
  local function cells(name, kind, acq, cont, waited, mean, longest)
    return row(opts, { { name, 24 }, { kind, 9 }, { acq, 9, "right" }, { cont, 9, "right" },
      { waited, 8, "right" }, { mean, 8, "right" }, { longest, 8, "right" } })
  end
  lines[#lines + 1] = cells("name", "kind", "acquired", "contended", "waited", "mean", "max")
  local a = opts.ascii
  for _, l in ipairs(list) do
    lines[#lines + 1] = cells(sanitize(l.name), sanitize(l.kind or "?"), M.count(l.acquisitions),
      M.count(l.contended), duration(l.wait, a), duration(l.wait_mean, a), duration(l.wait_max, a))
  end
end

local function end_text(p)
  if p.ended == "yield" then return "yielded at " .. sanitize(p.loc or "?") end
  if p.ended == "fail" then return "raised" .. (p.loc and (" at " .. sanitize(p.loc)) or "") end
  return "returned"
end

local function long_polls(prof, lines, opts)
  local list = prof.long_polls or {}
  local th = prof.thresholds and prof.thresholds.long_poll_ms
  title(lines, format("Long polls (single resumes over %s): %s", duration((th or 10) * 1e6),
    M.count(max(#list, prof.run.long_polls or 0))), opts)
  if #list == 0 then
    lines[#lines + 1] = "  (none)"
    return
  end
  for i = 1, min(opts.top, #list) do
    local p = list[i]
    local label = p.label and (" [" .. sanitize(p.label) .. "]") or ""
    local text = format("%s  %s%s  (started %s)", util.task_ref({ id = p.task, name = p.name }),
      end_text(p), label, util.timestamp(p.t))
    lines[#lines + 1] = util.truncate(row(opts, { { duration(p.duration, opts.ascii), 7, "right" },
      { " " .. text, util.width(text) + 1 } }), opts.width, opts)
  end
  local hidden = max(#list, prof.run.long_polls or 0) - min(opts.top, #list)
  if hidden > 0 then lines[#lines + 1] = format("  ... and %s more", M.count(hidden)) end
end

local function lints(prof, lines, opts)
  title(lines, "Lints and recommendations", opts)
  local snap = { t = prof.run.duration or 0, tasks = {}, warnings = prof.warnings or {} }
  for _, l in ipairs(warnings_view.render(snap, opts)) do lines[#lines + 1] = l end
end

--- Render a profile as the report's lines.
-- @tparam table prof a profile from `async_inspect.profile.analyze` or `collect`
-- @tparam[opt] table opts `width` (100), `top` (rows per section, 10), `ascii`, `color`
-- @treturn {string,...} lines
-- @usage print(table.concat(views.profile.render(ai.profile.collect()), "\n"))
function M.render(prof, opts)
  check_profile(prof, "render")
  util.check(opts, "table", 2, "render", true)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.width = o.width or 100
  o.top = o.top or 10
  local lines = {}
  header(prof, lines, o)
  percentiles(prof, lines, o)
  hot_paths(prof, lines, o)
  tasks(prof, lines, o)
  locks(prof, lines, o)
  long_polls(prof, lines, o)
  lints(prof, lines, o)
  for i, l in ipairs(lines) do
    if util.width(l) > o.width then lines[i] = util.fit(l, o.width) end
  end
  return lines
end

-- comparison -----------------------------------------------------------------------------------

local SCOPE = { run = "run", name = "task", point = "await", lock = "lock" }

local function change_line(c, opts)
  local key = c.scope == "run" and "" or (" " .. sanitize(c.key))
  return format("  %+7.1f%%  %-5s %-14s %8s -> %-8s%s", c.pct, SCOPE[c.scope] or c.scope,
    c.what, duration(c.a, opts.ascii), duration(c.b, opts.ascii), key)
end

local function describe(side)
  local r = side.run or {}
  return format("%s (%s, %s tasks)", sanitize(tostring(side.label)), duration(r.duration),
    M.count(r.tasks))
end

--- Render a comparison of two runs (from `async_inspect.profile.compare`).
-- @tparam table cmp `{regressions=, improvements=, only_a=, only_b=, compared=, a=, b=}`
-- @tparam[opt] table opts `ascii`, `threshold` (shown in the headings)
-- @treturn {string,...} lines
function M.compare(cmp, opts)
  if type(cmp) ~= "table" or type(cmp.regressions) ~= "table" then
    error(format("bad argument #1 to 'compare' (comparison expected, got %s)",
      type(cmp) == "table" and "another table" or type(cmp)), 2)
  end
  util.check(opts, "table", 2, "compare", true)
  opts = opts or {}
  local th = cmp.threshold or opts.threshold or 10
  local lines = { format("Profile comparison: %s -> %s", describe(cmp.a or {}), describe(cmp.b or {})) }
  lines[#lines + 1] = format("Regressions (%g%% slower or more): %d", th, #cmp.regressions)
  for _, c in ipairs(cmp.regressions) do lines[#lines + 1] = change_line(c, opts) end
  lines[#lines + 1] = format("Improvements (%g%% faster or more): %d", th, #cmp.improvements)
  for _, c in ipairs(cmp.improvements) do lines[#lines + 1] = change_line(c, opts) end
  for _, side in ipairs({ { "only_a", "Only in the first run" }, { "only_b", "Only in the second run" } }) do
    local list = cmp[side[1]] or {}
    if #list > 0 then
      lines[#lines + 1] = side[2] .. ":"
      for _, x in ipairs(list) do
        lines[#lines + 1] = format("  %-5s %s", SCOPE[x.scope] or x.scope, sanitize(x.key))
      end
    end
  end
  local changed = #cmp.regressions + #cmp.improvements
  lines[#lines + 1] = format("%d figures compared, %d within %g%%.", cmp.compared or 0,
    (cmp.compared or 0) - changed, th)
  return lines
end

return M

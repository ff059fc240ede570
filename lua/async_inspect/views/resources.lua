--- Resources (locks, semaphores, channels, events): holders, waiters and contention, with
-- deadlocked ones first and highlighted, and the deadlock cycles of the snapshot on top.
--
-- Pure: a snapshot and view options in, lines out.
-- @module async_inspect.views.resources

local util = require("async_inspect.views.util")

local M = {}

local sanitize, duration = util.sanitize, util.duration
local format = string.format

--- Resources in display order: deadlocked first, then by number of waiters, then by
-- contended acquisitions, then by name.
-- @tparam table snap snapshot
-- @treturn {table,...} the snapshot's resource tables
function M.rows(snap)
  util.check_snapshot(snap, "rows")
  local list = {}
  for _, r in ipairs(snap.resources or {}) do list[#list + 1] = r end
  table.sort(list, function(a, b)
    if (a.deadlocked and 1 or 0) ~= (b.deadlocked and 1 or 0) then return a.deadlocked end
    local wa, wb = #(a.waiters or {}), #(b.waiters or {})
    if wa ~= wb then return wa > wb end
    if (a.contended or 0) ~= (b.contended or 0) then return (a.contended or 0) > (b.contended or 0) end
    if tostring(a.name) ~= tostring(b.name) then return tostring(a.name) < tostring(b.name) end
    return (tonumber(a.id) or 0) < (tonumber(b.id) or 0)
  end)
  return list
end

local function who(id, by)
  return util.task_ref(by[id], id)
end

local function party(p, by, now, opts)
  local mode = p.mode and (" " .. sanitize(p.mode)) or ""
  local count = (p.count and p.count > 1) and (" x" .. p.count) or ""
  return format("%s%s%s for %s at %s", who(p.task, by), mode, count,
    duration(now - (p.since or now), opts.ascii), sanitize(p.at or "?"))
end

local function header(r, opts)
  local name = sanitize(r.name or ("#" .. tostring(r.id)))
  local acq, cont = r.acquisitions or 0, r.contended or 0
  local pct = acq > 0 and format(" (%.0f%%)", cont * 100 / acq) or ""
  local extra = {}
  if r.capacity then extra[#extra + 1] = "capacity " .. tostring(r.capacity) end
  if r.size then extra[#extra + 1] = "size " .. tostring(r.size) end
  if r.closed then extra[#extra + 1] = "closed" end
  local tail = #extra > 0 and ("  " .. table.concat(extra, ", ")) or ""
  local head = format("%s %s  acquired %d, contended %d%s, wait total %s max %s%s",
    sanitize(r.kind or "?"), name, acq, cont, pct, duration(r.wait_total, opts.ascii),
    duration(r.wait_max, opts.ascii), tail)
  if r.deadlocked then
    return util.paint(util.paint("DEADLOCK ", "red", opts.color) .. head, "bold", opts.color)
  end
  return head
end

local function cycles(lines, snap, by, opts)
  local list = snap.deadlocks or {}
  if #list == 0 then return end
  lines[#lines + 1] = util.paint(format("Deadlocks (%d)", #list), "red", opts.color)
  for i, d in ipairs(list) do
    lines[#lines + 1] = format(" cycle %d at %s:", i, util.timestamp(d.t))
    for _, e in ipairs(d.tasks or {}) do
      lines[#lines + 1] = format("   %s waits for %s at %s, held by %s (acquired at %s) for %s",
        who(e.task, by), sanitize(e.waits_for or "?"), sanitize(e.at or "?"),
        who(e.held_by, by), sanitize(e.acquired_at or "?"), duration(e.waited, opts.ascii))
    end
  end
  lines[#lines + 1] = ""
end

--- Render the resources.
-- @tparam table snap snapshot
-- @tparam[opt] table opts `width` (80), `color`, `ascii`
-- @treturn {string,...} lines (the caller scrolls them)
-- @usage local lines = resources.render(snap, {width=80, color=true})
function M.render(snap, opts)
  util.check_snapshot(snap, "render")
  util.check(opts, "table", 2, "render", true)
  opts = opts or {}
  local width = opts.width or 80
  local by = util.index(snap)
  local lines = {}
  cycles(lines, snap, by, opts)
  local list = M.rows(snap)
  if #list == 0 then
    lines[#lines + 1] = snap.resources and "(none)" or "(none: no resource in this snapshot)"
  end
  for _, r in ipairs(list) do
    lines[#lines + 1] = header(r, opts)
    local holders, waiters = r.holders or {}, r.waiters or {}
    if #holders == 0 then lines[#lines + 1] = "   held by nobody" end
    for _, h in ipairs(holders) do
      lines[#lines + 1] = "   held by " .. party(h, by, snap.t, opts)
    end
    for _, w in ipairs(waiters) do
      lines[#lines + 1] = "   waiter  " .. party(w, by, snap.t, opts)
    end
  end
  -- long lines continue, indented, on the next lines
  local out = {}
  for _, l in ipairs(lines) do
    if util.width(l) > width then
      for _, part in ipairs(util.wrap(l, width, "       ")) do out[#out + 1] = part end
    else
      out[#out + 1] = l
    end
  end
  return out
end

return setmetatable(M, { __call = function(_, ...) return M.render(...) end })

--- The summary box: how many tasks, in which states, how many events, for how long.
--
-- Pure: a snapshot in, lines out (also the one-line compact summary).
-- @module async_inspect.views.summary

local util = require("async_inspect.views.util")

local M = {}

local format = string.format

local function count(stats, key) return stats[key] or 0 end

--- The figures shown in the box, in order: label and value.
-- @tparam table snap snapshot
-- @treturn {{string,string},...}
function M.figures(snap)
  local s = snap.stats or {}
  local running = count(s, "running") + count(s, "normal")
  local blocked = count(s, "suspended") + count(s, "pending")
  local rows = {
    { "Total tasks", tostring(count(s, "tasks")) },
    { "Active", format("%d (%d running, %d blocked)", count(s, "active"), running, blocked) },
    { "Completed", tostring(count(s, "completed")) },
    { "Failed", tostring(count(s, "failed")) },
  }
  if count(s, "cancelled") > 0 then rows[#rows + 1] = { "Cancelled", tostring(s.cancelled) } end
  if count(s, "dropped") > 0 then rows[#rows + 1] = { "Dropped", tostring(s.dropped) } end
  local events = tostring(count(s, "events"))
  if count(s, "events_dropped") > 0 then
    events = format("%s (%d overwritten)", events, s.events_dropped)
  end
  rows[#rows + 1] = { "Events", events }
  if count(s, "evicted") > 0 then rows[#rows + 1] = { "Evicted records", tostring(s.evicted) } end
  rows[#rows + 1] = { "Duration", util.duration(s.uptime or snap.t) }
  return rows
end

--- The summary box.
-- @tparam table snap snapshot
-- @tparam[opt] table opts `{ascii=bool, color=bool, title=string}`
-- @treturn {string,...} lines
-- @usage print(table.concat(summary.render(ai.snapshot()), "\n"))
function M.render(snap, opts)
  util.check_snapshot(snap, "summary")
  opts = opts or {}
  local ascii = opts.ascii
  local b = ascii and { tl = "+", tr = "+", bl = "+", br = "+", h = "-", v = "|", ml = "+", mr = "+" }
      or { tl = "┌", tr = "┐", bl = "└", br = "┘", h = "─", v = "│", ml = "├", mr = "┤" }
  local rows = M.figures(snap)
  local lw, vw = 0, 0
  for _, r in ipairs(rows) do
    lw = math.max(lw, util.width(r[1]))
    vw = math.max(vw, util.width(r[2]))
  end
  local title = opts.title or "async_inspect summary"
  local inner = math.max(lw + vw + 5, util.width(title) + 2)
  vw = inner - lw - 5
  local lines = {
    b.tl .. b.h:rep(inner) .. b.tr,
    b.v .. util.pad(" " .. title, inner) .. b.v,
    b.ml .. b.h:rep(inner) .. b.mr,
  }
  for _, r in ipairs(rows) do
    local value = r[2]
    if r[1] == "Failed" and r[2] ~= "0" then value = util.paint(util.pad(value, vw), "red", opts.color)
    else value = util.pad(value, vw) end
    lines[#lines + 1] = b.v .. " " .. util.pad(r[1] .. ":", lw + 1) .. "  " .. value .. " " .. b.v
  end
  lines[#lines + 1] = b.bl .. b.h:rep(inner) .. b.br
  return lines
end

--- One line: `tasks 12 | active 3 (1 running, 2 blocked) | done 8 | failed 1 | 1.20s`.
-- @tparam table snap snapshot
-- @treturn string
function M.compact(snap)
  util.check_snapshot(snap, "compact")
  local s = snap.stats or {}
  return format("tasks %d | active %d (%d running, %d blocked) | done %d | failed %d | events %d | %s",
    count(s, "tasks"), count(s, "active"), count(s, "running") + count(s, "normal"),
    count(s, "suspended") + count(s, "pending"), count(s, "completed"), count(s, "failed"),
    count(s, "events"), util.duration(s.uptime or snap.t))
end

return M

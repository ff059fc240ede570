--- The timeline listing: one line per event, in order.
--
-- Pure: a snapshot with events in, lines out.
-- @module async_inspect.views.timeline

local util = require("async_inspect.views.util")

local M = {}

local format = string.format

local STYLE = {
  spawn = "cyan", resume = "green", yield = "yellow", complete = "dim", fail = "red",
  cancel = "magenta", drop = "red", point = "blue", name = "dim",
}

--- What an event says after its kind.
-- @tparam table e event table
-- @tparam table by_id task index
-- @treturn string
function M.describe(e, by_id)
  local k = e.kind
  local function ref(id) return id and util.task_ref(by_id[id], id) or "main" end
  if k == "spawn" then
    return format("at %s%s", util.sanitize(e.loc or "?"),
      e.other and (" by " .. ref(e.other)) or "")
  elseif k == "resume" then
    return format("by %s%s", ref(e.other), e.detail and (" (woken by " .. util.sanitize(e.detail) .. ")") or "")
  elseif k == "yield" then
    return format("at %s%s", util.sanitize(e.loc or "?"),
      e.detail and (" [" .. util.sanitize(e.detail) .. "]") or "")
  elseif k == "fail" then
    return util.sanitize(e.detail or "")
  elseif k == "point" then
    return util.sanitize(e.loc or "") .. (e.detail and (": " .. util.sanitize(e.detail)) or "")
  elseif k == "name" then
    return "named " .. util.sanitize(e.loc or "")
  end
  return ""
end

--- The event listing.
-- @tparam table snap snapshot with `events`
-- @tparam[opt] table opts `{task=id, limit=n (last n events), color=bool, width=n}`
-- @treturn {string,...}
function M.render(snap, opts)
  util.check_snapshot(snap, "timeline")
  opts = opts or {}
  local by_id = util.index(snap)
  local events = snap.events or {}
  local selected = {}
  for _, e in ipairs(events) do
    if opts.task == nil or e.task == opts.task then selected[#selected + 1] = e end
  end
  local first = 1
  if opts.limit and #selected > opts.limit then first = #selected - opts.limit + 1 end
  local lines = {}
  if #selected == 0 then return { "(no events)" } end
  for i = first, #selected do
    local e = selected[i]
    local kind = util.paint(format("%-8s", e.kind), STYLE[e.kind], opts.color)
    local line = format("%12s  %s %s %s", format("%.3fms", e.t / 1e6), kind,
      util.pad(util.task_ref(by_id[e.task], e.task), 24), M.describe(e, by_id))
    if opts.width then line = util.truncate(line, opts.width) end
    lines[#lines + 1] = line
  end
  if first > 1 then table.insert(lines, 1, format("(%d earlier events not shown)", first - 1)) end
  return lines
end

return M

--- The profiling lints of a snapshot (long polls, tasks that never yield, busy waiting,
-- stuck tasks, unjoined failures, churn, ...): errors first, each with its message and the
-- recommendation, wrapped to the width.
--
-- Pure: a snapshot and view options in, lines out.
-- @module async_inspect.views.warnings

local util = require("async_inspect.views.util")

local M = {}

local sanitize = util.sanitize
local RANK = { error = 1, warn = 2 }

--- Warnings in display order: errors before warnings, then by lint name, then by task id.
-- @tparam table snap snapshot
-- @treturn {table,...} the snapshot's warning tables
function M.rows(snap)
  util.check_snapshot(snap, "rows")
  local list = {}
  for _, w in ipairs(snap.warnings or {}) do list[#list + 1] = w end
  table.sort(list, function(a, b)
    local ra, rb = RANK[a.severity] or 3, RANK[b.severity] or 3
    if ra ~= rb then return ra < rb end
    if tostring(a.lint) ~= tostring(b.lint) then return tostring(a.lint) < tostring(b.lint) end
    return (a.task or 0) < (b.task or 0)
  end)
  return list
end

--- Count warnings by severity.
-- @tparam table snap snapshot
-- @treturn integer errors
-- @treturn integer warnings
function M.counts(snap)
  util.check_snapshot(snap, "counts")
  local e, w = 0, 0
  for _, x in ipairs(snap.warnings or {}) do
    if x.severity == "error" then e = e + 1 else w = w + 1 end
  end
  return e, w
end

--- Render the warnings.
-- @tparam table snap snapshot
-- @tparam[opt] table opts `width` (80), `color`, `ascii`
-- @treturn {string,...} lines (the caller scrolls them)
-- @usage local lines = warnings.render(snap, {width=80})
function M.render(snap, opts)
  util.check_snapshot(snap, "render")
  util.check(opts, "table", 2, "render", true)
  opts = opts or {}
  local width = opts.width or 80
  local list = M.rows(snap)
  local lines = {}
  if #list == 0 then
    lines[1] = snap.warnings and "(none: no lint fired)" or "(none: no warning in this snapshot)"
    return lines
  end
  local errors, warns = M.counts(snap)
  lines[1] = string.format("%d errors, %d warnings", errors, warns)
  local arrow = util.chars(opts.ascii).arrow
  for _, w in ipairs(list) do
    local sev = w.severity == "error" and "ERROR" or "WARN"
    local head = string.format("%s %s", sev, sanitize(w.lint or "?"))
    if w.task then head = head .. "  " .. util.task_ref({ id = w.task, name = w.name }) end
    if w.loc then head = head .. "  at " .. sanitize(w.loc) end
    lines[#lines + 1] = ""
    lines[#lines + 1] = util.paint(util.truncate(head, width, opts),
      w.severity == "error" and "red" or "yellow", opts.color)
    for _, l in ipairs(util.wrap(sanitize(w.message or ""), width - 4)) do
      lines[#lines + 1] = "    " .. l
    end
    if w.recommendation then
      local text = arrow .. " " .. sanitize(w.recommendation)
      for _, l in ipairs(util.wrap(text, width - 4, "  ")) do lines[#lines + 1] = "    " .. l end
    end
  end
  for i, l in ipairs(lines) do
    if util.width(l) > width then lines[i] = util.fit(l, width) end
  end
  return lines
end

return setmetatable(M, { __call = function(_, ...) return M.render(...) end })

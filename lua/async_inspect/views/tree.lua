--- The task tree: the parent/child hierarchy with each task's state and durations.
--
-- A task whose parent is 0, missing, or not in the snapshot (evicted) is a root. With a
-- filter, the matching tasks are shown with their ancestors (for context).
-- Pure: a snapshot and view options in, lines out.
-- @module async_inspect.views.tree

local util = require("async_inspect.views.util")
local tasks_view = require("async_inspect.views.tasks")

local M = {}

local sanitize, duration = util.sanitize, util.duration

--- Walk the tree depth-first (children by id) and return rows of `{task=, depth=, prefix=}`.
-- @tparam table snap snapshot
-- @tparam[opt] table opts `filter` (as in the Tasks view), `ascii`
-- @treturn {table,...} rows in display order; `prefix` is the branch drawing before the task
function M.rows(snap, opts)
  util.check_snapshot(snap, "rows")
  util.check(opts, "table", 2, "rows", true)
  opts = opts or {}
  local c = util.chars(opts.ascii)
  local by = util.index(snap)
  local kids, roots = {}, {}
  for _, t in ipairs(snap.tasks) do
    local p = t.parent
    if p and p ~= 0 and p ~= t.id and by[p] then
      kids[p] = kids[p] or {}
      table.insert(kids[p], t)
    else
      roots[#roots + 1] = t
    end
  end
  local keep
  if opts.filter and opts.filter ~= "" then
    keep = {}
    for _, t in ipairs(snap.tasks) do
      if tasks_view.matches(t, opts.filter) then
        -- keep the task and its ancestors; `keep` doubles as the guard against cycles
        local cur = t
        while cur and not keep[cur.id] do
          keep[cur.id] = true
          cur = cur.parent and by[cur.parent]
        end
      end
    end
  end
  local function by_id(a, b) return a.id < b.id end
  table.sort(roots, by_id)
  local out, seen = {}, {}
  local function walk(list, depth, lead)
    local shown = {}
    for _, t in ipairs(list) do
      if (not keep or keep[t.id]) and not seen[t.id] then shown[#shown + 1] = t end
    end
    table.sort(shown, by_id)
    for i, t in ipairs(shown) do
      if not seen[t.id] then
        seen[t.id] = true
        local last = i == #shown
        local prefix = depth == 0 and "" or (lead .. (last and c.last or c.branch))
        out[#out + 1] = { task = t, depth = depth, prefix = prefix }
        if kids[t.id] then
          local next_lead = depth == 0 and "" or (lead .. (last and c.blank or c.pipe))
          walk(kids[t.id], depth + 1, next_lead)
        end
      end
    end
  end
  walk(roots, 0, "")
  -- tasks left out because their parent chain forms a cycle become roots
  local orphans = {}
  for _, t in ipairs(snap.tasks) do
    if not seen[t.id] and (not keep or keep[t.id]) then orphans[#orphans + 1] = t end
  end
  walk(orphans, 0, "")
  return out
end

local function format_line(prefix, t, total, busy, extra, opts)
  local name = sanitize(t.name or "")
  local state = util.paint(util.state_label(t.state), util.state_style(t.state), opts.color)
  return string.format("%s%s #%d %s  %s (busy %s)%s", prefix, state, t.id, name,
    duration(total, opts.ascii), duration(busy, opts.ascii), extra)
end

local function describe(row, now, opts)
  local t = row.task
  local total, busy = util.task_times(t, now)
  local extra = ""
  if t.state == "suspended" then
    local at = t.await and sanitize(t.await) or sanitize(t.where or "")
    if at ~= "" then extra = "  @ " .. at end
  elseif t.state == "failed" and t.error then
    extra = "  ! " .. (sanitize(t.error):gsub("%s+", " "))
  end
  return format_line(row.prefix, t, total, busy, extra, opts)
end

--- Render the task tree.
-- @tparam table snap snapshot
-- @tparam[opt] table opts `width` (80), `height` (all rows), `selected` (task id, or false
-- for the row at `cursor`), `cursor`, `offset`, `filter`, `color`, `ascii`
-- @treturn {string,...} lines
-- @treturn table info `{ids=, index=, selected=, offset=, count=}` as in the Tasks view
-- @usage local lines = tree.render(snap, {width=80})
function M.render(snap, opts)
  util.check_snapshot(snap, "render")
  util.check(opts, "table", 2, "render", true)
  opts = opts or {}
  local width = opts.width or 80
  local rows = M.rows(snap, opts)
  local ids, index = {}, nil
  for i, r in ipairs(rows) do
    ids[i] = r.task.id
    if r.task.id == opts.selected then index = i end
  end
  if not index and #rows > 0 and opts.selected ~= nil then
    index = math.min(math.max(opts.cursor or 1, 1), #rows)
  end
  local height = opts.height or #rows
  local offset = math.max(0, math.min(opts.offset or 0, #rows - height))
  if index then
    if index <= offset then offset = index - 1 end
    if index > offset + height then offset = index - height end
  end
  local c = util.chars(opts.ascii)
  local lines = {}
  for i = offset + 1, math.min(#rows, offset + height) do
    local line = util.fit(describe(rows[i], snap.t, opts), width - 2)
    if i == index then
      line = util.paint(c.sel .. " " .. line, "reverse", opts.color)
    else
      line = "  " .. line
    end
    lines[#lines + 1] = line
  end
  if #rows == 0 and height > 0 then lines[1] = "  (none)" end
  return lines, {
    ids = ids, index = index, selected = index and ids[index] or nil,
    offset = offset, count = #rows,
  }
end

return setmetatable(M, { __call = function(_, ...) return M.render(...) end })

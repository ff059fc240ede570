--- The task list: one row per task with its state and figures, sortable by any column and
-- filtered by a Lua pattern or a plain substring.
--
-- Pure: a snapshot and view options in, lines out.
-- @module async_inspect.views.tasks

local util = require("async_inspect.views.util")

local M = {}

local sanitize, duration = util.sanitize, util.duration

--- Column keys, in display order.
M.columns = { "state", "id", "name", "total", "busy", "idle", "resumes", "location", "await" }

local TITLES = {
  state = "State", id = "ID", name = "Name", total = "Total", busy = "Busy", idle = "Idle",
  resumes = "Polls", location = "Location", await = "Await",
}

-- Layout at any width: numbers fixed, text columns share the rest; at narrow widths the
-- await, then the location and idle columns are dropped.
local SPECS = {
  { w = 6 },
  { w = 5, align = "right" },
  { min = 10, weight = 4 },
  { w = 6, align = "right" },
  { w = 6, align = "right" },
  { w = 6, align = "right", drop = 2 },
  { w = 5, align = "right", drop = 1 },
  { min = 8, weight = 4, left = true, drop = 3 },
  { min = 6, weight = 3, drop = 4 },
}

--- Where a task is, for the location column: the yield site while suspended, otherwise
-- where it was created.
-- @tparam table task
-- @treturn string
function M.location(task)
  return sanitize(task.where or task.created_at or "")
end

--- What a task awaits, for the await column: the await label and, in brackets, what it
-- waits for (`read_config [fs]`).
-- @tparam table task
-- @treturn string
function M.await_text(task)
  local a, w = task.await, task.wait
  if a and w then return sanitize(a) .. " [" .. sanitize(w) .. "]" end
  if a then return sanitize(a) end
  if w then return "[" .. sanitize(w) .. "]" end
  return ""
end

local function sort_value(task, key, now)
  if key == "state" then return util.STATE_RANK[task.state] or 99 end
  if key == "id" then return task.id end
  if key == "name" then return task.name or "" end
  if key == "resumes" then return task.resumes or 0 end
  if key == "location" then return M.location(task) end
  if key == "await" then return M.await_text(task) end
  local total, busy, idle = util.task_times(task, now)
  if key == "total" then return total end
  if key == "busy" then return busy end
  return idle
end

local function plain_find(hay, needle)
  return hay:lower():find(needle, 1, true) ~= nil
end

--- Whether a task matches a filter: the filter is tried as a plain, case-insensitive
-- substring and as a Lua pattern (an invalid pattern only matches as a substring) against
-- the id, name, state, location, creation site, await label and wait.
-- @tparam table task
-- @tparam string|nil filter nil or "" matches everything
-- @treturn boolean
-- @usage tasks.matches(task, "worker%d+")
function M.matches(task, filter)
  util.check(task, "table", 1, "matches")
  util.check(filter, "string", 2, "matches", true)
  if not filter or filter == "" then return true end
  local lower = filter:lower()
  local fields = {
    tostring(task.id), task.name, task.state, task.where, task.created_at, task.await,
    task.wait, task.kind,
  }
  for i = 1, #fields do
    local f = fields[i]
    if type(f) == "string" then
      if plain_find(f, lower) then return true end
      local ok, found = pcall(string.find, f, filter)
      if ok and found then return true end
    end
  end
  return false
end

--- The tasks of a snapshot, filtered and sorted (ties broken by id).
-- @tparam table snap snapshot
-- @tparam[opt] table opts `sort` (a column key, default "id"), `invert`, `filter`
-- @treturn {table,...} task records (the snapshot's own tables)
function M.rows(snap, opts)
  util.check_snapshot(snap, "rows")
  util.check(opts, "table", 2, "rows", true)
  opts = opts or {}
  local key = opts.sort or "id"
  if not TITLES[key] then error("bad sort column '" .. tostring(key) .. "'", 2) end
  local list = {}
  for _, t in ipairs(snap.tasks) do
    if M.matches(t, opts.filter) then list[#list + 1] = t end
  end
  local now = snap.t
  local cache = {}
  for _, t in ipairs(list) do cache[t] = sort_value(t, key, now) end
  local invert = opts.invert and true or false
  table.sort(list, function(a, b)
    local va, vb = cache[a], cache[b]
    if va ~= vb then
      if invert then return va > vb end
      return va < vb
    end
    if invert then return a.id > b.id end
    return a.id < b.id
  end)
  return list
end

--- One-line summary of the task counts in a snapshot.
-- @tparam table snap
-- @treturn string
function M.summary(snap)
  local counts = {}
  for _, t in ipairs(snap.tasks) do counts[t.state] = (counts[t.state] or 0) + 1 end
  local parts = { tostring(#snap.tasks) .. " tasks" }
  for _, st in ipairs({ "running", "suspended", "pending", "completed", "failed",
    "cancelled", "dropped" }) do
    if counts[st] then parts[#parts + 1] = counts[st] .. " " .. st end
  end
  local s = table.concat(parts, ", ")
  local stats = snap.stats
  if type(stats) == "table" and stats.events then
    s = s .. " | " .. tostring(stats.events) .. " events"
    if (stats.events_dropped or 0) > 0 then
      s = s .. " (" .. tostring(stats.events_dropped) .. " overwritten)"
    end
    if (stats.events_lost or 0) > 0 then
      s = s .. " (" .. tostring(stats.events_lost) .. " not received)"
    end
  end
  return s
end

local function header(widths, opts, c)
  local cells = {}
  for i, key in ipairs(M.columns) do
    local title = TITLES[key]
    if key == (opts.sort or "id") then
      title = title .. (opts.invert and c.down or c.up)
    end
    cells[i] = title
  end
  return util.paint(util.row(cells, widths, SPECS, opts), "bold", opts.color)
end

local function cells_of(task, now, opts)
  local total, busy, idle = util.task_times(task, now)
  return {
    util.state_label(task.state), tostring(task.id), sanitize(task.name or ""),
    duration(total, opts.ascii), duration(busy, opts.ascii), duration(idle, opts.ascii),
    tostring(task.resumes or 0), M.location(task), M.await_text(task),
  }
end

local function task_line(task, widths, opts, selected, c)
  local style = util.state_style(task.state)
  local line = util.row(cells_of(task, opts.now, opts), widths, SPECS, {
    ascii = opts.ascii,
    paint = function(i, text)
      if i == 1 then return util.paint(text, style, opts.color) end
      return text
    end,
  })
  line = (selected and c.sel or " ") .. " " .. line
  if selected then line = util.paint(line, "reverse", opts.color) end
  return line
end

-- Keep the selected row inside the window of `visible` rows.
local function window(count, index, offset, visible)
  if visible <= 0 then return 0 end
  offset = math.max(0, math.min(offset or 0, count - visible))
  if index then
    if index <= offset then offset = index - 1 end
    if index > offset + visible then offset = index - visible end
  end
  return math.max(0, offset)
end

--- Render the task list.
-- @tparam table snap snapshot
-- @tparam[opt] table opts `width` (80), `height` (all rows), `sort`, `invert`, `filter`,
-- `selected` (task id, or false to select the row at `cursor`), `cursor` (row used when the
-- selected task is not shown), `offset` (first row shown), `color`, `ascii`
-- @treturn {string,...} lines: a summary, the column header, then rows
-- @treturn table info `{ids = {id,...} in display order, index = selected row or nil,
-- selected = id or nil, offset = first row shown, count = rows after filtering}`
-- @usage local lines, info = tasks.render(snap, {width=80, height=20, sort="busy", invert=true})
function M.render(snap, opts)
  util.check_snapshot(snap, "render")
  util.check(opts, "table", 2, "render", true)
  opts = setmetatable({ now = snap.t }, { __index = opts or {} })
  local width = opts.width or 80
  local c = util.chars(opts.ascii)
  local rows = M.rows(snap, opts)
  local ids, index = {}, nil
  for i, t in ipairs(rows) do
    ids[i] = t.id
    if t.id == opts.selected then index = i end
  end
  if not index and #rows > 0 and opts.selected ~= nil then
    -- the selected task is gone (filtered out or evicted): stay at the same position
    index = math.min(math.max(opts.cursor or 1, 1), #rows)
  end
  local widths = util.layout(SPECS, width - 2)
  local summary = M.summary(snap)
  if opts.filter and opts.filter ~= "" then
    -- first, so that a narrow screen cuts the counts rather than the filter
    summary = "filter '" .. sanitize(opts.filter) .. "': " .. #rows .. " shown | " .. summary
  end
  local lines = { util.truncate(summary, width, opts), "  " .. header(widths, opts, c) }
  local visible = (opts.height or (#rows + 2)) - 2
  local offset = window(#rows, index, opts.offset, visible)
  for i = offset + 1, math.min(#rows, offset + visible) do
    lines[#lines + 1] = task_line(rows[i], widths, opts, i == index, c)
  end
  if #rows == 0 and visible > 0 then
    lines[#lines + 1] = (opts.filter and opts.filter ~= "")
      and util.truncate("  (no task matches '" .. sanitize(opts.filter) .. "')", width, opts)
      or "  (none)"
  end
  return lines, {
    ids = ids, index = index, selected = index and ids[index] or nil,
    offset = offset, count = #rows,
  }
end

return setmetatable(M, { __call = function(_, ...) return M.render(...) end })

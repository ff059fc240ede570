--- The dashboard as a state machine: keys in, frames (arrays of lines) out.
--
-- It knows nothing of terminals: `tui.start` feeds it keys and writes its frames. Snapshots
-- come from a source, so one app serves the live program, a remote console and a replay:
--
--   source = function(need) return snapshot end
--   source = { snapshot = function(need) ... end, mode = "live"|"remote"|"replay",
--              status = function() return "..." end,           -- optional
--              details = function(id) return {traceback_now=, locals=} end, -- optional
--              cursor = <model cursor> }                        -- replay only
--
-- `need.events` asks for the events (the Detail and Timeline views use them).
-- @module async_inspect.tui.app

local util = require("async_inspect.views.util")
local tasks_view = require("async_inspect.views.tasks")
local detail_view = require("async_inspect.views.detail")
local tree_view = require("async_inspect.views.tree")
local resources_view = require("async_inspect.views.resources")
local warnings_view = require("async_inspect.views.warnings")
local help_view = require("async_inspect.views.help")
local input = require("async_inspect.tui.input")

local M = {}

--- View names, in tab order (keys 1..6).
M.VIEWS = { "tasks", "detail", "timeline", "tree", "resources", "warnings" }
local TITLES = {
  tasks = "Tasks", detail = "Detail", timeline = "Timeline", tree = "Tree",
  resources = "Resources", warnings = "Warnings",
}
local NEEDS_EVENTS = { detail = true, timeline = true }

local App = {}
App.__index = App

local EMPTY = { t = 0, stats = {}, tasks = {} }

--- Create a dashboard state.
-- @tparam table opts `source` (function or table, required), `mode` (default the source's
-- mode or "live"), `ascii`, `color`, `gantt` (the Timeline renderer, default
-- `async_inspect.views.gantt`)
-- @treturn table app
-- @usage local app = require("async_inspect.tui.app").new{source = function() return ai.snapshot() end}
function M.new(opts)
  if type(opts) ~= "table" then
    error("bad argument #1 to 'new' (table expected, got " .. type(opts) .. ")", 2)
  end
  local source = opts.source
  if type(source) == "function" then source = { snapshot = source } end
  if type(source) ~= "table" or type(source.snapshot) ~= "function" then
    error("bad argument #1 to 'new' (source must be a function or a table with snapshot)", 2)
  end
  return setmetatable({
    source = source, mode = opts.mode or source.mode or "live",
    ascii = opts.ascii and true or false, color = opts.color and true or false,
    gantt = opts.gantt,
    view = "tasks", prev_view = "tasks", help = false, help_offset = 0,
    sort = "id", invert = false, filter = nil, editing = nil, filter_before = nil,
    lists = { tasks = { cursor = 1, offset = 0 }, tree = { cursor = 1, offset = 0 } },
    detail_id = nil, offsets = { detail = 0, resources = 0, warnings = 0, timeline = 0 },
    tl = { span = nil, right = nil },
    paused = false, playing = false, speed = 1,
    snap = EMPTY, w = 80, h = 24, page = 22, quit = false, redraw = false, interrupt = false,
    message = nil, message_until = 0, clock = 0,
  }, App)
end

local function say(self, text)
  self.message = text
  self.message_until = self.clock + 3000
end

--- Fetch a new snapshot from the source (unless paused).
-- @tparam[opt] boolean force fetch even when paused
-- @treturn table the current snapshot
function App:refresh(force)
  if self.paused and not force then return self.snap end
  local need = { events = NEEDS_EVENTS[self.view] or self.paused or false }
  local ok, snap = pcall(self.source.snapshot, need)
  if ok and type(snap) == "table" and type(snap.tasks) == "table" then
    self.snap = snap
  elseif not ok then
    say(self, "snapshot failed: " .. util.sanitize(tostring(snap)))
  end
  return self.snap
end

--- Advance time by `dt` milliseconds: moves the replay cursor when playing, and expires
-- messages. Call `refresh` afterwards.
-- @tparam number dt
function App:tick(dt)
  if type(dt) ~= "number" then
    error("bad argument #1 to 'tick' (number expected, got " .. type(dt) .. ")", 2)
  end
  self.clock = self.clock + dt
  if self.message and self.clock >= self.message_until then self.message = nil end
  local cursor = self.source.cursor
  if self.mode == "replay" and cursor and self.playing then
    local _, last = cursor.history:range()
    local t = cursor:seek(cursor:time() + math.floor(dt * 1e6 * self.speed))
    if t >= last then self.playing = false end
  end
end

-- Selection in the list views -------------------------------------------------------------

local function list_move(self, name, delta, to)
  local st = self.lists[name]
  -- the rows are known once drawn: draw now if a key comes first
  if not st.info then self:frame(self.w, self.h) end
  local info = st.info
  if not info or info.count == 0 then return end
  -- where the selection is now (keys may have moved it since the last frame)
  local index = math.min(st.cursor or 1, info.count)
  for i, id in ipairs(info.ids) do
    if id == st.id then index = i break end
  end
  if to == "first" then index = 1
  elseif to == "last" then index = info.count
  else index = math.max(1, math.min(info.count, index + delta)) end
  st.id, st.cursor = info.ids[index], index
end

local function selected_task(self)
  local name = (self.view == "tree") and "tree" or "tasks"
  return self.lists[name].id
end

local function switch(self, view)
  if view == self.view then return end
  if view == "detail" then
    self.detail_id = selected_task(self) or self.detail_id
    self.offsets.detail = 0
  end
  self.prev_view = self.view
  self.view = view
  -- fetch the events now (a paused frame already has them)
  if NEEDS_EVENTS[view] and not self.paused then self:refresh() end
end

-- Keys ---------------------------------------------------------------------------------------

local function edit_filter(self, key)
  if key == "enter" then
    self.filter = self.editing ~= "" and self.editing or nil
    self.editing = nil
  elseif key == "esc" then
    self.filter = self.filter_before
    self.editing = nil
  elseif key == "backspace" then
    local n = utf8.len(self.editing) or 0
    self.editing = n > 0 and self.editing:sub(1, (utf8.offset(self.editing, n) or 1) - 1) or ""
  elseif key == "ctrl-u" then
    self.editing = ""
  elseif input.printable(key) then
    self.editing = self.editing .. (key == "space" and " " or key)
  end
end

local function scroll(self, name, key)
  local off = self.offsets[name]
  local page = math.max(1, self.page - 1)
  if key == "up" or key == "k" then off = off - 1
  elseif key == "down" or key == "j" then off = off + 1
  elseif key == "pgup" then off = off - page
  elseif key == "pgdn" then off = off + page
  elseif key == "home" then off = 0
  elseif key == "end" then off = math.huge
  else return false end
  self.offsets[name] = math.max(0, off)
  return true
end

local function list_key(self, name, key)
  local page = math.max(1, self.page - 2)
  if key == "up" or key == "k" then list_move(self, name, -1)
  elseif key == "down" or key == "j" then list_move(self, name, 1)
  elseif key == "pgup" then list_move(self, name, -page)
  elseif key == "pgdn" then list_move(self, name, page)
  elseif key == "home" then list_move(self, name, 0, "first")
  elseif key == "end" then list_move(self, name, 0, "last")
  elseif key == "enter" then
    if not self.lists[name].info then self:frame(self.w, self.h) end
    if self.lists[name].id then switch(self, "detail") end
  else return false end
  return true
end

local function sort_key(self, key)
  local cols = tasks_view.columns
  local i = 1
  for k, c in ipairs(cols) do if c == self.sort then i = k end end
  if key == "left" or key == "h" then i = (i - 2) % #cols + 1
  elseif key == "right" or key == "l" then i = i % #cols + 1
  elseif key == "i" then self.invert = not self.invert
  else return false end
  self.sort = cols[i]
  return true
end

local function timeline_key(self, key)
  local now = self.snap.t
  local tl = self.tl
  local span = tl.span or math.max(1, now)
  local right = tl.right or now
  if key == "left" or key == "h" then right = right - span // 4
  elseif key == "right" or key == "l" then right = right + span // 4
  elseif key == "+" or key == "=" or key == "-" then
    -- zoom around the middle of the window, or keep following the live end
    local center = right - span // 2
    span = key == "-" and span * 2 or math.max(1000, span // 2)
    if tl.right then right = center + span // 2 end
  elseif key == "0" then
    tl.span, tl.right = nil, nil
    return true
  else
    return scroll(self, "timeline", key)
  end
  if span >= now then
    tl.span, tl.right = nil, nil
    return true
  end
  right = math.max(span, right)
  tl.span = span
  -- at (or past) the live end the window follows it
  tl.right = right < now and right or nil
  return true
end

local function replay_key(self, key)
  local cursor = self.source.cursor
  if self.mode ~= "replay" or not cursor then return false end
  if key == "," then cursor:step(-1)
  elseif key == "." then cursor:step(1)
  elseif key == "<" then cursor:seek(cursor:time() - 1000000000)
  elseif key == ">" then cursor:seek(cursor:time() + 1000000000)
  elseif key == "g" then cursor:first()
  elseif key == "G" then cursor:last()
  elseif key == "[" then self.speed = math.max(1 / 64, self.speed / 2)
  elseif key == "]" then self.speed = math.min(1024, self.speed * 2)
  elseif key == "space" then
    self.playing = not self.playing
    if self.playing then
      local _, last = cursor.history:range()
      if cursor:time() >= last then cursor:first() end
    end
  else return false end
  if key ~= "[" and key ~= "]" and key ~= "space" then self.playing = false end
  self:refresh(true)
  return true
end

local function global_key(self, key)
  if key == "q" then self.quit = true
  elseif key == "ctrl-c" then self.interrupt = true
  elseif key == "?" then self.help, self.help_offset = true, 0
  elseif key == "ctrl-l" then self.redraw = true
  elseif key == "tab" or key == "backtab" then
    local i = 1
    for k, v in ipairs(M.VIEWS) do if v == self.view then i = k end end
    i = key == "tab" and (i % #M.VIEWS + 1) or ((i - 2) % #M.VIEWS + 1)
    switch(self, M.VIEWS[i])
  elseif key:match("^[1-6]$") then switch(self, M.VIEWS[tonumber(key)])
  elseif key == "space" and self.mode ~= "replay" then
    self.paused = not self.paused
    -- a paused frame keeps its events, so Detail and Timeline work on it
    if self.paused then self:refresh(true) end
  elseif key == "/" and (self.view == "tasks" or self.view == "tree"
    or self.view == "timeline") then
    self.editing, self.filter_before = self.filter or "", self.filter
  else return false end
  return true
end

local function help_key(self, key)
  if key == "up" or key == "k" then self.help_offset = math.max(0, self.help_offset - 1)
  elseif key == "down" or key == "j" then self.help_offset = self.help_offset + 1
  elseif key == "q" then self.quit = true
  else self.help = false end
end

local function view_key(self, key)
  local v = self.view
  if v == "tasks" then
    return list_key(self, "tasks", key) or sort_key(self, key)
  elseif v == "tree" then
    return list_key(self, "tree", key)
  elseif v == "detail" then
    if key == "esc" or key == "backspace" then
      self.view = self.prev_view ~= "detail" and self.prev_view or "tasks"
      return true
    end
    return scroll(self, "detail", key)
  elseif v == "timeline" then
    return timeline_key(self, key)
  end
  return scroll(self, v, key)
end

--- Handle one key (a name from `async_inspect.tui.input`). Sets `quit` on q, `interrupt`
-- on ctrl-c and `redraw` on ctrl-l.
-- @tparam string key
function App:key(key)
  if type(key) ~= "string" then
    error("bad argument #1 to 'key' (string expected, got " .. type(key) .. ")", 2)
  end
  if self.editing then return edit_filter(self, key) end
  if self.help then return help_key(self, key) end
  if replay_key(self, key) then return end
  if view_key(self, key) then return end
  if global_key(self, key) then return end
  if key == "esc" and self.filter then self.filter = nil end
end

-- Drawing ----------------------------------------------------------------------------------

local function status(self)
  local c = util.chars(self.ascii)
  local s
  if self.mode == "replay" then
    local cursor = self.source.cursor
    local last = 0
    if cursor then last = select(2, cursor.history:range()) end
    s = string.format("REPLAY %s/%s %s x%g", util.timestamp(self.snap.t), util.timestamp(last),
      self.playing and c.play or c.pause, self.speed)
  else
    s = (self.mode == "remote" and "REMOTE " or "LIVE ") .. util.timestamp(self.snap.t)
    if self.paused then s = s .. " PAUSED" end
  end
  return s
end

local function header(self, w)
  local errors, warns = warnings_view.counts(self.snap)
  local right = status(self)
  local function tabs(short)
    local parts = {}
    for i, v in ipairs(M.VIEWS) do
      local title = TITLES[v]
      if v == "warnings" and errors + warns > 0 then title = title .. "(" .. (errors + warns) .. ")" end
      local label = (short and v ~= self.view) and tostring(i) or (i .. " " .. title)
      if v == self.view then
        label = self.color and util.paint(" " .. label .. " ", "reverse", true)
          or ("[" .. label .. "]")
      end
      parts[#parts + 1] = label
    end
    return table.concat(parts, " ")
  end
  local left = tabs(false)
  if util.width(left) + util.width(right) + 1 > w then left = tabs(true) end
  local gap = w - util.width(left) - util.width(right)
  if gap < 1 then return util.fit(left .. " " .. right, w) end
  return left .. (" "):rep(gap) .. right
end

local HINTS = {
  tasks = "q quit  ? help  / filter  left/right sort  i invert  enter detail  tab views",
  tree = "q quit  ? help  / filter  enter detail  tab views",
  detail = "q quit  ? help  esc back  up/down scroll  tab views",
  timeline = "q quit  ? help  left/right scroll  +/- zoom  0 all  / filter  tab views",
  resources = "q quit  ? help  up/down scroll  tab views",
  warnings = "q quit  ? help  up/down scroll  tab views",
}

local function footer(self, w)
  if self.editing then
    return util.fit("/" .. util.sanitize(self.editing) .. util.chars(self.ascii).cursor
      .. "   (enter apply, esc cancel)", w)
  end
  local parts = {}
  if self.message then parts[#parts + 1] = self.message end
  if self.source.status then
    local ok, s = pcall(self.source.status)
    if ok and s then parts[#parts + 1] = util.sanitize(s) end
  end
  local hint = HINTS[self.view]
  if self.mode == "replay" then hint = "space play  ,/. step  g/G start/end  " .. hint
  elseif self.view ~= "detail" then hint = hint .. "  space pause" end
  parts[#parts + 1] = hint
  local line = util.truncate(table.concat(parts, " | "), w, { ascii = self.ascii })
  return util.paint(line, "dim", self.color)
end

-- gantt prints task names as they are: give it a snapshot with safe names
local function safe_names(snap)
  local unsafe = false
  for _, t in ipairs(snap.tasks) do
    if type(t.name) == "string" and t.name:find("[%c\128-\255]") then unsafe = true break end
  end
  if not unsafe then return snap end
  local copy = setmetatable({ tasks = {} }, { __index = snap })
  for i, t in ipairs(snap.tasks) do
    copy.tasks[i] = setmetatable({ name = util.sanitize(t.name) }, { __index = t })
  end
  return copy
end

local function timeline_body(self, w, h)
  local gantt = self.gantt
  if not gantt then
    local ok, mod = pcall(require, "async_inspect.views.gantt")
    if not ok then return { "Timeline unavailable: " .. util.sanitize(tostring(mod)) } end
    gantt = mod
    self.gantt = mod
  end
  local snap = self.snap
  local opts = { width = w, color = self.color, ascii = self.ascii }
  if self.tl.span then
    local right = self.tl.right or snap.t
    opts.from = math.max(0, right - self.tl.span)
    opts.to = math.max(opts.from + 1, right)
  end
  local f = self.editing or self.filter
  if f and f ~= "" then opts.filter = function(task) return tasks_view.matches(task, f) end end
  local ok, lines = pcall(gantt, safe_names(snap), opts)
  if not ok then return { "Timeline failed: " .. util.sanitize(tostring(lines)) } end
  -- keep the head (summary) and the tail (axis, legend) in view; scroll the task rows
  local first, last = nil, nil
  for i, l in ipairs(lines) do
    if util.strip(l):match("^#%d") then
      first = first or i
      last = i
    end
  end
  if not first or #lines <= h then return lines end
  local head, tail = first - 1, #lines - last
  local room = math.max(1, h - head - tail)
  local rows = table.move(lines, first, last, 1, {})
  local shown, off = util.scroll(rows, room, self.offsets.timeline)
  self.offsets.timeline = off
  local out = table.move(lines, 1, head, 1, {})
  table.move(shown, 1, #shown, #out + 1, out)
  table.move(lines, last + 1, #lines, #out + 1, out)
  return out
end

local function with_details(self, snap, id)
  local details = self.source.details
  if not details or not id then return snap end
  local ok, extra = pcall(details, id)
  if not ok or type(extra) ~= "table" then return snap end
  local copy = setmetatable({ tasks = {} }, { __index = snap })
  for i, t in ipairs(snap.tasks) do
    copy.tasks[i] = t.id == id and setmetatable(extra, { __index = t }) or t
  end
  return copy
end

local function list_body(self, name, view, w, h)
  local st = self.lists[name]
  local filter = self.editing or self.filter
  local lines, info = view.render(self.snap, {
    width = w, height = h, sort = self.sort, invert = self.invert, filter = filter,
    selected = st.id or false, cursor = st.cursor, offset = st.offset,
    color = self.color, ascii = self.ascii,
  })
  st.info, st.id, st.offset = info, info.selected, info.offset
  st.cursor = info.index or st.cursor
  return lines
end

local function scrolled(self, name, lines, h)
  local shown, off = util.scroll(lines, h, self.offsets[name])
  self.offsets[name] = off
  return shown
end

local function body(self, w, h)
  local o = { width = w, color = self.color, ascii = self.ascii }
  if self.help then
    o.mode = self.mode
    local lines = help_view.render(o)
    local shown, off = util.scroll(lines, h, self.help_offset)
    self.help_offset = off
    return shown
  end
  local v = self.view
  if v == "tasks" then return list_body(self, "tasks", tasks_view, w, h) end
  if v == "tree" then return list_body(self, "tree", tree_view, w, h) end
  if v == "timeline" then return timeline_body(self, w, h) end
  if v == "detail" then
    o.id = self.detail_id
    return scrolled(self, "detail", detail_view.render(with_details(self, self.snap, o.id), o), h)
  end
  if v == "resources" then return scrolled(self, "resources", resources_view.render(self.snap, o), h) end
  return scrolled(self, "warnings", warnings_view.render(self.snap, o), h)
end

--- Draw a frame: a header with the views and the status, the current view, and a footer
-- with hints (or the filter being typed).
-- @tparam integer w columns
-- @tparam integer h rows
-- @treturn {string,...} exactly `h` lines, none wider than `w`
function App:frame(w, h)
  if math.type(w) ~= "integer" or math.type(h) ~= "integer" then
    error("bad argument to 'frame' (integer width and height expected)", 2)
  end
  w, h = math.max(w, 10), math.max(h, 3)
  self.w, self.h, self.page = w, h, h - 2
  local lines = { header(self, w) }
  local ok, b = pcall(body, self, w, h - 2)
  if not ok then b = { "view failed: " .. util.sanitize(tostring(b)) } end
  for i = 1, h - 2 do
    local l = b[i] or ""
    if util.width(l) > w then l = util.fit(l, w) end
    lines[#lines + 1] = l
  end
  lines[h] = footer(self, w)
  return lines
end

return M

--- Helpers shared by the text views: duration formatting, safe text, display width,
-- truncation, column layout, bars and sparklines, box characters and colours.
--
-- Everything here is pure: strings and numbers in, strings out. Text that comes from a
-- snapshot (task names, error messages, locations) may contain control characters or
-- invalid UTF-8; `sanitize` makes it safe to print on a terminal, and every other
-- function assumes sanitized text.
-- @module async_inspect.views.util

local M = {}

local floor, max, min = math.floor, math.max, math.min
local format, concat = string.format, table.concat

--- Raise a "bad argument" error in the style of the standard library.
-- @tparam integer n argument position
-- @tparam string fname function name
-- @tparam string expected expected type name
-- @param got the value received
-- @usage util.arg_error(1, "render", "table", x)
function M.arg_error(n, fname, expected, got)
  error(format("bad argument #%d to '%s' (%s expected, got %s)", n, fname, expected,
    type(got) == "nil" and "no value" or type(got)), 3)
end

--- Check that a value has a given type (or is nil when `optional`), raising at the caller.
-- @param v the value
-- @tparam string tname expected type
-- @tparam integer n argument position
-- @tparam string fname function name
-- @tparam[opt] boolean optional nil is accepted
-- @return v
function M.check(v, tname, n, fname, optional)
  if v == nil and optional then return v end
  if type(v) ~= tname then
    error(format("bad argument #%d to '%s' (%s expected, got %s)", n, fname, tname,
      v == nil and "no value" or type(v)), 3)
  end
  return v
end

--- Check that a value is a snapshot (a table with `t`, `stats` and `tasks`).
-- @param snap the value
-- @tparam string fname function name for the error message
-- @return snap
function M.check_snapshot(snap, fname)
  if type(snap) ~= "table" then
    error(format("bad argument #1 to '%s' (snapshot table expected, got %s)", fname,
      snap == nil and "no value" or type(snap)), 3)
  end
  if type(snap.tasks) ~= "table" or type(snap.t) ~= "number" then
    error(format("bad argument #1 to '%s' (snapshot needs 't' and 'tasks')", fname), 3)
  end
  return snap
end

-- Durations ------------------------------------------------------------------------------

local function scaled(v, unit)
  if v < 9.995 then return format("%.2f%s", v, unit) end
  if v < 99.95 then return format("%.1f%s", v, unit) end
  return format("%.0f%s", v, unit)
end

--- Format nanoseconds in at most 7 columns: `850ns`, `12.3µs`, `4.56ms`, `1.20s`, `2m03s`, `1h02m`.
-- @tparam integer|nil ns nanoseconds (nil gives "-")
-- @tparam[opt] boolean ascii write `us` instead of `µs`
-- @treturn string
-- @usage util.duration(1500000) --> "1.50ms"
function M.duration(ns, ascii)
  if type(ns) ~= "number" then return "-" end
  if ns < 0 then ns = 0 end
  if ns < 1000 then return format("%dns", floor(ns)) end
  if ns < 999500 then return scaled(ns / 1e3, ascii and "us" or "µs") end
  if ns < 999500000 then return scaled(ns / 1e6, "ms") end
  if ns < 59995000000 then return scaled(ns / 1e9, "s") end
  local s = floor(ns / 1e9 + 0.5)
  if s < 3600 then return format("%dm%02ds", s // 60, s % 60) end
  if s < 360000 then return format("%dh%02dm", s // 3600, (s % 3600) // 60) end
  return format("%dd%02dh", s // 86400, (s % 86400) // 3600)
end

--- Format a time since the start of tracking, in seconds with millisecond precision.
-- @tparam integer|nil ns
-- @treturn string e.g. "12.345s"
function M.timestamp(ns)
  if type(ns) ~= "number" then return "-" end
  return format("%.3fs", ns / 1e9)
end

--- Total, busy and idle time of a task at time `now`.
-- Total runs from creation to the end (or to `now` while alive); idle is total minus busy.
-- @tparam table task a task record
-- @tparam integer now snapshot time
-- @treturn integer total
-- @treturn integer busy
-- @treturn integer idle
function M.task_times(task, now)
  local created = task.created or now
  local stop = task.ended or now
  local total = max(0, stop - created)
  local busy = task.busy or 0
  return total, busy, max(0, total - busy)
end

-- Text safety and width -------------------------------------------------------------------

local utf8_len, utf8_codepoint = utf8.len, utf8.codepoint

-- A replacement for bytes that must not reach the terminal.
local BAD = "?"

--- Make text safe for a terminal: control characters (including C1 and ESC) and invalid
-- UTF-8 bytes become `?`, tabs become a space.
-- @param s any value (non-strings are converted with `tostring` only for numbers/booleans)
-- @treturn string
function M.sanitize(s)
  if s == nil then return "" end
  if type(s) ~= "string" then
    if type(s) == "number" or type(s) == "boolean" then return tostring(s) end
    return "<" .. type(s) .. ">"
  end
  if not s:find("[%c\128-\255]") then return s end
  local out, i, n = {}, 1, #s
  while i <= n do
    local b = s:byte(i)
    if b < 32 or b == 127 then
      out[#out + 1] = b == 9 and " " or BAD
      i = i + 1
    elseif b < 128 then
      local j = s:find("[%c\128-\255]", i) or n + 1
      out[#out + 1] = s:sub(i, j - 1)
      i = j
    else
      local len = b >= 0xF0 and 4 or b >= 0xE0 and 3 or b >= 0xC2 and 2 or 0
      local ch = len > 0 and s:sub(i, i + len - 1)
      if ch and #ch == len and utf8_len(ch) == 1 and not (b == 0xC2 and ch:byte(2) < 0xA0) then
        out[#out + 1] = ch
        i = i + len
      else
        out[#out + 1] = BAD
        i = i + 1
      end
    end
  end
  return concat(out)
end

-- Wide (two-column) ranges: CJK, Hangul, fullwidth forms, common emoji.
local WIDE = {
  { 0x1100, 0x115F }, { 0x2E80, 0x303E }, { 0x3041, 0x33FF }, { 0x3400, 0x4DBF },
  { 0x4E00, 0x9FFF }, { 0xA000, 0xA4CF }, { 0xAC00, 0xD7A3 }, { 0xF900, 0xFAFF },
  { 0xFE30, 0xFE4F }, { 0xFF00, 0xFF60 }, { 0xFFE0, 0xFFE6 }, { 0x1F300, 0x1F64F },
  { 0x1F900, 0x1F9FF }, { 0x20000, 0x3FFFD },
}

local function cp_width(cp)
  if cp < 0x300 then return 1 end
  if cp <= 0x36F or (cp >= 0x200B and cp <= 0x200F) or (cp >= 0xFE00 and cp <= 0xFE0F) then
    return 0
  end
  for i = 1, #WIDE do
    local r = WIDE[i]
    if cp < r[1] then return 1 end
    if cp <= r[2] then return 2 end
  end
  return 1
end

local SGR = "\27%[[%d;]*m"

--- Display width of sanitized text in terminal columns (SGR colour sequences count as 0).
-- @tparam string s
-- @treturn integer
function M.width(s)
  if s:find("\27", 1, true) then s = s:gsub(SGR, "") end
  if not s:find("[\128-\255]") then return #s end
  local w = 0
  for _, cp in utf8.codes(s) do w = w + cp_width(cp) end
  return w
end

--- Cut sanitized text (without colour sequences) to at most `w` columns, marking the cut
-- with an ellipsis.
-- @tparam string s
-- @tparam integer w maximum width
-- @tparam[opt] table opts `left=true` keeps the end of the text (for paths), `ascii=true`
-- marks the cut with `~` instead of `…`
-- @treturn string
-- @usage util.truncate("src/server/handler.lua:42", 12, {left=true}) --> "…ndler.lua:42"
function M.truncate(s, w, opts)
  if w <= 0 then return "" end
  if M.width(s) <= w then return s end
  local mark = (opts and opts.ascii) and "~" or "…"
  local cps = {}
  for _, cp in utf8.codes(s) do cps[#cps + 1] = cp end
  local keep, used = {}, 0
  local from, to, step = 1, #cps, 1
  if opts and opts.left then from, to, step = #cps, 1, -1 end
  for i = from, to, step do
    local cw = cp_width(cps[i])
    if used + cw > w - 1 then break end
    keep[#keep + 1] = cps[i]
    used = used + cw
  end
  if opts and opts.left then
    local rev = {}
    for i = #keep, 1, -1 do rev[#rev + 1] = keep[i] end
    return mark .. utf8.char(table.unpack(rev))
  end
  if #keep == 0 then return mark end
  return utf8.char(table.unpack(keep)) .. mark
end

--- Truncate then pad text to exactly `w` columns.
-- @tparam string s sanitized text
-- @tparam integer w width
-- @tparam[opt] string align "left" (default) or "right"
-- @tparam[opt] table opts passed to `truncate`
-- @treturn string
function M.pad(s, w, align, opts)
  s = M.truncate(s, w, opts)
  local gap = w - M.width(s)
  if gap <= 0 then return s end
  if align == "right" then return (" "):rep(gap) .. s end
  return s .. (" "):rep(gap)
end

--- Fit a line that may contain colour sequences into `w` columns (cutting without a mark).
-- Colour sequences are kept, so a cut line still ends with its resets.
-- @tparam string s
-- @tparam integer w
-- @treturn string
function M.fit(s, w)
  if M.width(s) <= w then return s end
  local out, used, i, n, full = {}, 0, 1, #s, false
  while i <= n do
    local a, b = s:find(SGR, i)
    if a == i then
      out[#out + 1] = s:sub(a, b)
      i = b + 1
    else
      local stop = a and a - 1 or n
      -- plain text up to the next colour sequence
      while i <= stop do
        local cp = utf8_codepoint(s, i)
        local len = #utf8.char(cp)
        if not full then
          local cw = cp_width(cp)
          if used + cw <= w then
            out[#out + 1] = s:sub(i, i + len - 1)
            used = used + cw
          else
            full = true
          end
        end
        i = i + len
      end
    end
  end
  return concat(out)
end

--- Wrap sanitized text to lines of at most `w` columns, breaking at spaces when possible.
-- Leading spaces of the text are kept on the first line.
-- @tparam string s
-- @tparam integer w
-- @tparam[opt] string indent prefix for continuation lines
-- @treturn {string,...}
function M.wrap(s, w, indent)
  w = max(1, w)
  indent = indent or ""
  if M.width(indent) >= w then indent = "" end
  -- the first line keeps its own leading spaces
  local lead = s:match("^ *")
  if M.width(lead) >= w then lead = "" end
  local lines, line, empty = {}, lead, true
  for word in s:gmatch("%S+") do
    local cand = empty and (line .. word) or (line .. " " .. word)
    if not empty and M.width(cand) > w then
      lines[#lines + 1] = line
      line = indent
      cand = line .. word
    end
    -- a word longer than a line is cut hard
    while M.width(cand) > w do
      local head = M.fit(cand, w)
      lines[#lines + 1] = head
      cand = indent .. cand:sub(#head + 1)
    end
    line, empty = cand, false
  end
  if not empty or #lines == 0 then lines[#lines + 1] = line end
  return lines
end

-- Columns ----------------------------------------------------------------------------------

--- Compute column widths for a table layout.
-- Each spec is `{w=fixed}` or `{min=n, weight=n}` (flexible), with an optional `drop`
-- priority: when the columns do not fit, those with the highest `drop` go first.
-- Columns are separated by one space.
-- @tparam {table,...} specs column specs (not modified)
-- @tparam integer width available width
-- @treturn {integer,...} widths, 0 for a dropped column
function M.layout(specs, width)
  local widths, alive = {}, {}
  for i = 1, #specs do alive[i] = true end
  local function need()
    local total, count = 0, 0
    for i, s in ipairs(specs) do
      if alive[i] then
        total = total + (s.w or s.min or 1)
        count = count + 1
      end
    end
    return total + max(0, count - 1)
  end
  while need() > width do
    local worst, worst_i = 0, nil
    for i, s in ipairs(specs) do
      if alive[i] and (s.drop or 0) > worst then worst, worst_i = s.drop, i end
    end
    if not worst_i then break end
    alive[worst_i] = false
  end
  local extra, weights = max(0, width - need()), 0
  for i, s in ipairs(specs) do
    if alive[i] and not s.w then weights = weights + (s.weight or 1) end
  end
  local given, last_flex = 0, nil
  for i, s in ipairs(specs) do
    if not alive[i] then
      widths[i] = 0
    elseif s.w then
      widths[i] = s.w
    else
      local add = weights > 0 and floor(extra * (s.weight or 1) / weights) or 0
      if s.max then add = min(add, max(0, s.max - (s.min or 1))) end
      widths[i] = (s.min or 1) + add
      given = given + add
      last_flex = i
    end
  end
  if last_flex and not specs[last_flex].max then
    widths[last_flex] = widths[last_flex] + (extra - given)
  end
  return widths
end

--- Join cells into one line using widths from `layout`; cells of width 0 are left out.
-- @tparam {string,...} cells sanitized cell texts
-- @tparam {integer,...} widths from `layout`
-- @tparam[opt] {table,...} specs column specs; `align` and `left` (truncate from the left) are used
-- @tparam[opt] table opts `ascii`, and `paint` = function(i, text) returning coloured text
-- @treturn string
function M.row(cells, widths, specs, opts)
  local out = {}
  for i = 1, #widths do
    local w = widths[i]
    if w > 0 then
      local s = specs and specs[i] or {}
      local text = M.pad(cells[i] or "", w, s.align,
        { left = s.left, ascii = opts and opts.ascii })
      if opts and opts.paint then text = opts.paint(i, text) end
      out[#out + 1] = text
    end
  end
  return concat(out, " ")
end

-- Characters --------------------------------------------------------------------------------

local UNICODE = {
  h = "─", v = "│", branch = "├─ ", last = "└─ ", pipe = "│  ", blank = "   ",
  up = "▲", down = "▼", arrow = "→", dot = "·", play = "▶", pause = "‖",
  full = "█", parts = { "▏", "▎", "▍", "▌", "▋", "▊", "▉" },
  spark = { "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█" },
  cursor = "█", sel = ">",
}
local ASCII = {
  h = "-", v = "|", branch = "|- ", last = "`- ", pipe = "|  ", blank = "   ",
  up = "^", down = "v", arrow = "->", dot = ".", play = ">", pause = "||",
  full = "#", parts = {},
  spark = { "_", ".", ":", "-", "=", "+", "*", "#" },
  cursor = "_", sel = ">",
}

--- Box-drawing and symbol characters.
-- @tparam[opt] boolean ascii ASCII-only characters
-- @treturn table with fields h, v, branch, last, pipe, blank, up, down, arrow, full, parts, spark, ...
function M.chars(ascii)
  return ascii and ASCII or UNICODE
end

--- A horizontal bar `fraction` of `w` columns long (eighth-block precision in Unicode).
-- @tparam number fraction 0..1
-- @tparam integer w width of a full bar
-- @tparam[opt] boolean ascii
-- @treturn string (not padded)
function M.bar(fraction, w, ascii)
  local c = M.chars(ascii)
  fraction = min(1, max(0, fraction))
  local cells = fraction * w
  local whole = floor(cells)
  local s = c.full:rep(whole)
  local part = floor((cells - whole) * 8)
  if part > 0 and #c.parts > 0 then s = s .. c.parts[part] end
  if s == "" and fraction > 0 then s = #c.parts > 0 and c.parts[1] or "." end
  return s
end

--- A sparkline of numbers, one character each, scaled between 0 and the largest value.
-- @tparam {number,...} values
-- @tparam[opt] boolean ascii
-- @treturn string
function M.sparkline(values, ascii)
  local c = M.chars(ascii).spark
  local top = 0
  for _, v in ipairs(values) do top = max(top, v) end
  local out = {}
  for i, v in ipairs(values) do
    local k = top > 0 and floor(v / top * (#c - 1) + 0.5) + 1 or 1
    out[i] = c[k]
  end
  return concat(out)
end

--- Percentile (nearest rank) of an ascending array of numbers.
-- @tparam {number,...} sorted
-- @tparam number p 0..100
-- @treturn number|nil
function M.percentile(sorted, p)
  local n = #sorted
  if n == 0 then return nil end
  local k = max(1, min(n, math.ceil(p / 100 * n)))
  return sorted[k]
end

-- States and colours ------------------------------------------------------------------------

local STATE_LABEL = {
  pending = "PEND", running = "RUN", suspended = "SUSP", normal = "NORM",
  completed = "DONE", failed = "FAIL", cancelled = "CANC", dropped = "DROP",
}

--- Four-letter label of a task state (`RUN`, `SUSP`, `DONE`, ...).
-- @tparam string|nil state
-- @treturn string
function M.state_label(state)
  return STATE_LABEL[state] or M.sanitize(state or "?"):upper():sub(1, 4)
end

--- Sort rank of a state: live states first, then finished ones.
M.STATE_RANK = {
  running = 1, normal = 2, suspended = 3, pending = 4,
  failed = 5, cancelled = 6, dropped = 7, completed = 8,
}

--- Whether a state is final.
-- @tparam string|nil state
-- @treturn boolean
function M.finished(state)
  return state == "completed" or state == "failed" or state == "cancelled" or state == "dropped"
end

local STYLE = {
  running = "green", normal = "green", suspended = "yellow", pending = "cyan",
  completed = "dim", failed = "red", cancelled = "magenta", dropped = "red",
}

--- Colour style of a task state.
-- @tparam string|nil state
-- @treturn string|nil style name for `paint`
function M.state_style(state)
  return STYLE[state]
end

local SGR_ON = {
  bold = "1", dim = "2", reverse = "7", underline = "4",
  red = "31", green = "32", yellow = "33", blue = "34", magenta = "35", cyan = "36",
}
local SGR_OFF = {
  bold = "22", dim = "22", reverse = "27", underline = "24",
  red = "39", green = "39", yellow = "39", blue = "39", magenta = "39", cyan = "39",
}

--- Wrap text in an SGR style when colour is on. Styles use their own off codes (not a full
-- reset), so they nest: a coloured cell inside a reversed line keeps the reverse.
-- @tparam string s
-- @tparam string|nil style bold, dim, reverse, underline, red, green, yellow, blue, magenta, cyan
-- @tparam boolean|nil color
-- @treturn string
function M.paint(s, style, color)
  if not color or not style or not SGR_ON[style] then return s end
  return "\27[" .. SGR_ON[style] .. "m" .. s .. "\27[" .. SGR_OFF[style] .. "m"
end

--- Remove SGR colour sequences from text.
-- @tparam string s
-- @treturn string
function M.strip(s)
  return (s:gsub(SGR, ""))
end

--- Scroll a list of lines: return `height` lines starting after `offset`, and the offset
-- actually used (clamped so the last page is full).
-- @tparam {string,...} lines
-- @tparam integer height
-- @tparam[opt] integer offset
-- @treturn {string,...}
-- @treturn integer offset used
function M.scroll(lines, height, offset)
  offset = max(0, min(offset or 0, #lines - height))
  local out = {}
  for i = offset + 1, min(#lines, offset + height) do out[#out + 1] = lines[i] end
  return out, offset
end

--- Look up a task by id in a snapshot (linear scan; views build an index when they need many).
-- @tparam table snap snapshot
-- @treturn table id -> task record
function M.index(snap)
  local by = {}
  for _, t in ipairs(snap.tasks) do by[t.id] = t end
  return by
end

--- Short description of a task: `#id name`.
-- @tparam table|nil task
-- @tparam[opt] integer id used when the task is unknown
-- @treturn string
function M.task_ref(task, id)
  if not task then return id and ("#" .. tostring(id)) or "-" end
  return "#" .. tostring(task.id) .. " " .. M.sanitize(task.name or "")
end

return M

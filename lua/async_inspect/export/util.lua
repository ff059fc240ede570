--- Shared helpers of the exporters: escaping (JSON, XML, CSV), number
-- formatting, and a buffered streaming writer.
--
-- Everything here is on the hot path of an export of millions of events, so
-- the functions avoid `string.format` and cache the escaped form of strings
-- that repeat (task names, source locations, await labels).
-- @module async_inspect.export.util

local M = {}

local concat = table.concat
local tointeger = math.tointeger
local floor = math.floor
local utf8len = utf8.len
local mtype = math.type

local REPLACEMENT = "\239\191\189" -- U+FFFD

--- Replace invalid UTF-8 sequences by U+FFFD.
-- JSON and XML must be valid UTF-8 (expat, Perfetto and browsers reject or
-- mangle anything else), while Lua strings such as error messages can hold
-- arbitrary bytes.
-- @tparam string s
-- @treturn string valid UTF-8
function M.utf8_clean(s)
  if utf8len(s) then return s end
  local out, n, i, len = {}, 0, 1, #s
  while i <= len do
    if utf8len(s, i, i) then
      -- A valid character starts here; utf8.offset finds the next one.
      local nxt = utf8.offset(s, 2, i) or (len + 1)
      n = n + 1; out[n] = s:sub(i, nxt - 1)
      i = nxt
    else
      n = n + 1; out[n] = REPLACEMENT
      i = i + 1
    end
  end
  return concat(out)
end

local json_esc = {
  ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
  ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t', ['\127'] = '\\u007f',
}
for i = 0, 31 do
  local c = string.char(i)
  if not json_esc[c] then json_esc[c] = ("\\u%04x"):format(i) end
end

--- Quote a string as a JSON string literal (with the surrounding quotes).
-- @tparam string s
-- @treturn string
function M.json_quote_raw(s)
  if s:find('[%c"\\\128-\255]') then
    if s:find("[\128-\255]") then s = M.utf8_clean(s) end
    s = s:gsub('[%c"\\]', json_esc)
  end
  return '"' .. s .. '"'
end

--- A memoising JSON quoter: strings repeat a lot in event streams (locations,
-- labels, names), so each distinct string is escaped once. The cache is
-- bounded so that memory stays flat however many distinct strings stream by.
-- @tparam[opt=4096] integer limit entries kept before the cache is reset
-- @treturn function quote(s) -> JSON literal
function M.json_quoter(limit)
  limit = limit or 4096
  local cache, count = {}, 0
  local raw = M.json_quote_raw
  return function(s)
    local q = cache[s]
    if q then return q end
    q = raw(s)
    if count >= limit then cache, count = {}, 0 end
    cache[s] = q
    count = count + 1
    return q
  end
end

--- Encode a scalar Lua value as JSON text (`nil` and non-finite numbers give
-- `null`; tables and functions are not scalars and give `null` too).
-- @param v
-- @treturn string
function M.json_scalar(v)
  local tv = type(v)
  if tv == "string" then return M.json_quote_raw(v) end
  if tv == "number" then
    if mtype(v) == "integer" then return tostring(v) end
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    local i = tointeger(v)
    if i then return tostring(i) end
    return ("%.17g"):format(v)
  end
  if tv == "boolean" then return tostring(v) end
  return "null"
end

--- Encode a flat table of scalars as a JSON object with sorted keys
-- (sorted so that the output is deterministic).
-- @tparam table t
-- @treturn string
function M.json_flat_object(t)
  local keys = {}
  for k, v in pairs(t) do
    if type(k) == "string" and type(v) ~= "table" and type(v) ~= "function" then
      keys[#keys + 1] = k
    end
  end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do
    parts[i] = M.json_quote_raw(k) .. ":" .. M.json_scalar(t[k])
  end
  return "{" .. concat(parts, ",") .. "}"
end

local xml_esc = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
                  ['"'] = "&quot;", ["'"] = "&#39;" }

--- Escape text for XML/HTML content and attribute values.
-- Control characters other than tab, CR and LF are not allowed in XML 1.0
-- even as character references, so they become U+FFFD, as do invalid UTF-8
-- bytes and the non-characters U+FFFE/U+FFFF.
-- @param s any value (converted with tostring)
-- @treturn string
function M.xml_escape(s)
  s = tostring(s)
  if s:find("[\128-\255]") then
    s = M.utf8_clean(s):gsub("\239\191[\190\191]", REPLACEMENT)
  end
  s = s:gsub("[%z\1-\8\11\12\14-\31\127]", REPLACEMENT)
  return (s:gsub("[&<>\"']", xml_esc))
end

--- Quote one CSV field following RFC 4180: fields holding a comma, a double
-- quote, CR or LF are enclosed in double quotes with inner quotes doubled;
-- `nil` is the empty field. Bytes are kept as they are, so the file round
-- trips exactly.
-- @param v string, number, boolean or nil
-- @treturn string
function M.csv_field(v)
  if v == nil then return "" end
  if type(v) ~= "string" then
    if type(v) == "number" and mtype(v) == "float" and tointeger(v) then
      v = tointeger(v)
    end
    return tostring(v)
  end
  if v:find('[,"\r\n]') then
    return '"' .. v:gsub('"', '""') .. '"'
  end
  return v
end

-- "000" .. "999": the fractional part of a nanosecond count in microseconds.
local frac3 = {}
for i = 0, 999 do frac3[i] = (i < 10 and "00" or i < 100 and "0" or "") .. i end
M.frac3 = frac3

--- Format integer nanoseconds as microseconds with exactly three decimals,
-- without floating point: 12345 -> "12.345", 7 -> "0.007".
-- @tparam integer n nanoseconds
-- @treturn string
function M.us(n)
  if mtype(n) ~= "integer" then n = floor(n) end
  if n < 0 then return "-" .. M.us(-n) end
  return (n // 1000) .. "." .. frac3[n % 1000]
end

--- Format a duration in nanoseconds for humans: "850 ns", "12.3 µs",
-- "4.56 ms", "1.20 s", "3m20s".
-- @tparam number ns
-- @tparam[opt] boolean ascii use "us" instead of "µs"
-- @treturn string
function M.human_ns(ns, ascii)
  ns = ns or 0
  local a = math.abs(ns)
  local function num(v)
    if v >= 100 then return ("%.0f"):format(v) end
    if v >= 10 then return ("%.1f"):format(v) end
    return ("%.2f"):format(v)
  end
  if a < 1000 then return ("%d ns"):format(floor(ns)) end
  if a < 1e6 then return num(ns / 1e3) .. (ascii and " us" or " µs") end
  if a < 1e9 then return num(ns / 1e6) .. " ms" end
  if a < 60e9 then return num(ns / 1e9) .. " s" end
  local s = floor(ns / 1e9)
  if s < 3600 then return ("%dm%02ds"):format(s // 60, s % 60) end
  return ("%dh%02dm"):format(s // 3600, (s % 3600) // 60)
end

--- A 32-bit FNV-1a hash of a string (stable colours per frame name).
-- @tparam string s
-- @treturn integer in [0, 2^32)
function M.hash(s)
  local h = 2166136261
  for i = 1, #s do
    h = ((h ~ s:byte(i)) * 16777619) & 0xffffffff
  end
  return h
end

--- Open an export target.
-- @param target a path (string) or an open file handle
-- @tparam string mode fopen mode for paths ("w" or "wb")
-- @treturn file the handle
-- @treturn boolean true when the handle was opened here (caller closes it)
function M.open_target(target, mode)
  if io.type(target) == "file" then return target, false end
  local f, err = io.open(target, mode or "wb")
  if not f then error("cannot open " .. tostring(target) .. ": " .. tostring(err), 0) end
  return f, true
end

--- True when `v` is usable as an export target (path or open file).
-- @param v
-- @treturn boolean
function M.is_target(v)
  return type(v) == "string" or io.type(v) == "file"
end

--- A buffered writer over a file handle: pieces are collected in a table and
-- written with one `f:write(table.concat(...))` every `limit` bytes, so the
-- memory held is bounded by `limit` whatever the size of the export.
-- @tparam file f
-- @tparam[opt=32768] integer limit bytes buffered before a write
-- @treturn table writer with `put(s)`, `flush()`, and field `bytes`
function M.writer(f, limit)
  limit = limit or 32768
  local buf, n, size = {}, 0, 0
  local w = { bytes = 0 }
  function w.put(s)
    n = n + 1
    buf[n] = s
    size = size + #s
    if size >= limit then
      local chunk = concat(buf, "", 1, n)
      assert(f:write(chunk))
      w.bytes = w.bytes + #chunk
      n, size = 0, 0
    end
  end
  function w.flush()
    if n > 0 then
      local chunk = concat(buf, "", 1, n)
      assert(f:write(chunk))
      w.bytes = w.bytes + #chunk
      n, size = 0, 0
    end
    -- Drop references to written pieces so that they can be collected.
    buf = {}
    f:flush()
  end
  return w
end

--- Coerce a time value to an integer number of nanoseconds (recordings read
-- back from JSON may carry floats).
-- @param t number or nil
-- @treturn integer|nil
function M.ns(t)
  if t == nil then return nil end
  if mtype(t) == "integer" then return t end
  return tointeger(floor(t)) or floor(t)
end

--- Build the list of tasks sorted by start (creation time, then id).
-- @tparam table tasks array of task records
-- @treturn table new array
function M.by_start(tasks)
  local out = {}
  for i = 1, #tasks do out[i] = tasks[i] end
  table.sort(out, function(a, b)
    local ca, cb = a.created or 0, b.created or 0
    if ca ~= cb then return ca < cb end
    return a.id < b.id
  end)
  return out
end

return M

--- JSON lines for the remote protocol and recordings.
--
-- Encoding is done here rather than with lua-cjson because cjson writes integers with 14
-- significant digits (nanosecond times lose precision after a day). Decoding uses cjson
-- (a private instance) and turns `null` into nil and integral numbers into integers.
-- @module async_inspect.wire

local cjson = require("cjson").new()

local M = {}

local format, concat, mtype = string.format, table.concat, math.type

local ESC = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
  ["\r"] = "\\r", ["\t"] = "\\t",
}

local function escape_char(c)
  return ESC[c] or format("\\u%04x", c:byte())
end

-- Invalid UTF-8 would make the line unreadable for strict parsers: such bytes become U+FFFD.
local function valid_utf8(s)
  if utf8.len(s) then return s end
  local out, i, n = {}, 1, #s
  while i <= n do
    local b = s:byte(i)
    local len = b < 0x80 and 1 or b >= 0xF0 and 4 or b >= 0xE0 and 3 or b >= 0xC2 and 2 or 0
    local ch = len > 0 and s:sub(i, i + len - 1)
    if ch and #ch == len and utf8.len(ch) == 1 then
      out[#out + 1] = ch
      i = i + len
    else
      out[#out + 1] = "\u{FFFD}"
      i = i + 1
    end
  end
  return concat(out)
end

local function encode_string(s)
  if s:find("[%c\"\\\128-\255]") then
    s = valid_utf8(s):gsub('[%c"\\]', escape_char)
  end
  return '"' .. s .. '"'
end

local encode_value

local function is_array(t)
  local n = #t
  if n == 0 then return next(t) == nil end
  local count = 0
  for k in pairs(t) do
    if mtype(k) ~= "integer" or k < 1 or k > n then return false end
    count = count + 1
  end
  return count == n
end

-- the keys of an object that are written: functions, userdata and threads are left out
local function object_keys(t, sorted)
  local keys = {}
  for k, v in pairs(t) do
    local tv = type(v)
    if tv ~= "function" and tv ~= "userdata" and tv ~= "thread" then keys[#keys + 1] = k end
  end
  if sorted then table.sort(keys, function(a, b) return tostring(a) < tostring(b) end) end
  return keys
end

-- `indent`: nil for compact output, else the current indentation (pretty, sorted keys)
local function encode_table(t, out, depth, indent)
  if depth > 64 then error("wire.encode: nesting deeper than 64 (a cycle?)", 0) end
  local array = is_array(t)
  local keys = not array and object_keys(t, indent ~= nil) or nil
  local n = array and #t or #keys
  if n == 0 then
    out[#out + 1] = array and "[]" or "{}"
    return
  end
  local inner = indent and indent .. "  "
  local sep = indent and ",\n" or ","
  out[#out + 1] = array and "[" or "{"
  if indent then out[#out + 1] = "\n" end
  for i = 1, n do
    if i > 1 then out[#out + 1] = sep end
    if inner then out[#out + 1] = inner end
    if array then
      encode_value(t[i], out, depth + 1, inner)
    else
      local k = keys[i]
      out[#out + 1] = encode_string(type(k) == "string" and k or tostring(k))
      out[#out + 1] = indent and ": " or ":"
      encode_value(t[k], out, depth + 1, inner)
    end
  end
  if indent then out[#out + 1] = "\n" .. indent end
  out[#out + 1] = array and "]" or "}"
end

function encode_value(v, out, depth, indent)
  local tv = type(v)
  if tv == "string" then
    out[#out + 1] = encode_string(v)
  elseif tv == "number" then
    if mtype(v) == "integer" then
      out[#out + 1] = format("%d", v)
    elseif v ~= v or v == math.huge or v == -math.huge then
      out[#out + 1] = "null"
    else
      local s = format("%.14g", v)
      if tonumber(s) ~= v then s = format("%.17g", v) end
      out[#out + 1] = s
    end
  elseif tv == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif tv == "table" then
    encode_table(v, out, depth, indent)
  else
    out[#out + 1] = "null"
  end
end

--- Encode a value as compact JSON (no newline). Integers stay exact; empty tables become
-- `[]`; functions, userdata and threads become null (in arrays) or are left out (in objects).
-- @param v value
-- @treturn string
-- @usage wire.encode({type="ping", id=1}) --> '{"type":"ping","id":1}'
function M.encode(v)
  local out = {}
  encode_value(v, out, 0)
  return concat(out)
end

--- Encode a value as indented JSON with sorted keys, ending with a newline: the same
-- values as `encode`, laid out so that two files diff line by line.
-- @param v value
-- @treturn string
-- @usage io.write(wire.encode_pretty({b = 1, a = {2, 3}}))
function M.encode_pretty(v)
  local out = {}
  encode_value(v, out, 0, "")
  out[#out + 1] = "\n"
  return concat(out)
end

local null = cjson.null

local function normalize(v)
  if v == null then return nil end
  local tv = type(v)
  if tv == "number" then
    return math.tointeger(v) or v
  elseif tv == "table" then
    local n = #v
    for k, x in pairs(v) do v[k] = normalize(x) end
    -- nulls inside arrays leave holes; keep the length readable
    if n > 0 and v[n] == nil then
      local last = 0
      for k in pairs(v) do if mtype(k) == "integer" and k > last then last = k end end
      v.n = last
    end
  end
  return v
end

--- Decode one JSON text. `null` becomes nil and integral numbers become integers.
-- @tparam string s
-- @return the value, or nil and an error message
function M.decode(s)
  if type(s) ~= "string" then
    error(format("bad argument #1 to 'decode' (string expected, got %s)",
      s == nil and "no value" or type(s)), 2)
  end
  local ok, v = pcall(cjson.decode, s)
  if not ok then return nil, tostring(v) end
  return normalize(v)
end

--- A splitter of a byte stream into lines, bounded in size.
-- @tparam[opt] integer max_line longest accepted line in bytes (default 1 MiB)
-- @treturn function feed(chunk) returning an array of complete lines (without "\n"), or nil
-- and "line too long"
-- @usage local feed = wire.line_reader(); for _, l in ipairs(feed(data)) do ... end
function M.line_reader(max_line)
  if max_line ~= nil and type(max_line) ~= "number" then
    error(format("bad argument #1 to 'line_reader' (number expected, got %s)", type(max_line)), 2)
  end
  max_line = max_line or 1048576
  local parts, size = {}, 0
  return function(chunk)
    local lines, start = {}, 1
    while true do
      local nl = chunk:find("\n", start, true)
      if not nl then break end
      local piece = chunk:sub(start, nl - 1)
      if size + #piece > max_line then return nil, "line too long" end
      if #parts > 0 then
        parts[#parts + 1] = piece
        piece = concat(parts)
        parts, size = {}, 0
      end
      if piece:sub(-1) == "\r" then piece = piece:sub(1, -2) end
      lines[#lines + 1] = piece
      start = nl + 1
    end
    if start <= #chunk then
      local rest = chunk:sub(start)
      size = size + #rest
      if size > max_line then return nil, "line too long" end
      parts[#parts + 1] = rest
    end
    return lines
  end
end

--- The message for one event row, as written to the wire (nil fields are left out).
-- @tparam integer seq
-- @tparam integer t
-- @tparam integer task
-- @tparam string kind
-- @param loc
-- @param other
-- @param detail
-- @treturn table `{type="event", seq=, t=, task=, kind=, loc=, other=, detail=}`
function M.event(seq, t, task, kind, loc, other, detail)
  return { type = "event", seq = seq, t = t, task = task, kind = kind, loc = loc,
    other = other, detail = detail }
end

return M

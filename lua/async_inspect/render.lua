--- Safe rendering of arbitrary Lua values as one line of text.
--
-- Used for the locals and upvalues of suspended tasks, which may hold anything:
-- proxies whose `__index` raises, objects whose `__tostring` has side effects,
-- self-referencing graphs, 10 MB strings, binary data. Rendering never invokes a
-- metamethod: tables are read with `rawget`, `rawlen` and `next`, metatables with
-- `debug.getmetatable` and `rawget`, and no table, userdata or number is ever
-- passed to `tostring` (a number can have a metatable too). Tables, functions,
-- userdata and threads are shown as a type name and an id assigned here, so the
-- same object shows the same id within one rendering session and a cycle shows
-- as a reference to the id already printed.
--
-- Work is bounded: depth, entries per table, bytes per string and the total
-- width all have limits; a long string is cut with `string.sub` before it is
-- escaped, so a 10 MB string costs what the shown prefix costs.
-- @module async_inspect.render
-- @usage
-- local render = require "async_inspect.render"
-- print(render.value({1, 2, name = "x"}))   --> table#1 {1, 2, name = "x"}

local M = {}

local format, byte, sub, find, concat = string.format, string.byte, string.sub, string.find,
    table.concat
local getmetatable_raw, getinfo = debug.getmetatable, debug.getinfo
local rawget, rawlen, next, type, mathtype = rawget, rawlen, next, type, math.type

--- Default limits; every one can be overridden in the `opts` of `value`.
-- @table DEFAULTS
-- @field depth nesting levels of tables expanded (deeper ones show as `{...}`)
-- @field items entries shown per table
-- @field string_len bytes shown of a string
-- @field width characters of the whole rendering
-- @field scan keys of one table looked at for sorting and counting
M.DEFAULTS = { depth = 2, items = 8, string_len = 120, width = 400, scan = 4096 }

local LIMITS = { depth = { 0, 20 }, items = { 0, 10000 }, string_len = { 0, 1 << 20 },
                 width = { 16, 1 << 20 }, scan = { 1, 1 << 20 } }

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or
  repeat return then true until while]]):gmatch("%a+") do KEYWORDS[w] = true end

-- strings ----------------------------------------------------------------------------------

local NAMED_ESCAPES = {
  [7] = "\\a", [8] = "\\b", [9] = "\\t", [10] = "\\n", [11] = "\\v", [12] = "\\f",
  [13] = "\\r", [34] = '\\"', [92] = "\\\\",
}

-- Length of the valid, printable UTF-8 sequence at position i of s, or nil.
-- C1 controls (U+0080..U+009F) are not printable: terminals act on some of them.
local function utf8_seq(s, i, b)
  local len = b >= 0xF0 and 4 or b >= 0xE0 and 3 or b >= 0xC2 and 2 or 0
  if len == 0 or b > 0xF4 then return nil end
  local seq = sub(s, i, i + len - 1)
  if #seq ~= len or utf8.len(seq) ~= 1 then return nil end
  if b == 0xC2 and byte(seq, 2) < 0xA0 then return nil end
  return len
end

local function escape_byte(b)
  return NAMED_ESCAPES[b] or format("\\x%02X", b)
end

--- Escape text so it is one printable line: controls, quotes, backslashes,
-- invalid UTF-8 and C1 controls become Lua escapes (`\n`, `\"`, `\x00`); valid
-- printable UTF-8 stays as it is. The result, quoted, reads back in Lua as `s`.
-- @tparam string s
-- @treturn string
-- @usage render.escape("a\0b") --> [[a\x00b]]
function M.escape(s)
  if type(s) ~= "string" then
    error(format("bad argument #1 to 'escape' (string expected, got %s)",
      s == nil and "no value" or type(s)), 2)
  end
  if not find(s, '[%c"\\\128-\255]') then return s end
  local out, i, n = {}, 1, #s
  while i <= n do
    local j = find(s, '[%c"\\\128-\255]', i)
    if j == nil then
      out[#out + 1] = sub(s, i)
      break
    end
    if j > i then out[#out + 1] = sub(s, i, j - 1) end
    local b = byte(s, j)
    local len = b >= 128 and utf8_seq(s, j, b)
    if len then
      out[#out + 1] = sub(s, j, j + len - 1)
      i = j + len
    else
      out[#out + 1] = escape_byte(b)
      i = j + 1
    end
  end
  return concat(out)
end

-- the first `max` bytes of s, not splitting a UTF-8 sequence
local function prefix(s, max)
  local cut = max
  for _ = 1, 3 do
    local b = byte(s, cut + 1)
    if b == nil or b < 0x80 or b >= 0xC0 or cut == 0 then break end
    cut = cut - 1
  end
  return sub(s, 1, cut)
end

--- A string as a quoted, escaped literal, cut after `max` bytes.
-- Only the shown prefix is copied, however long `s` is.
-- @tparam string s
-- @tparam[opt=120] integer max bytes shown
-- @treturn string e.g. `"abc"` or `"abc"...<10485760 bytes>`
function M.string(s, max)
  if type(s) ~= "string" then
    error(format("bad argument #1 to 'string' (string expected, got %s)",
      s == nil and "no value" or type(s)), 2)
  end
  if max ~= nil and (mathtype(max) ~= "integer" or max < 0) then
    error("bad argument #2 to 'string' (non-negative integer expected)", 2)
  end
  max = max or M.DEFAULTS.string_len
  if #s <= max then return '"' .. M.escape(s) .. '"' end
  return format('"%s"...<%d bytes>', M.escape(prefix(s, max)), #s)
end

-- numbers, without tostring (numbers can have a metatable with __tostring) ------------------

local function number(v)
  if mathtype(v) == "integer" then return format("%d", v) end
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" end
  if v == -math.huge then return "-inf" end
  local s = format("%.14g", v)
  if not find(s, "[%.eEn]") then s = s .. ".0" end -- Lua shows floats as floats
  return s
end

-- ids and labels ------------------------------------------------------------------------------

--- A fresh id table for `opts.ids`: share one between calls to `value` so the same
-- object gets the same id in all of them. Weak-keyed: it keeps nothing alive.
-- @treturn table
function M.ids()
  return { map = setmetatable({}, { __mode = "k" }), n = 0 }
end

local function id_of(ids, v)
  local id = ids.map[v]
  if id == nil then
    ids.n = ids.n + 1
    id = ids.n
    ids.map[v] = id
  end
  return id
end

-- the __name of a metatable, read raw, when it is a sensible name
local function mt_name(mt)
  if type(mt) ~= "table" then return nil end
  local name = rawget(mt, "__name")
  if type(name) ~= "string" or #name == 0 or #name > 64 then return nil end
  return M.escape(name)
end

local function function_label(f, id)
  local info = getinfo(f, "S")
  if info == nil or info.what == "C" then return format("function#%d [C]", id) end
  return format("function#%d <%s:%d>", id, M.escape(info.short_src), info.linedefined)
end

-- label of a reference value: type (or __name) and id
local function label(v, ctx)
  local t = type(v)
  local id = id_of(ctx.ids, v)
  if t == "function" then return function_label(v, id) end
  if t == "thread" then return format("thread#%d %s", id, coroutine.status(v)) end
  local mt = getmetatable_raw(v)
  local name = mt_name(mt)
  if t == "table" then
    if name then return format("%s#%d", name, id) end
    if mt ~= nil then return format("table#%d (metatable#%d)", id, id_of(ctx.ids, mt)) end
    return format("table#%d", id)
  end
  return format("%s#%d", name or "userdata", id)
end

-- output with a width budget ---------------------------------------------------------------

-- pieces are appended until the width is reached; `value` cuts the line at the end
local function emit(ctx, s)
  if ctx.full then return end
  ctx.out[#ctx.out + 1] = s
  ctx.len = ctx.len + #s
  if ctx.len > ctx.width then ctx.full = true end
end

-- tables ----------------------------------------------------------------------------------------

local TYPE_ORDER = { number = 1, string = 2, boolean = 3 }

local function key_less(ctx)
  return function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return (TYPE_ORDER[ta] or 4) < (TYPE_ORDER[tb] or 4) end
    if ta == "number" or ta == "string" then return a < b end
    if ta == "boolean" then return not a and b end
    return id_of(ctx.ids, a) < id_of(ctx.ids, b)
  end
end

-- the non-sequence keys of t (at most ctx.scan looked at), sorted when all were seen
local function hash_keys(t, border, ctx)
  local keys, seen, complete = {}, 0, true
  local k = next(t)
  while k ~= nil do
    if not (mathtype(k) == "integer" and k >= 1 and k <= border) then
      seen = seen + 1
      if seen > ctx.scan then
        complete = false
        break
      end
      keys[#keys + 1] = k
    end
    k = next(t, k)
  end
  if complete then table.sort(keys, key_less(ctx)) end
  return keys, complete
end

local render_value

local function render_key(k, ctx)
  if type(k) == "string" and find(k, "^[%a_][%w_]*$") and not KEYWORDS[k] and #k <= 64 then
    emit(ctx, k)
  else
    emit(ctx, "[")
    if type(k) == "table" then emit(ctx, label(k, ctx)) -- a key is named, never expanded
    else render_value(k, ctx, ctx.depth) end
    emit(ctx, "]")
  end
end

local function render_table(t, ctx, depth)
  local head = label(t, ctx)
  if ctx.shown[t] then
    emit(ctx, "<" .. head .. ">")
    return
  end
  ctx.shown[t] = true
  emit(ctx, head)
  if depth >= ctx.depth then
    emit(ctx, next(t) == nil and " {}" or " {...}")
    return
  end
  emit(ctx, " {")
  local border, count = rawlen(t), 0
  local function sep()
    if count > 0 then emit(ctx, ", ") end
    count = count + 1
  end
  for i = 1, math.min(border, ctx.items) do
    if ctx.full then return end
    sep()
    render_value(rawget(t, i), ctx, depth + 1)
  end
  local keys, complete = hash_keys(t, border, ctx)
  local room = math.max(0, ctx.items - math.min(border, ctx.items))
  for i = 1, math.min(#keys, room) do
    if ctx.full then return end
    sep()
    render_key(keys[i], ctx)
    emit(ctx, " = ")
    render_value(rawget(t, keys[i]), ctx, depth + 1)
  end
  local hidden = math.max(0, border - ctx.items) + math.max(0, #keys - room)
  if hidden > 0 or not complete then
    sep()
    emit(ctx, complete and format("...+%d", hidden) or "...")
  end
  emit(ctx, "}")
end

render_value = function(v, ctx, depth)
  local t = type(v)
  if t == "nil" then emit(ctx, "nil")
  elseif t == "boolean" then emit(ctx, v and "true" or "false")
  elseif t == "number" then emit(ctx, number(v))
  elseif t == "string" then emit(ctx, M.string(v, ctx.string_len))
  elseif t == "table" then render_table(v, ctx, depth)
  else emit(ctx, label(v, ctx))
  end
end

local function check_opts(opts, n, fname)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(format("bad argument #%d to '%s' (table expected, got %s)", n, fname, type(opts)), 3)
  end
  for k, range in pairs(LIMITS) do
    local v = rawget(opts, k)
    if v ~= nil and (mathtype(v) ~= "integer" or v < range[1] or v > range[2]) then
      error(format("bad argument #%d to '%s' (%s must be an integer from %d to %d)",
        n, fname, k, range[1], range[2]), 3)
    end
  end
  local ids = rawget(opts, "ids")
  if ids ~= nil and (type(ids) ~= "table" or type(rawget(ids, "map")) ~= "table") then
    error(format("bad argument #%d to '%s' (ids must come from render.ids())", n, fname), 3)
  end
  return opts
end

--- Render any value as one line of text, invoking no metamethod.
-- Tables show as `table#ID {seq..., key = value...}` (`__name` replaces `table` when the
-- metatable has one), entries sorted, at most `items` of them (`...+N` says how many
-- more); a table already shown in this call appears as `<table#ID>`. Functions show
-- as `function#ID <source:line>`, userdata as `NAME#ID` (the metatable's `__name`),
-- threads as `thread#ID status`.
-- @param v any value
-- @tparam[opt] table opts `depth`, `items`, `string_len`, `width`, `scan` (see `DEFAULTS`),
-- `ids` (from `ids()`, to keep ids across calls)
-- @treturn string
-- @usage render.value(setmetatable({}, {__index = error}))  --> "table#1 (metatable#2) {}"
function M.value(v, opts)
  opts = check_opts(opts, 2, "value")
  local d = M.DEFAULTS
  local ctx = {
    depth = rawget(opts, "depth") or d.depth, items = rawget(opts, "items") or d.items,
    string_len = rawget(opts, "string_len") or d.string_len,
    width = rawget(opts, "width") or d.width, scan = rawget(opts, "scan") or d.scan,
    ids = rawget(opts, "ids") or M.ids(), shown = {}, out = {}, len = 0, full = false,
  }
  render_value(v, ctx, 0)
  local out = concat(ctx.out)
  if #out > ctx.width then out = prefix(out, ctx.width - 3) .. "..." end
  return out
end

return M

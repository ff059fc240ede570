--- Decode the bytes a terminal sends for key presses into key names.
--
-- Names: `up`, `down`, `left`, `right`, `home`, `end`, `pgup`, `pgdn`, `insert`, `delete`,
-- `enter`, `esc`, `tab`, `backtab`, `backspace`, `space`, `ctrl-a` .. `ctrl-z`, `f1`..`f4`,
-- and any other character as itself (`"q"`, `"/"`, `"?"`, `"7"`, `"é"`).
-- Modifier variants of arrows (`ESC [1;5A`) decode to the plain arrow.
-- @module async_inspect.tui.input

local M = {}

local CSI_TILDE = {
  ["1"] = "home", ["2"] = "insert", ["3"] = "delete", ["4"] = "end", ["5"] = "pgup",
  ["6"] = "pgdn", ["7"] = "home", ["8"] = "end", ["11"] = "f1", ["12"] = "f2",
  ["13"] = "f3", ["14"] = "f4",
}
local CSI_FINAL = {
  A = "up", B = "down", C = "right", D = "left", H = "home", F = "end", Z = "backtab",
  P = "f1", Q = "f2", R = "f3", S = "f4",
}
local SS3 = {
  A = "up", B = "down", C = "right", D = "left", H = "home", F = "end",
  P = "f1", Q = "f2", R = "f3", S = "f4",
}

local function control(b)
  if b == 13 or b == 10 then return "enter" end
  if b == 9 then return "tab" end
  if b == 127 or b == 8 then return "backspace" end
  if b == 0 then return "ctrl-space" end
  if b < 27 then return "ctrl-" .. string.char(b + 96) end
  return nil
end

-- Decode one escape sequence at position i (buf:byte(i) == 27).
-- Returns key (or false for an unknown sequence), next position; or nil when incomplete.
local function escape(buf, i, final)
  local n = #buf
  if i == n then
    -- a lone ESC at the end of a read is the Escape key
    return "esc", i + 1
  end
  local c = buf:sub(i + 1, i + 1)
  if c == "[" then
    local j = i + 2
    -- parameters and intermediates, then one final byte in @..~
    while j <= n do
      local b = buf:byte(j)
      if b >= 0x40 and b <= 0x7E then break end
      j = j + 1
    end
    if j > n then
      if final then return false, n + 1 end
      return nil
    end
    local params, fin = buf:sub(i + 2, j - 1), buf:sub(j, j)
    if buf:sub(i + 2, i + 2) == "<" or fin == "M" and params == "" then
      -- mouse reports are ignored (X10 mouse carries 3 more bytes)
      if params == "" then return false, math.min(n, j + 3) + 1 end
      return false, j + 1
    end
    if fin == "~" then return CSI_TILDE[params:match("^(%d+)")] or false, j + 1 end
    return CSI_FINAL[fin] or false, j + 1
  elseif c == "O" then
    if i + 2 > n then
      if final then return "esc", i + 1 end
      return nil
    end
    return SS3[buf:sub(i + 2, i + 2)] or false, i + 3
  end
  -- ESC followed by another key: alt-key; report the Escape, the key follows
  return "esc", i + 1
end

--- Decode a chunk of input.
-- @tparam string buf bytes read from the terminal (with any rest of the previous call
-- prepended)
-- @tparam[opt] boolean final treat an incomplete sequence at the end as complete (call
-- this when no more bytes came for a short while)
-- @treturn {string,...} key names
-- @treturn string rest: an incomplete sequence to prepend to the next read
-- @usage local keys, rest = input.decode("\27[Aq") --> {"up", "q"}, ""
function M.decode(buf, final)
  if type(buf) ~= "string" then
    error("bad argument #1 to 'decode' (string expected, got " .. type(buf) .. ")", 2)
  end
  local keys, i, n = {}, 1, #buf
  while i <= n do
    local b = buf:byte(i)
    if b == 27 then
      local key, nxt = escape(buf, i, final)
      if key == nil then return keys, buf:sub(i) end
      if key then keys[#keys + 1] = key end
      i = nxt
    elseif b < 32 or b == 127 then
      local key = control(b)
      if key then keys[#keys + 1] = key end
      -- a CR LF pair is one Enter
      if b == 13 and buf:byte(i + 1) == 10 then i = i + 1 end
      i = i + 1
    elseif b == 32 then
      keys[#keys + 1] = "space"
      i = i + 1
    elseif b < 128 then
      keys[#keys + 1] = string.char(b)
      i = i + 1
    else
      local len = b >= 0xF0 and 4 or b >= 0xE0 and 3 or b >= 0xC0 and 2 or 1
      if i + len - 1 > n and not final then return keys, buf:sub(i) end
      local ch = buf:sub(i, i + len - 1)
      if len > 1 and utf8.len(ch) == 1 then keys[#keys + 1] = ch end
      i = i + len
    end
  end
  return keys, ""
end

--- A stateful decoder that keeps incomplete sequences between reads.
-- @treturn table decoder with `feed(bytes) -> keys` and `flush() -> keys` (decode what is
-- pending as complete), and the field `pending` (bytes kept)
function M.decoder()
  local self = { pending = "" }
  function self.feed(bytes)
    if type(bytes) ~= "string" then
      error("bad argument #1 to 'feed' (string expected, got " .. type(bytes) .. ")", 2)
    end
    local keys
    keys, self.pending = M.decode(self.pending .. bytes)
    return keys
  end
  function self.flush()
    local keys = M.decode(self.pending, true)
    self.pending = ""
    return keys
  end
  return self
end

--- Whether a key name is a printable character (for text entry such as the filter).
-- @tparam string key
-- @treturn boolean
function M.printable(key)
  if type(key) ~= "string" then return false end
  if key == "space" then return true end
  return utf8.len(key) == 1 and key:byte(1) >= 32 and key:byte(1) ~= 127
end

return M

--- A small PNG reader for specs: enough to decode the screenshots headless
-- Chromium writes (8-bit RGB/RGBA, not interlaced) and look at the pixels.
-- Includes a compact DEFLATE decoder (RFC 1951), since no zlib binding is
-- installed for Lua 5.4.
local M = {}

-- Bit reader over a string, least significant bit first (DEFLATE order).
local function bit_reader(s, pos)
  local byte, bits, nbits = string.byte, 0, 0
  local r = {}
  function r.need(n)
    while nbits < n do
      local b = byte(s, pos)
      if not b then error("inflate: unexpected end of data") end
      bits = bits | (b << nbits)
      nbits = nbits + 8
      pos = pos + 1
    end
  end
  function r.get(n)
    if n == 0 then return 0 end
    r.need(n)
    local v = bits & ((1 << n) - 1)
    bits = bits >> n
    nbits = nbits - n
    return v
  end
  function r.align()
    bits, nbits = 0, 0
  end
  function r.pos() return pos end
  function r.skip_to(p) pos = p end
  return r
end

-- Canonical Huffman table: returns a decoder function(reader) -> symbol.
local function huffman(lengths, n)
  local count, offs, symbols = {}, {}, {}
  for i = 0, 15 do count[i] = 0 end
  for s = 0, n - 1 do count[lengths[s] or 0] = count[lengths[s] or 0] + 1 end
  count[0] = 0
  offs[1] = 0
  for i = 1, 14 do offs[i + 1] = offs[i] + count[i] end
  for s = 0, n - 1 do
    local l = lengths[s] or 0
    if l ~= 0 then symbols[offs[l]] = s; offs[l] = offs[l] + 1 end
  end
  return function(rd)
    local code, first, index = 0, 0, 0
    for len = 1, 15 do
      code = code | rd.get(1)
      local c = count[len]
      if code - c < first then return symbols[index + (code - first)] end
      index = index + c
      first = (first + c) << 1
      code = code << 1
    end
    error("inflate: bad code")
  end
end

local LBASE = { 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59,
  67, 83, 99, 115, 131, 163, 195, 227, 258 }
local LEXT = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0 }
local DBASE = { 1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769,
  1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577 }
local DEXT = { 0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11,
  12, 12, 13, 13 }

local fixed_lit, fixed_dist
local function fixed_tables()
  if not fixed_lit then
    local l = {}
    for i = 0, 143 do l[i] = 8 end
    for i = 144, 255 do l[i] = 9 end
    for i = 256, 279 do l[i] = 7 end
    for i = 280, 287 do l[i] = 8 end
    fixed_lit = huffman(l, 288)
    local d = {}
    for i = 0, 29 do d[i] = 5 end
    fixed_dist = huffman(d, 30)
  end
  return fixed_lit, fixed_dist
end

local ORDER = { 16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15 }

local function dynamic_tables(rd)
  local hlit, hdist, hclen = rd.get(5) + 257, rd.get(5) + 1, rd.get(4) + 4
  local cl = {}
  for i = 1, hclen do cl[ORDER[i]] = rd.get(3) end
  local clh = huffman(cl, 19)
  local lens, i = {}, 0
  while i < hlit + hdist do
    local sym = clh(rd)
    if sym < 16 then lens[i] = sym; i = i + 1
    else
      local rep, val
      val = 0
      if sym == 16 then val = lens[i - 1]; rep = 3 + rd.get(2)
      elseif sym == 17 then rep = 3 + rd.get(3)
      else rep = 11 + rd.get(7) end
      for _ = 1, rep do lens[i] = val; i = i + 1 end
    end
  end
  local ll, dl = {}, {}
  for k = 0, hlit - 1 do ll[k] = lens[k] end
  for k = 0, hdist - 1 do dl[k] = lens[hlit + k] end
  return huffman(ll, hlit), huffman(dl, hdist)
end

--- Inflate a zlib stream (2-byte header, DEFLATE data, Adler-32 ignored).
function M.inflate_zlib(s)
  local rd = bit_reader(s, 3)
  local out, n = {}, 0
  repeat
    local final = rd.get(1)
    local kind = rd.get(2)
    if kind == 0 then
      rd.align()
      local p = rd.pos()
      local len = s:byte(p) | (s:byte(p + 1) << 8)
      for k = 0, len - 1 do n = n + 1; out[n] = s:byte(p + 4 + k) end
      rd.skip_to(p + 4 + len)
    else
      local lit, dist
      if kind == 1 then lit, dist = fixed_tables() else lit, dist = dynamic_tables(rd) end
      while true do
        local sym = lit(rd)
        if sym < 256 then n = n + 1; out[n] = sym
        elseif sym == 256 then break
        else
          sym = sym - 256
          local len = LBASE[sym] + rd.get(LEXT[sym])
          local ds = dist(rd)
          local d = DBASE[ds + 1] + rd.get(DEXT[ds + 1])
          for _ = 1, len do n = n + 1; out[n] = out[n - d] end
        end
      end
    end
  until final == 1
  return out, n
end

local function u32(s, i)
  local a, b, c, d = s:byte(i, i + 3)
  return (a << 24) | (b << 16) | (c << 8) | d
end

--- Decode a PNG file. Returns {width=, height=, channels=, pixel(x, y) -> r,g,b}.
function M.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  assert(s:sub(1, 8) == "\137PNG\r\n\26\n", "not a PNG file")
  local pos, idat = 9, {}
  local w, h, depth, ctype, interlace
  while pos <= #s do
    local len = u32(s, pos)
    local typ = s:sub(pos + 4, pos + 7)
    local data = s:sub(pos + 8, pos + 7 + len)
    if typ == "IHDR" then
      w, h = u32(data, 1), u32(data, 5)
      depth, ctype, interlace = data:byte(9), data:byte(10), data:byte(13)
    elseif typ == "IDAT" then
      idat[#idat + 1] = data
    elseif typ == "IEND" then
      break
    end
    pos = pos + 12 + len
  end
  assert(depth == 8 and interlace == 0, "only 8-bit non-interlaced PNGs are supported")
  local channels = ({ [0] = 1, [2] = 3, [4] = 2, [6] = 4 })[ctype]
  assert(channels, "unsupported PNG colour type " .. tostring(ctype))
  local raw = M.inflate_zlib(table.concat(idat))
  local stride = w * channels
  local img, prev = {}, {}
  for x = 1, stride do prev[x] = 0 end
  local p = 1
  for y = 1, h do
    local filter = raw[p]; p = p + 1
    local row = {}
    for x = 1, stride do
      local v = raw[p]; p = p + 1
      local a = x > channels and row[x - channels] or 0
      local b = prev[x]
      local c = x > channels and prev[x - channels] or 0
      if filter == 1 then v = v + a
      elseif filter == 2 then v = v + b
      elseif filter == 3 then v = v + (a + b) // 2
      elseif filter == 4 then
        local pa, pb, pc = math.abs(b - c), math.abs(a - c), math.abs(a + b - 2 * c)
        if pa <= pb and pa <= pc then v = v + a elseif pb <= pc then v = v + b else v = v + c end
      end
      row[x] = v & 0xff
    end
    img[y] = row
    prev = row
  end
  return {
    width = w, height = h, channels = channels,
    pixel = function(x, y)
      local row, i = img[y], (x - 1) * channels
      if channels >= 3 then return row[i + 1], row[i + 2], row[i + 3] end
      return row[i + 1], row[i + 1], row[i + 1]
    end,
  }
end

return M

-- Turn a terminal capture (tmux capture-pane -e -p) into an HTML page, for the
-- README's picture of the dashboard. usage: lua5.4 ansi2html.lua IN OUT
local COLORS = { [30] = "#3b3b3b", [31] = "#e05252", [32] = "#4caf50", [33] = "#e0b030",
  [34] = "#5c8ee6", [35] = "#c070d0", [36] = "#40b8c8", [37] = "#dddddd" }

local function esc(s) return (s:gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;")) end

local function render(text)
  local out, state = {}, { fg = nil, bold = false, dim = false, rev = false }
  local function open()
    local fg, bg = state.fg or "#dddddd", "transparent"
    if state.rev then fg, bg = "#1e1e1e", state.fg or "#dddddd" end
    return ('<span style="color:%s;background:%s;%s%s">'):format(fg, bg,
      state.bold and "font-weight:bold;" or "", state.dim and "opacity:0.6;" or "")
  end
  out[#out + 1] = open()
  local i = 1
  while i <= #text do
    local s, e, codes = text:find("^\27%[([%d;]*)m", i)
    if s then
      for c in (codes == "" and "0" or codes):gmatch("%d+") do
        c = tonumber(c)
        if c == 0 then state = { fg = nil, bold = false, dim = false, rev = false }
        elseif c == 1 then state.bold = true elseif c == 2 then state.dim = true
        elseif c == 22 then state.bold, state.dim = false, false
        elseif c == 7 then state.rev = true elseif c == 27 then state.rev = false
        elseif COLORS[c] then state.fg = COLORS[c] elseif c == 39 then state.fg = nil end
      end
      out[#out + 1] = "</span>" .. open()
      i = e + 1
    else
      local j = text:find("\27", i, true) or #text + 1
      out[#out + 1] = esc(text:sub(i, j - 1))
      i = j
    end
  end
  out[#out + 1] = "</span>"
  return table.concat(out)
end

local f = assert(io.open(arg[1], "rb"))
local text = f:read("a")
f:close()
local html = ([[<!doctype html><html><head><meta charset="utf-8"><style>
body{margin:0;background:#1e1e1e}pre{margin:12px;font:15px/1.25 "DejaVu Sans Mono",monospace;color:#ddd}
</style></head><body><pre>%s</pre></body></html>]]):format(render(text))
f = assert(io.open(arg[2], "wb"))
f:write(html)
f:close()

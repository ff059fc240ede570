--- A self-contained SVG flamegraph rendered from folded stacks.
--
-- Frames are rectangles whose width is proportional to their weight, the
-- root (`all`) at the bottom, each with a `<title>` tooltip (name, time,
-- share) and its name when it fits. Colours come from a hash of the frame
-- name, so the same frame has the same colour in every graph. No script,
-- no external resource: the file is valid XML on its own and can also be
-- inlined in HTML.
-- @module async_inspect.export.svg_flame

local util = require("async_inspect.export.util")
local folded = require("async_inspect.export.folded")

local M = {}

local esc = util.xml_escape
local fmt = string.format

local function build_tree(stacks)
  local root = { name = "all", value = 0, children = {} }
  for stack, w in pairs(stacks) do
    if w > 0 then
      root.value = root.value + w
      local node = root
      for frame in stack:gmatch("[^;]+") do
        local child = node.children[frame]
        if not child then
          child = { name = frame, value = 0, children = {} }
          node.children[frame] = child
        end
        child.value = child.value + w
        node = child
      end
    end
  end
  return root
end

-- Lay out frames: x in pixels, depth from the bottom. Children are placed
-- in name order (like flamegraph.pl), so the picture is deterministic.
local function layout(root, x0, scale, min_width)
  local out, max_depth = {}, 0
  local function walk(node, x, depth)
    local w = node.value * scale
    if w < min_width then return end
    out[#out + 1] = { node = node, x = x, w = w, depth = depth }
    if depth > max_depth then max_depth = depth end
    local names = {}
    for name in pairs(node.children) do names[#names + 1] = name end
    table.sort(names)
    local cx = x
    for _, name in ipairs(names) do
      local child = node.children[name]
      walk(child, cx, depth + 1)
      cx = cx + child.value * scale
    end
  end
  walk(root, x0, 0)
  return out, max_depth
end

local PALETTES = {
  hot = function(h)
    local a, b, c = (h & 0xff) / 255, ((h >> 8) & 0xff) / 255, ((h >> 16) & 0xff) / 255
    return fmt("rgb(%d,%d,%d)", 205 + math.floor(50 * c), math.floor(230 * a), math.floor(55 * b))
  end,
  cold = function(h)
    local a, b, c = (h & 0xff) / 255, ((h >> 8) & 0xff) / 255, ((h >> 16) & 0xff) / 255
    return fmt("rgb(%d,%d,%d)", math.floor(80 * a), 110 + math.floor(90 * b), 190 + math.floor(65 * c))
  end,
}

-- Cut a label to the number of characters that fit (UTF-8 aware).
local function fit_label(name, w, char_w)
  local fits = math.floor((w - 6) / char_w)
  if fits < 3 then return nil end
  local len = utf8.len(name) or #name
  if len <= fits then return name end
  if utf8.len(name) then
    return name:sub(1, utf8.offset(name, fits - 1) - 1) .. ".."
  end
  return name:sub(1, fits - 2) .. ".."
end

--- Render stacks as an SVG document (or fragment).
-- @tparam table stacks map `"a;b;c"` -> weight (ns)
-- @tparam[opt] table opts `title`, `width` (px, default 1200),
--   `palette` ("hot" or "cold"), `xml_decl` (default true; false to inline
--   in HTML), `min_width` (px, default 0.1: narrower frames are left out),
--   `weight` (label of the unit: "busy" or "wait")
-- @treturn string SVG text
function M.render(stacks, opts)
  opts = opts or {}
  local width = opts.width or 1200
  local fh, pad, top, bottom, font = 17, 10, 40, 26, 12
  local char_w = font * 0.6
  local root = build_tree(stacks)
  local scale = root.value > 0 and (width - 2 * pad) / root.value or 0
  local frames, max_depth = layout(root, pad, scale, opts.min_width or 0.1)
  local height = top + (max_depth + 1) * fh + bottom
  local color = PALETTES[opts.palette or "hot"] or PALETTES.hot
  local title = opts.title or "Flame graph"
  local parts = {}
  local function add(s) parts[#parts + 1] = s end
  if opts.xml_decl ~= false then add('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n') end
  add(fmt('<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="%d" height="%d" '
    .. 'viewBox="0 0 %d %d" font-family="Verdana, Arial, sans-serif" font-size="%d" '
    .. 'class="flamegraph">\n', width, height, width, height, font))
  add(fmt('<rect x="0" y="0" width="%d" height="%d" fill="#f6f6f6"/>\n', width, height))
  add(fmt('<text x="%d" y="24" text-anchor="middle" font-size="16">%s</text>\n',
    width // 2, esc(title)))
  add(fmt('<text x="%d" y="%d" fill="#555">total %s%s, %d frames</text>\n', pad, height - 8,
    esc(util.human_ns(root.value)), opts.weight and (" " .. esc(opts.weight)) or "", #frames))
  if root.value == 0 then
    add(fmt('<text x="%d" y="%d" text-anchor="middle" fill="#555">no data</text>\n',
      width // 2, top + fh))
  end
  for _, fr in ipairs(frames) do
    local node = fr.node
    local y = height - bottom - (fr.depth + 1) * fh
    local pct = node.value * 100 / root.value
    add(fmt('<g><title>%s (%s, %.2f%%)</title><rect x="%.2f" y="%d" width="%.2f" height="%d" '
      .. 'fill="%s" rx="2" ry="2"/>', esc(node.name), esc(util.human_ns(node.value)), pct,
      fr.x, y, fr.w, fh - 1, color(util.hash(node.name))))
    local label = fit_label(node.name, fr.w, char_w)
    if label then
      add(fmt('<text x="%.2f" y="%d">%s</text>', fr.x + 3, y + fh - 5, esc(label)))
    end
    add("</g>\n")
  end
  add("</svg>\n")
  return table.concat(parts)
end

--- Collect folded stacks from a source and write an SVG flamegraph.
-- @tparam file f
-- @tparam table source export source
-- @tparam[opt] table opts `weight` ("busy" or "wait") plus the options of
--   `render`
-- @treturn table summary `{events=, frames=, bytes=, tasks=}`
function M.write(f, source, opts)
  opts = opts or {}
  local weight = opts.weight or "busy"
  local stacks, n = folded.collect(source, weight)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.weight = weight
  o.title = o.title or (weight == "wait" and "Wait time by await point"
    or "Busy time by await point")
  o.palette = o.palette or (weight == "wait" and "cold" or "hot")
  local svg = M.render(stacks, o)
  assert(f:write(svg))
  f:flush()
  local frames = select(2, svg:gsub("<g><title>", ""))
  return { events = n, frames = frames, bytes = #svg, tasks = #(source.tasks or {}) }
end

return M

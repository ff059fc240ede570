--- Marker comments (`-- NAME` at the end of a line) in a spec's own source or in the text of
-- a script it writes, turned into line numbers and the `file:line` places the inspector
-- records for those lines.
local M = {}

--- The number of the first line of text holding the marker; an error when there is none.
-- @tparam string text the script
-- @tparam string marker
-- @tparam[opt] integer first the number of the text's first line (default 1)
-- @treturn integer
function M.line_in(text, marker, first)
  local n = (first or 1) - 1
  for line in (text .. "\n"):gmatch("(.-)\n") do
    n = n + 1
    if line:find(marker, 1, true) then return n end
  end
  error("marker not found: " .. marker)
end

--- The two look-ups for one source file.
-- @tparam string path the spec file, as the inspector names it (e.g. "spec/core_spec.lua")
-- @treturn function line_of(marker): the number of the first line holding the marker (lines
--   that call line_of are passed over); an error when there is none
-- @treturn function at(marker): `path .. ":" .. line_of(marker)`
function M.in_file(path)
  local function line_of(marker)
    local n = 0
    for l in io.lines(path) do
      n = n + 1
      if l:find(marker, 1, true) and not l:find("line_of", 1, true) then return n end
    end
    error("marker not found: " .. marker)
  end

  local function at(marker) return path .. ":" .. line_of(marker) end

  return line_of, at
end

return M

--- What the luv specs check after a run: the handles left open on the default loop, and
-- what woke a task each time it was resumed.
local ai = require "async_inspect"
local uv = require "luv"

local M = {}

--- The handles still open on the default loop, closing ones excepted.
-- @treturn {string,...} the handles' names
function M.open_handles()
  local list = {}
  uv.walk(function(h)
    if not h:is_closing() then list[#list + 1] = tostring(h) end
  end)
  return list
end

--- The resume events of a task after its first, with what woke it.
-- @tparam integer id the task id
-- @treturn {string|false,...} each resume's wake source (false where none was given)
function M.wakes_of(id)
  local out = {}
  for _, e in ipairs(ai.events{ task = id, kind = "resume" }) do out[#out + 1] = e.detail or false end
  return out
end

return M

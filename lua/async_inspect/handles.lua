--- Releasing luv handles safely, whether or not the loop runs again.
--
-- luv frees a handle's memory when its Lua object is collected; a handle that was closed
-- but whose close the loop never completed is then freed twice at exit (a crash in
-- `uv_walk` when the state closes). So a handle is closed only while the loop runs (it
-- completes the close), and otherwise made inert: stopped and unreferenced, to be closed
-- by luv when the state closes.
-- @module async_inspect.handles

local uv = require("luv")

local M = {}

local STOP = {
  timer = "stop", signal = "stop", idle = "stop", prepare = "stop", check = "stop",
  tty = "read_stop", tcp = "read_stop", pipe = "read_stop", udp = "recv_stop",
}

--- Whether the luv loop is running now (we are inside `uv.run`).
-- @treturn boolean
function M.in_loop()
  return uv.loop_mode() ~= nil
end

--- Release a handle: close it when the loop runs, otherwise stop and unreference it.
-- Safe on nil and on handles already closing.
-- @param h a luv handle or nil
-- @treturn boolean true when it was closed
function M.release(h)
  if h == nil then return false end
  local ok, closing = pcall(h.is_closing, h)
  if not ok or closing then return false end
  if M.in_loop() then
    h:close()
    return true
  end
  local method = STOP[uv.handle_get_type(h)]
  if method and h[method] then pcall(h[method], h) end
  pcall(h.unref, h)
  return false
end

--- Close a handle now even outside the loop (sockets: the peer must see the end), then
-- let the loop complete the close when it is not running.
-- @param h a luv handle or nil
function M.close_now(h)
  if h == nil then return end
  local ok, closing = pcall(h.is_closing, h)
  if not ok or closing then return end
  h:close()
  if not M.in_loop() then uv.run("nowait") end
end

return M

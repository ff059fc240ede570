--- The terminal for the dashboard: ANSI output on luv's TTY, raw mode, the alternate
-- screen, a hidden cursor, and a restore that runs on every way out.
--
-- Restored on `restore()` (dashboard quit), on SIGINT/SIGTERM/SIGHUP (then the signal is
-- raised again so the program ends as it would have), on garbage collection at exit (the
-- Lua state closing after an error in the main chunk), and, through a watchdog process
-- holding a pipe to us, when the process dies without running Lua cleanup at all (luv
-- calls `exit()` after an uncaught error in a callback; a crash; SIGKILL).
-- @module async_inspect.tui.term

local uv = require("luv")
local handles = require("async_inspect.handles")

local M = {}

--- Escape sequences used on the screen.
M.ENTER = "\27[?1049h\27[?25l\27[?7l\27[H\27[2J"
M.LEAVE = "\27[0m\27[?7h\27[?25h\27[?1049l"

local Term = {}
Term.__index = Term

-- Restore settings saved with `stty -g` when this process dies without restoring them.
-- The watchdog ignores the terminal's signals so that a ctrl-C or a hang-up that kills the
-- program does not kill it first. It reads lines: "ok" (the terminal is restored: nothing
-- to do) and "arm" (the dashboard is on screen again); at the end of the pipe it restores
-- only when armed.
local WATCHDOG = [[
trap '' INT TERM HUP QUIT
armed=1
while read -r line; do
  case "$line" in
    ok) armed=0 ;;
    arm) armed=1 ;;
  esac
done
if [ "$armed" = 1 ]; then
  stty "$1" <&3 2>/dev/null
  printf '\033[0m\033[?7h\033[?25h\033[?1049l'
fi
]]

local function saved_settings(fd_in)
  if fd_in ~= 0 then return nil end
  local p = io.popen("stty -g 2>/dev/null")
  if not p then return nil end
  local s = p:read("*l")
  p:close()
  if s and s:match("^[%x:]+$") then return s end
  return nil
end

local function start_watchdog(self)
  local saved = saved_settings(self.fd_in)
  if not saved then return end
  local pipe = uv.new_pipe(false)
  local handle
  handle = uv.spawn("sh", {
    args = { "-c", WATCHDOG, "async_inspect-watchdog", saved },
    stdio = { pipe, self.fd_out, 2, self.fd_in },
  }, function()
    if handle and not handle:is_closing() then handle:close() end
  end)
  if not handle then
    handles.release(pipe)
    return
  end
  handle:unref()
  pipe:unref()
  self.watchdog = { handle = handle, pipe = pipe }
end

-- Synchronous writes: they also run from a finaliser or just before the process exits.
local function tell_watchdog(self, line)
  if self.watchdog then pcall(uv.try_write, self.watchdog.pipe, line .. "\n") end
end

local function stop_watchdog(self)
  local w = self.watchdog
  if not w then return end
  tell_watchdog(self, "ok")
  self.watchdog = nil
  handles.release(w.pipe)
end

--- Open the terminal (nothing changes on screen until `start`).
-- @tparam[opt] table opts `fd_in` (0), `fd_out` (1), `watchdog` (default true),
-- `keep_alive` (the input and signal handles keep the luv loop running, default true)
-- @treturn table terminal
-- @raise when the input or the output is not a terminal
function M.open(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #1 to 'open' (table expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  local fd_in, fd_out = opts.fd_in or 0, opts.fd_out or 1
  if uv.guess_handle(fd_in) ~= "tty" or uv.guess_handle(fd_out) ~= "tty" then
    error("async_inspect.tui: the dashboard needs a terminal (standard input and output "
      .. "are not both a TTY)", 2)
  end
  return setmetatable({
    fd_in = fd_in, fd_out = fd_out, use_watchdog = opts.watchdog ~= false,
    keep_alive = opts.keep_alive ~= false, started = false, restored = false,
    suspended = false,
    signals = {},
  }, Term)
end

--- Size of the terminal.
-- @treturn integer columns
-- @treturn integer rows
function Term:size()
  local ok, w, h = pcall(function() return self.out:get_winsize() end)
  if ok and type(w) == "number" and w > 0 and h > 0 then return w, h end
  return 80, 24
end

--- Write to the terminal without blocking the program. When the terminal does not keep up
-- (more than 1 MiB already queued) nothing is written.
-- @tparam string s
-- @treturn boolean whether it was written
function Term:write(s)
  if self.restored or self.suspended or not self.out then return false end
  if self.out:get_write_queue_size() > 1048576 then return false end
  local ok = pcall(self.out.write, self.out, s)
  return ok
end

local function reraise(self, signame)
  -- another watcher of a signal means the program handles it: it already got this one
  local others = false
  uv.walk(function(h)
    if uv.handle_get_type(h) == "signal" and not self.signals[h] and h:is_active() then
      others = true
    end
  end)
  self:restore()
  if not others then uv.kill(uv.os_getpid(), signame) end
end

local function write_now(self, s)
  local rest = s
  if self.out and not self.out:is_closing() then
    local ok, n = pcall(uv.try_write, self.out, rest)
    if ok and math.type(n) == "integer" then rest = rest:sub(n + 1) end
  end
  if rest ~= "" and self.fd_out == 1 then
    io.stdout:write(rest)
    io.stdout:flush()
  end
end

local function enter(self)
  self.input:set_mode(1)
  self:write(M.ENTER)
  tell_watchdog(self, "arm")
end

--- Give the terminal back for a moment (cooked mode, main screen), synchronously; `resume`
-- takes it again. Used when the program may be about to die.
function Term:suspend()
  if self.suspended or self.restored or not self.started then return end
  self.suspended = true
  pcall(function() self.input:set_mode(0) end)
  pcall(uv.tty_reset_mode)
  write_now(self, M.LEAVE)
  tell_watchdog(self, "ok")
end

--- Take the terminal again after `suspend`.
-- @treturn boolean true when it was suspended
function Term:resume()
  if not self.suspended or self.restored then return false end
  self.suspended = false
  enter(self)
  return true
end

-- luv reports an uncaught error in a callback through the global debug.traceback, called
-- from its C message handler, then calls exit(): give the terminal back right there, so
-- the error is printed on the normal screen and the shell finds a sane terminal. When the
-- program survives (a message handler of its own), the dashboard resumes on its next tick.
local function hook_traceback(self)
  local original = debug.traceback
  local function hooked(...)
    local caller = debug.getinfo(2, "S")
    if caller and caller.what == "C" and uv.loop_mode() ~= nil then self:suspend() end
    return original(...)
  end
  rawset(debug, "traceback", hooked)
  self.unhook = function()
    if debug.traceback == hooked then rawset(debug, "traceback", original) end
  end
end

--- Switch to the dashboard screen: raw mode, alternate screen, hidden cursor, no
-- autowrap; watch input, resizes and termination signals.
-- @tparam function on_input called with the bytes read
-- @tparam function on_resize called with columns and rows
function Term:start(on_input, on_resize)
  if type(on_input) ~= "function" then
    error("bad argument #1 to 'start' (function expected, got " .. type(on_input) .. ")", 2)
  end
  if type(on_resize) ~= "function" then
    error("bad argument #2 to 'start' (function expected, got " .. type(on_resize) .. ")", 2)
  end
  if self.started then error("terminal already started", 2) end
  self.started = true
  if self.use_watchdog then pcall(start_watchdog, self) end
  self.input = uv.new_tty(self.fd_in, true)
  self.out = uv.new_tty(self.fd_out, false)
  enter(self)
  hook_traceback(self)
  self.input:read_start(function(err, data)
    if err or not data then return end
    on_input(data)
  end)
  for _, name in ipairs({ "sigint", "sigterm", "sighup" }) do
    local sig = uv.new_signal()
    sig:start(name, function() reraise(self, name) end)
    self.signals[sig] = true
  end
  local winch = uv.new_signal()
  winch:start("sigwinch", function() on_resize(self:size()) end)
  self.signals[winch] = true
  if not self.keep_alive then
    self.input:unref()
    for sig in pairs(self.signals) do sig:unref() end
  end
end

--- Give the terminal back as it was: leave the alternate screen, show the cursor, cooked
-- mode; stop reading and watching signals. Safe to call more than once and from a finaliser.
function Term:restore()
  if self.restored or not self.started then return end
  self.restored = true
  for sig in pairs(self.signals) do handles.release(sig) end
  self.signals = {}
  if self.input then
    pcall(function() self.input:read_stop() end)
    pcall(function() self.input:set_mode(0) end)
  end
  pcall(uv.tty_reset_mode)
  if self.unhook then self.unhook() end
  -- a frame still queued would come after the restore: written synchronously, then the
  -- output handle goes (dropping what is queued)
  if not self.suspended then write_now(self, M.LEAVE) end
  handles.release(self.out)
  handles.release(self.input)
  stop_watchdog(self)
end

return M

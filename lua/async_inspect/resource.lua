--- Manual tracking of resources the program (or another library) implements itself.
--
-- `ai.resource(name, kind)` gives a handle whose three calls tell the wait-for graph
-- what happens to a lock it cannot see: `:waiting()` when the running task starts to
-- wait for it, `:acquired()` when the task got it (after waiting or not), `:released()`
-- when it let go. Those resources then appear in snapshots with their holders, waiters
-- and contention statistics, and take part in deadlock detection like `ai.sync`'s own
-- (a cycle is reported when the `:waiting()` that closes it is called).
-- @module async_inspect.resource
-- @usage
-- local lock = ai.resource("pg pool", "semaphore")
-- lock:waiting(); conn = pool:get(); lock:acquired()
-- ...
-- pool:put(conn); lock:released()

local core = require("async_inspect.core")
local deadlock = require("async_inspect.deadlock")

local M = {}

local format = string.format
local running = coroutine.running

-- kinds the core knows; any other kind is tracked as "custom" and shown as given
local KINDS = { mutex = true, rwlock = true, semaphore = true, channel = true, event = true,
                custom = true }
-- kinds whose waits end without anything held
local NO_HOLD = { channel = true, event = true }
local MODES = { read = 1, write = 2, send = 3, recv = 4 }

-- coroutine -> {res=, id=} while it waits for a resource of this module; weak keys
local waits = setmetatable({}, { __mode = "k" })

local Resource = { __name = "async_inspect.resource" }
Resource.__index = Resource
Resource.__gc = function(r) if r._h then core.wg_free(r._h) end end
Resource.__tostring = function(r) return format("%s '%s'", r.kind, r.name) end

local function typename(v) return v == nil and "no value" or type(v) end

local function arg_error(n, fname, msg)
  error(format("bad argument #%d to '%s' (%s)", n, fname, msg), 4)
end

local function check_self(self, fname)
  if getmetatable(self) ~= Resource then
    arg_error(1, fname, format("resource expected, got %s", typename(self)))
  end
end

local function mode_arg(mode, n, fname)
  if mode == nil then return 0 end
  local m = MODES[mode]
  if m == nil then
    arg_error(n, fname, format("'read', 'write', 'send', 'recv' or nil expected, got %s",
      type(mode) == "string" and ("'" .. mode .. "'") or typename(mode)))
  end
  return m
end

local function units_arg(n, pos, fname)
  if n == nil then return 1 end
  if math.type(n) ~= "integer" or n < 1 then
    arg_error(pos, fname, format("positive integer expected, got %s",
      math.type(n) and tostring(n) or typename(n)))
  end
  return n
end

--- A tracked resource.
-- @tparam string name shown in reports
-- @tparam[opt] string kind `"mutex"`, `"rwlock"`, `"semaphore"` (a waiter needs any one
-- holder to let go), `"channel"`, `"event"` (no holders), or any other word (tracked as
-- `"custom"`, shown as given); default `"custom"`
-- @treturn table the resource with `waiting`, `acquired`, `released`, `cancelled`
-- @usage local r = ai.resource("file lock", "mutex")
function M.new(name, kind)
  if type(name) ~= "string" then
    error(format("bad argument #1 to 'resource' (string expected, got %s)", typename(name)), 2)
  end
  if kind ~= nil and type(kind) ~= "string" then
    error(format("bad argument #2 to 'resource' (string expected, got %s)", typename(kind)), 2)
  end
  kind = kind or "custom"
  local ckind = KINDS[kind] and kind or "custom"
  local r = setmetatable({ name = name, kind = kind, _core_kind = ckind,
                           _h = core.wg_new(name, ckind) }, Resource)
  deadlock.describe(r._h, r)
  return r
end

function Resource._describe(r, t)
  if r.kind ~= t.kind then t.type = r.kind end
end

--- The running task starts waiting for this resource. When that closes a deadlock
-- cycle, the report is made (and, with the `error` policy, raised here).
-- @tparam[opt] string mode `"read"` or `"write"` (read-write locks), `"send"`/`"recv"`
-- @treturn table|nil the deadlock report when this wait closed a cycle
function Resource:waiting(mode)
  check_self(self, "waiting")
  local m = mode_arg(mode, 2, "waiting")
  local co = running()
  local id, cycle = core.wg_wait(self._h, m, 2)
  waits[co] = id and { res = self, id = id } or nil
  if cycle == nil then return nil end
  local report, err = deadlock.found(cycle)
  if err then
    waits[co] = nil
    core.wg_unwait(id)
    error(err, 2)
  end
  return report
end

--- The running task got the resource (`n` units of it: permits, read locks).
-- Ends its wait if it was waiting; otherwise an acquisition without contention.
-- @tparam[opt] string mode as for `waiting` (when it did not wait)
-- @tparam[opt] integer n units, default 1
function Resource:acquired(mode, n)
  check_self(self, "acquired")
  local m = mode_arg(mode, 2, "acquired")
  n = units_arg(n, 3, "acquired")
  local co = running()
  local w = waits[co]
  local hold = not NO_HOLD[self._core_kind]
  if w ~= nil and w.res == self then
    waits[co] = nil
    core.wg_grant(self._h, w.id, hold, n)
  elseif hold then
    core.wg_acquire(self._h, m, n, 2)
  else
    core.wg_grant(self._h, false, false)
  end
end

--- The running task let go of `n` units of the resource.
-- @tparam[opt] integer n units, default 1
-- @treturn boolean true when the running task was recorded holding it
function Resource:released(n)
  check_self(self, "released")
  n = units_arg(n, 2, "released")
  return core.wg_release(self._h, n)
end

--- The running task stopped waiting without getting the resource (a timeout, a cancel).
function Resource:cancelled()
  check_self(self, "cancelled")
  local co = running()
  local w = waits[co]
  if w ~= nil and w.res == self then
    waits[co] = nil
    core.wg_unwait(w.id)
  end
end

return setmetatable(M, { __call = function(_, ...) return M.new(...) end })

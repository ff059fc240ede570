--- Coroutine-aware locks, semaphores, channels and events, tracked in the wait-for graph.
--
-- A task that has to wait suspends itself with `coroutine.yield` (the loop is never
-- blocked) and is woken later through the scheduler: by default the luv scheduler's
-- `require("async_inspect.luv").wake(co)`; any other scheduler plugs in with
-- `set_scheduler{wake = function(co) ... end}`. Ownership is handed over directly
-- (first come, first served), so a woken task already holds what it waited for.
--
-- Every primitive records its holders and waiters in the C core, which searches for a
-- deadlock at the moment a wait begins; see `async_inspect.deadlock` for the reports
-- and the `deadlock` setting. Only a coroutine can wait: on the main thread, a call that
-- would wait raises an error (`try_lock` and friends never wait).
--
-- Nothing here keeps a finished coroutine alive: owners and per-task counts are kept in
-- weak tables. A waiting coroutine is referenced by the queue it waits in, as it must be
-- to be woken; closing it (`coroutine.close`) takes it out of the queue.
-- @module async_inspect.sync
-- @usage
-- local sync = require("async_inspect").sync
-- local m = sync.mutex("accounts")
-- local function transfer()
--   local _ <close> = m:guard()
--   -- ... at most one task here at a time
-- end

local core = require("async_inspect.core")
local deadlock = require("async_inspect.deadlock")

local M = {}

local running, yield, isyieldable = coroutine.running, coroutine.yield, coroutine.isyieldable
local getmetatable, setmetatable, type = getmetatable, setmetatable, type
local format = string.format
local wg_new, wg_free, wg_acquire, wg_release = core.wg_new, core.wg_free, core.wg_acquire,
    core.wg_release
local wg_wait, wg_grant, wg_unwait = core.wg_wait, core.wg_grant, core.wg_unwait

-- wait modes, as the core numbers them
local NONE, READ, WRITE, SEND, RECV = 0, 1, 2, 3, 4

-- the coroutine holding a mutex or a write lock; weak both ways
local owners = setmetatable({}, { __mode = "kv" })

local function weak_keys() return setmetatable({}, { __mode = "k" }) end

-- arguments -------------------------------------------------------------------------------

local function typename(v) return v == nil and "no value" or type(v) end

local function arg_error(n, fname, msg, level)
  error(format("bad argument #%d to '%s' (%s)", n, fname, msg), (level or 2) + 1)
end

local function bad_self(fname, what, v)
  arg_error(1, fname, format("%s expected, got %s", what, typename(v)), 3)
end

local function not_held(fname, obj)
  arg_error(1, fname, format("%s '%s' is not held by the running task", obj.kind, obj.name), 3)
end

-- the name given, or "KIND@source:line" of the creating call
local function name_arg(name, fname, kind)
  if name == nil then
    local info = debug.getinfo(3, "Sl")
    return format("%s@%s:%d", kind, info and info.short_src or "?", info and info.currentline or 0)
  end
  if type(name) ~= "string" then
    arg_error(1, fname, format("string expected, got %s", typename(name)), 3)
  end
  return name
end

local function count_arg(v, n, fname, optional)
  if v == nil and optional then return nil end
  if math.type(v) ~= "integer" or v < 0 then
    arg_error(n, fname, format("non-negative integer expected, got %s",
      math.type(v) and tostring(v) or typename(v)), 3)
  end
  return v
end

-- the scheduler -----------------------------------------------------------------------------

-- the scheduler in use: wake(co, kind) and optionally suspend(label, wait, level);
-- nil: the default, the luv scheduler, found on first use
local sched = nil

local function luv_scheduler()
  local ok, luv = pcall(require, "async_inspect.luv")
  if not (ok and type(luv) == "table" and type(luv.wake) == "function") then
    error("async_inspect.sync: no scheduler to wake a waiting task: load async_inspect.luv "
      .. "or call ai.sync.set_scheduler{wake = function(co) ... end}", 0)
  end
  local wake_as, luv_wake, luv_suspend = luv.wake_as, luv.wake, luv.suspend
  return {
    -- the resume is attributed to the kind of primitive ("mutex", "channel", ...)
    wake = wake_as and function(co, kind) wake_as(kind, co) end or function(co) luv_wake(co) end,
    -- a wait in a luv helper: labelled and located like aio's own waits; never a tail
    -- call, the level counts this frame
    suspend = luv_suspend and function(label, wait, level) luv_suspend(label, wait, nil, level + 1) end,
  }
end

local function scheduler()
  local s = sched
  if s == nil then
    s = luv_scheduler()
    sched = s
  end
  return s
end

local function wake(co, kind)
  scheduler().wake(co, kind)
end

--- Use another scheduler to wake waiting tasks.
-- `wake(co, kind)` must arrange for coroutine `co` to be resumed (with no values) soon,
-- from the scheduler's loop, not from inside `wake`: it is called by the task that
-- released what `co` waited for (`kind`: "mutex", "channel", ... for the record). A task
-- may be resumed spuriously; it goes back to waiting. Optionally `suspend(label, wait,
-- level)` suspends the running task instead of a plain `coroutine.yield()` (the luv
-- scheduler's `aio.suspend`): `label` like `"mutex accounts"`, `wait` like
-- `"lock:accounts"`, `level` 1 for the caller of `suspend`.
-- @tparam[opt] table s `{wake = function(co, kind) end [, suspend = function(label, wait, level) end]}`;
-- nil restores the default (the luv scheduler)
-- @usage
-- local ready = {}
-- ai.sync.set_scheduler{ wake = function(co) ready[#ready + 1] = co end }
function M.set_scheduler(s)
  if s == nil then
    sched = nil
    return M
  end
  if type(s) ~= "table" or type(s.wake) ~= "function" then
    arg_error(1, "set_scheduler", format("table with a 'wake' function expected, got %s", typename(s)))
  end
  if s.suspend ~= nil and type(s.suspend) ~= "function" then
    arg_error(1, "set_scheduler", format("'suspend' must be a function, got %s", typename(s.suspend)))
  end
  sched = { wake = s.wake, suspend = s.suspend }
  return M
end

-- wait queues -------------------------------------------------------------------------------
-- First in, first out; a cancelled waiter stays in place, marked done, until it reaches the
-- front. `live` counts the waiters still waiting.

local function new_queue() return { first = 1, last = 0, live = 0 } end

local function push(q, w)
  local n = q.last + 1
  q.last = n
  q[n] = w
  q.live = q.live + 1
end

local function peek(q)
  local i, last = q.first, q.last
  while i <= last do
    local w = q[i]
    if not w.done then
      q.first = i
      return w
    end
    q[i] = nil
    i = i + 1
  end
  q.first, q.last = 1, 0
  return nil
end

local function pop(q)
  local w = peek(q)
  if w == nil then return nil end
  q[q.first] = nil
  q.first = q.first + 1
  q.live = q.live - 1
  return w
end

-- a waiting task; closing it (coroutine.close of the waiter) cancels the wait
local Waiter = { __name = "async_inspect.waiter" }

local function cancel(w)
  w.done, w.cancelled = true, true
  w.q.live = w.q.live - 1
  if w.id then wg_unwait(w.id) end
  local after = w.owner._after_cancel
  if after then after(w.owner) end
end

Waiter.__close = function(w)
  if not w.done then cancel(w) end
end

-- the running task waits in queue q of obj until it is granted; depth: how many frames
-- up the user's call is (1: the caller of wait_in)
local function wait_in(obj, q, co, mode, depth, value)
  local suspend = scheduler().suspend
  if suspend == nil and not isyieldable() then
    error(format("%s '%s' is not available and this thread cannot wait for it (only a "
      .. "coroutine can; the try_ functions never wait)", obj.kind, obj.name), depth + 1)
  end
  local w = setmetatable({ co = co, owner = obj, q = q, mode = mode, id = false, done = false,
                           value = value }, Waiter)
  push(q, w)
  local id, cycle = wg_wait(obj._h, mode, depth + 1)
  w.id = id or false
  if cycle then
    local _, err = deadlock.found(cycle)
    if err then
      cancel(w)
      error(err, depth + 1)
    end
  end
  local _ <close> = w -- an error or a close while waiting takes w out of the queue
  repeat
    if suspend then suspend(obj._label, obj._wait, depth + 1) else yield() end
  until w.done
  return w
end

-- the wait of w ends: granted (hold: it now holds one unit) and woken
local function grant(obj, w, hold)
  w.done = true
  wg_grant(obj._h, w.id, hold)
  wake(w.co, obj.kind)
end

-- the wait of w ends without success (a channel closed)
local function dismiss(w)
  w.done = true
  if w.id then wg_unwait(w.id) end
  wake(w.co, w.owner.kind)
end

-- what a waiting task's `wait` field says, by kind (as the core writes it)
local WAIT_PREFIX = { mutex = "lock", rwlock = "rwlock", semaphore = "semaphore",
                      channel = "channel", event = "event" }

-- common to every primitive
local function new_object(mt, kind, name)
  local obj = setmetatable({ kind = kind, name = name, _h = wg_new(name, kind), _q = new_queue(),
                             _label = kind .. " " .. name, _wait = WAIT_PREFIX[kind] .. ":" .. name }, mt)
  deadlock.describe(obj._h, obj)
  return obj
end

local function class(name)
  local mt = { __name = "async_inspect." .. name }
  mt.__index = mt
  mt.__gc = function(obj) if obj._h then wg_free(obj._h) end end
  mt.__tostring = function(obj) return format("%s '%s'", obj.kind, obj.name) end
  mt._describe = function() end
  return mt
end

-- a to-be-closed guard that calls `method` on `obj` when closed
local function guard_class(method)
  return { __name = "async_inspect.guard", __close = function(g) g.obj[method](g.obj) end }
end

-- mutex -----------------------------------------------------------------------------------

local Mutex = class("mutex")
local MutexGuard = guard_class("unlock")

--- A mutual exclusion lock: one task at a time, not re-entrant (locking it again from
-- the task holding it is a deadlock, reported).
-- @tparam[opt] string name shown in reports (default `mutex@source:line`)
-- @treturn table a mutex with `lock`, `unlock`, `try_lock`, `guard`, `locked`
-- @usage local m = sync.mutex("cache")
function M.mutex(name)
  local m = new_object(Mutex, "mutex", name_arg(name, "mutex", "mutex"))
  m._locked = false
  m._guard = setmetatable({ obj = m }, MutexGuard)
  return m
end

--- Lock the mutex, waiting (suspended) while another task holds it.
-- @return the mutex
-- @usage m:lock(); ...; m:unlock()
function Mutex:lock()
  if getmetatable(self) ~= Mutex then bad_self("lock", "mutex", self) end
  local co = running()
  if not self._locked then
    self._locked = true
    owners[self] = co
    wg_acquire(self._h)
    return self
  end
  wait_in(self, self._q, co, NONE, 2)
  return self
end

--- Lock the mutex if it is free, without waiting.
-- @treturn boolean true when it is now held by the running task
function Mutex:try_lock()
  if getmetatable(self) ~= Mutex then bad_self("try_lock", "mutex", self) end
  if self._locked then return false end
  self._locked = true
  owners[self] = running()
  wg_acquire(self._h)
  return true
end

--- Unlock the mutex (held by the running task); the longest waiter gets it.
function Mutex:unlock()
  if getmetatable(self) ~= Mutex then bad_self("unlock", "mutex", self) end
  if not self._locked or owners[self] ~= running() then not_held("unlock", self) end
  wg_release(self._h)
  local q = self._q
  if q.live > 0 then
    local w = pop(q)
    owners[self] = w.co
    grant(self, w, true)
  else
    self._locked = false
    owners[self] = nil
  end
end

--- Lock the mutex and return a to-be-closed guard that unlocks it, errors included.
-- @return the guard
-- @usage do local _ <close> = m:guard(); ... end
function Mutex:guard()
  if getmetatable(self) ~= Mutex then bad_self("guard", "mutex", self) end
  local co = running()
  if not self._locked then
    self._locked = true
    owners[self] = co
    wg_acquire(self._h)
  else
    wait_in(self, self._q, co, NONE, 2)
  end
  return self._guard
end

--- Is the mutex held?
-- @treturn boolean
function Mutex:locked()
  if getmetatable(self) ~= Mutex then bad_self("locked", "mutex", self) end
  return self._locked
end

-- read-write lock -------------------------------------------------------------------------------

local RWLock = class("rwlock")
local ReadGuard, WriteGuard = guard_class("read_unlock"), guard_class("write_unlock")

--- A read-write lock: many readers or one writer. A waiting writer goes before readers
-- that come after it (no writer starvation); a task already reading may read again.
-- Upgrading (asking to write while reading) waits for itself: a deadlock, reported.
-- @tparam[opt] string name
-- @treturn table with `read_lock`, `read_unlock`, `write_lock`, `write_unlock`,
-- `try_read_lock`, `try_write_lock`, `read_guard`, `write_guard`, `readers`, `writing`
function M.rwlock(name)
  local rw = new_object(RWLock, "rwlock", name_arg(name, "rwlock", "rwlock"))
  rw._w, rw._nr, rw._rd = false, 0, weak_keys()
  rw._rguard = setmetatable({ obj = rw }, ReadGuard)
  rw._wguard = setmetatable({ obj = rw }, WriteGuard)
  return rw
end

local function can_read(rw, co)
  return not rw._w and (rw._rd[co] ~= nil or rw._q.live == 0)
end

local function add_reader(rw, co)
  local rd = rw._rd
  rd[co] = (rd[co] or 0) + 1
  rw._nr = rw._nr + 1
end

local function can_write(rw)
  return not rw._w and rw._nr == 0 and rw._q.live == 0
end

-- hand the lock to the waiters at the front that can have it now
local function admit(rw)
  local q = rw._q
  local w = peek(q)
  if w == nil or rw._w then return end
  if w.mode == WRITE then
    if rw._nr == 0 then
      pop(q)
      rw._w = true
      owners[rw] = w.co
      grant(rw, w, true)
    end
    return
  end
  while w ~= nil and w.mode == READ do
    pop(q)
    add_reader(rw, w.co)
    grant(rw, w, true)
    w = peek(q)
  end
end
RWLock._after_cancel = admit

local function read_lock(rw, depth)
  local co = running()
  if can_read(rw, co) then
    add_reader(rw, co)
    wg_acquire(rw._h, READ, 1, depth + 1)
  else
    wait_in(rw, rw._q, co, READ, depth + 1)
  end
end

local function write_lock(rw, depth)
  local co = running()
  if can_write(rw) then
    rw._w = true
    owners[rw] = co
    wg_acquire(rw._h, WRITE, 1, depth + 1)
  else
    wait_in(rw, rw._q, co, WRITE, depth + 1)
  end
end

--- Lock for reading, waiting while a writer holds or waits for the lock.
-- @return the lock
function RWLock:read_lock()
  if getmetatable(self) ~= RWLock then bad_self("read_lock", "rwlock", self) end
  read_lock(self, 2)
  return self
end

--- Lock for writing, waiting while anyone holds the lock.
-- @return the lock
function RWLock:write_lock()
  if getmetatable(self) ~= RWLock then bad_self("write_lock", "rwlock", self) end
  write_lock(self, 2)
  return self
end

--- Lock for reading if that needs no wait.
-- @treturn boolean
function RWLock:try_read_lock()
  if getmetatable(self) ~= RWLock then bad_self("try_read_lock", "rwlock", self) end
  local co = running()
  if not can_read(self, co) then return false end
  add_reader(self, co)
  wg_acquire(self._h, READ)
  return true
end

--- Lock for writing if that needs no wait.
-- @treturn boolean
function RWLock:try_write_lock()
  if getmetatable(self) ~= RWLock then bad_self("try_write_lock", "rwlock", self) end
  if not can_write(self) then return false end
  self._w = true
  owners[self] = running()
  wg_acquire(self._h, WRITE)
  return true
end

--- Give up one read lock of the running task.
function RWLock:read_unlock()
  if getmetatable(self) ~= RWLock then bad_self("read_unlock", "rwlock", self) end
  local co = running()
  local mine = self._rd[co]
  if mine == nil then not_held("read_unlock", self) end
  self._rd[co] = mine > 1 and mine - 1 or nil
  self._nr = self._nr - 1
  wg_release(self._h)
  if self._nr == 0 and self._q.live > 0 then admit(self) end
end

--- Give up the write lock of the running task.
function RWLock:write_unlock()
  if getmetatable(self) ~= RWLock then bad_self("write_unlock", "rwlock", self) end
  if not self._w or owners[self] ~= running() then not_held("write_unlock", self) end
  self._w = false
  owners[self] = nil
  wg_release(self._h)
  if self._q.live > 0 then admit(self) end
end

--- Lock for reading; the to-be-closed guard returned gives the read lock up.
-- @return the guard
function RWLock:read_guard()
  if getmetatable(self) ~= RWLock then bad_self("read_guard", "rwlock", self) end
  read_lock(self, 2)
  return self._rguard
end

--- Lock for writing; the to-be-closed guard returned gives the write lock up.
-- @return the guard
function RWLock:write_guard()
  if getmetatable(self) ~= RWLock then bad_self("write_guard", "rwlock", self) end
  write_lock(self, 2)
  return self._wguard
end

--- Number of read locks held (by all tasks).
-- @treturn integer
function RWLock:readers()
  if getmetatable(self) ~= RWLock then bad_self("readers", "rwlock", self) end
  return self._nr
end

--- Is the lock held for writing?
-- @treturn boolean
function RWLock:writing()
  if getmetatable(self) ~= RWLock then bad_self("writing", "rwlock", self) end
  return self._w
end

function RWLock._describe(rw, r)
  r.readers = rw._nr
end

-- semaphore -------------------------------------------------------------------------------------

local Semaphore = class("semaphore")
local SemaphoreGuard = guard_class("release")

--- A counting semaphore of `n` permits. Permits are counted per holding task: a task
-- releases only permits it acquired. A waiter needs any one holder to release, so a
-- deadlock is reported only when every holder is blocked for good.
-- @tparam[opt] string name
-- @tparam integer n permits (0 or more)
-- @treturn table with `acquire`, `release`, `try_acquire`, `guard`, `available`
-- @usage local pool = sync.semaphore("db connections", 4)
function M.semaphore(name, n)
  name = name_arg(name, "semaphore", "semaphore")
  count_arg(n, 2, "semaphore")
  local s = new_object(Semaphore, "semaphore", name)
  s._n, s._avail, s._held = n, n, weak_keys()
  s._guard = setmetatable({ obj = s }, SemaphoreGuard)
  return s
end

local function acquire(s, depth)
  local co = running()
  if s._avail > 0 and s._q.live == 0 then
    s._avail = s._avail - 1
    local held = s._held
    held[co] = (held[co] or 0) + 1
    wg_acquire(s._h, NONE, 1, depth + 1)
  else
    wait_in(s, s._q, co, NONE, depth + 1)
  end
end

--- Take a permit, waiting while none is available.
-- @return the semaphore
function Semaphore:acquire()
  if getmetatable(self) ~= Semaphore then bad_self("acquire", "semaphore", self) end
  acquire(self, 2)
  return self
end

--- Take a permit if one is available now.
-- @treturn boolean
function Semaphore:try_acquire()
  if getmetatable(self) ~= Semaphore then bad_self("try_acquire", "semaphore", self) end
  if self._avail == 0 or self._q.live > 0 then return false end
  self._avail = self._avail - 1
  local co, held = running(), self._held
  held[co] = (held[co] or 0) + 1
  wg_acquire(self._h)
  return true
end

--- Give back one permit the running task holds; the longest waiter gets it.
function Semaphore:release()
  if getmetatable(self) ~= Semaphore then bad_self("release", "semaphore", self) end
  local co, held = running(), self._held
  local mine = held[co]
  if mine == nil then not_held("release", self) end
  held[co] = mine > 1 and mine - 1 or nil
  wg_release(self._h)
  local w = self._q.live > 0 and pop(self._q)
  if w then
    held[w.co] = (held[w.co] or 0) + 1
    grant(self, w, true)
  else
    self._avail = self._avail + 1
  end
end

--- Take a permit; the to-be-closed guard returned gives it back.
-- @return the guard
function Semaphore:guard()
  if getmetatable(self) ~= Semaphore then bad_self("guard", "semaphore", self) end
  acquire(self, 2)
  return self._guard
end

--- Permits available now.
-- @treturn integer
function Semaphore:available()
  if getmetatable(self) ~= Semaphore then bad_self("available", "semaphore", self) end
  return self._avail
end

function Semaphore._describe(s, r)
  r.capacity, r.available = s._n, s._avail
end

-- channel -------------------------------------------------------------------------------------

local Channel = class("channel")

--- A channel of values between tasks, first in first out.
-- Without a capacity it is unbounded (`send` never waits); with capacity `n` a sender
-- waits while `n` values are buffered; with capacity 0 every send waits for a receiver.
-- `nil` is a value like any other.
-- @tparam[opt] string name
-- @tparam[opt] integer capacity
-- @treturn table with `send`, `recv`, `try_send`, `try_recv`, `close`, `len`, `closed`
-- @usage local jobs = sync.channel("jobs", 16)
function M.channel(name, capacity)
  name = name_arg(name, "channel", "channel")
  count_arg(capacity, 2, "channel", true)
  local ch = new_object(Channel, "channel", name)
  ch._cap, ch._buf, ch._head, ch._tail, ch._closed = capacity, {}, 1, 0, false
  ch._sq = new_queue() -- senders waiting with their values; ch._q: receivers waiting
  return ch
end

local function closed_error(ch, depth)
  error(format("send on closed channel '%s'", ch.name), depth + 1)
end

-- one send or receive done without waiting: counted as an acquisition of the channel
local function count_op(ch) wg_grant(ch._h, false, false) end

local function buffer_push(ch, v)
  local t = ch._tail + 1
  ch._tail = t
  ch._buf[t] = v
end

local function buffer_pop(ch)
  local h, buf = ch._head, ch._buf
  local v = buf[h]
  buf[h] = nil
  if h == ch._tail then ch._head, ch._tail = 1, 0 else ch._head = h + 1 end
  return v
end

-- send without waiting if possible; true when done
local function send_now(ch, v)
  local rq = ch._q
  if rq.live > 0 then -- receivers wait only when nothing is buffered
    local w = pop(rq)
    w.value, w.ok = v, true
    grant(ch, w, false)
  elseif ch._cap == nil or ch._tail - ch._head + 1 < ch._cap then
    buffer_push(ch, v)
  else
    return false
  end
  count_op(ch)
  return true
end

--- Send a value, waiting while the channel is full. Raises an error when the channel is
-- (or gets, while waiting) closed.
-- @param v the value
-- @treturn boolean true
function Channel:send(v)
  if getmetatable(self) ~= Channel then bad_self("send", "channel", self) end
  if self._closed then closed_error(self, 2) end
  if send_now(self, v) then return true end
  local w = wait_in(self, self._sq, running(), SEND, 2, v)
  if w.closed then closed_error(self, 2) end
  return true
end

--- Send a value if that needs no wait.
-- @param v the value
-- @treturn boolean true when sent, false when the channel is full
function Channel:try_send(v)
  if getmetatable(self) ~= Channel then bad_self("try_send", "channel", self) end
  if self._closed then closed_error(self, 2) end
  return send_now(self, v)
end

-- receive without waiting if possible: value, true; or nil, false
local function recv_now(ch)
  local sq = ch._sq
  if ch._head <= ch._tail then
    local v = buffer_pop(ch)
    if sq.live > 0 then -- room now: the longest waiting sender's value goes in
      local s = pop(sq)
      buffer_push(ch, s.value)
      s.value = nil
      grant(ch, s, false)
    end
    count_op(ch)
    return v, true
  end
  if sq.live > 0 then -- nothing buffered (capacity 0): take it from a waiting sender
    local s = pop(sq)
    local v = s.value
    s.value = nil
    grant(ch, s, false)
    count_op(ch)
    return v, true
  end
  return nil, false
end

--- Receive a value, waiting while the channel is empty.
-- @return the value, true; or nil, false when the channel is closed and empty
function Channel:recv()
  if getmetatable(self) ~= Channel then bad_self("recv", "channel", self) end
  local v, ok = recv_now(self)
  if ok or self._closed then return v, ok end
  local w = wait_in(self, self._q, running(), RECV, 2)
  return w.value, w.ok == true
end

--- Receive a value if one is there.
-- @return the value, true; or nil, false (empty or closed)
function Channel:try_recv()
  if getmetatable(self) ~= Channel then bad_self("try_recv", "channel", self) end
  return recv_now(self)
end

--- Close the channel: waiting receivers get `nil, false`, waiting senders an error;
-- buffered values can still be received.
-- @treturn boolean false when it was closed already
function Channel:close()
  if getmetatable(self) ~= Channel then bad_self("close", "channel", self) end
  if self._closed then return false end
  self._closed = true
  while self._q.live > 0 do
    local w = pop(self._q)
    w.value, w.ok = nil, false
    dismiss(w)
  end
  while self._sq.live > 0 do
    local w = pop(self._sq)
    w.value, w.closed = nil, true
    dismiss(w)
  end
  return true
end

--- Number of buffered values.
-- @treturn integer
function Channel:len()
  if getmetatable(self) ~= Channel then bad_self("len", "channel", self) end
  return self._tail - self._head + 1
end

--- Is the channel closed?
-- @treturn boolean
function Channel:closed()
  if getmetatable(self) ~= Channel then bad_self("closed", "channel", self) end
  return self._closed
end

function Channel._describe(ch, r)
  r.capacity, r.size, r.closed = ch._cap, ch._tail - ch._head + 1, ch._closed
  r.senders_waiting = ch._sq.live
end

-- event -------------------------------------------------------------------------------------------

local Event = class("event")

--- An event: tasks wait until it is set; setting it wakes them all, and it stays set
-- until cleared.
-- @tparam[opt] string name
-- @treturn table with `set`, `clear`, `wait`, `is_set`
-- @usage local ready = sync.event("config loaded"); ready:wait()
function M.event(name)
  local ev = new_object(Event, "event", name_arg(name, "event", "event"))
  ev._set = false
  return ev
end

--- Wait until the event is set (returns at once when it is).
-- @return the event
function Event:wait()
  if getmetatable(self) ~= Event then bad_self("wait", "event", self) end
  if self._set then
    count_op(self)
  else
    wait_in(self, self._q, running(), NONE, 2)
  end
  return self
end

--- Set the event, waking every waiting task.
function Event:set()
  if getmetatable(self) ~= Event then bad_self("set", "event", self) end
  if self._set then return end
  self._set = true
  local q = self._q
  while q.live > 0 do grant(self, pop(q), false) end
end

--- Clear the event: tasks that wait from now on wait until the next `set`.
function Event:clear()
  if getmetatable(self) ~= Event then bad_self("clear", "event", self) end
  self._set = false
end

--- Is the event set?
-- @treturn boolean
function Event:is_set()
  if getmetatable(self) ~= Event then bad_self("is_set", "event", self) end
  return self._set
end

function Event._describe(ev, r)
  r.set = ev._set
end

return M

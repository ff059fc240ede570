--- Read the inspector's event stream incrementally, for the recorder and the remote server.
--
-- Each poll reads the events recorded since the last one (`ai.iter_events(next_seq)`), at
-- most `max_rows` of them, and emits protocol messages in order: every event, followed for
-- a `spawn` by the task's meta data (name, kind: what the event does not carry), and a `gap`
-- message when the ring buffer overwrote events before they were read.
-- @module async_inspect.feed

local wire = require("async_inspect.wire")

local M = {}

local Feed = {}
Feed.__index = Feed

local function check_inspector(ins, fname)
  if type(ins) ~= "table" or type(ins.iter_events) ~= "function"
    or type(ins.snapshot) ~= "function" then
    error(string.format("bad argument #1 to '%s' (inspector with iter_events and snapshot "
      .. "expected, got %s)", fname, type(ins)), 3)
  end
end

--- The first and last sequence numbers the inspector still holds. The last one is found
-- from `stats().events_total` when the inspector has it (checked by reading from there),
-- so a large ring is not read through.
-- @tparam table inspector `async_inspect` (or an object with the same `iter_events`)
-- @treturn integer|nil first available seq (nil when there is no event)
-- @treturn integer last seq (0 when there is no event)
function M.bounds(inspector)
  check_inspector(inspector, "bounds")
  local function first_of(from)
    local f, state, ctl = inspector.iter_events(from)
    return (f(state, ctl))
  end
  local first = first_of(nil)
  if not first then return nil, 0 end
  local from = first
  if type(inspector.stats) == "function" then
    local ok, stats = pcall(inspector.stats)
    local hint = ok and type(stats) == "table" and math.tointeger(stats.events_total)
    if hint and hint > first then
      -- a wrong hint must not skip events: use it only if the stream goes on from there
      if first_of(hint) then from = hint end
    end
  end
  local last = first
  for seq in inspector.iter_events(from) do last = seq end
  return first, last
end

--- Create a feed.
-- @tparam table inspector `async_inspect` or an object with `iter_events`, `snapshot` and
-- optionally `task_info`
-- @tparam[opt] table opts `from_seq` (first seq to read, default 1), `max_rows` (per poll,
-- default 100000), `meta` (emit task meta after spawns, default true)
-- @treturn table feed with `poll` and the field `next_seq`
-- @usage local f = feed.new(ai, {from_seq = last + 1}); f:poll(function(msg) ... end)
function M.new(inspector, opts)
  check_inspector(inspector, "new")
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'new' (table expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  return setmetatable({
    inspector = inspector,
    next_seq = opts.from_seq or 1,
    max_rows = opts.max_rows or 100000,
    meta = opts.meta ~= false,
    lost = 0,
  }, Feed)
end

local function meta_of(self, id, renamed)
  local info = self.inspector.task_info
  if not info then return nil end
  local ok, rec = pcall(info, id)
  if not ok or type(rec) ~= "table" then return nil end
  return {
    type = "task", id = id,
    -- a name read now is the latest one: if the task was renamed in this batch, the
    -- name it was spawned with is unknown
    name = not renamed and rec.name or nil,
    kind = rec.kind, parent = rec.parent, created_at = rec.created_at,
    ["function"] = rec["function"],
  }
end

--- Read new events and emit their messages, in order.
-- @tparam function emit called with each message table (`event`, `task` or `gap`)
-- @treturn integer number of events read
function Feed:poll(emit)
  if type(emit) ~= "function" then
    error("bad argument #1 to 'poll' (function expected, got " .. type(emit) .. ")", 2)
  end
  local rows, spawned, renamed = {}, {}, {}
  local n = 0
  for seq, t, task, kind, loc, other, detail in self.inspector.iter_events(self.next_seq) do
    n = n + 1
    rows[n] = wire.event(seq, t, task, kind, loc, other, detail)
    if kind == "spawn" then spawned[task] = true end
    if kind == "name" and spawned[task] then renamed[task] = true end
    if n >= self.max_rows then break end
  end
  for i = 1, n do
    local ev = rows[i]
    if ev.seq > self.next_seq then
      local lost = ev.seq - self.next_seq
      self.lost = self.lost + lost
      emit({ type = "gap", from = self.next_seq, to = ev.seq - 1, lost = lost, t = ev.t })
    end
    self.next_seq = ev.seq + 1
    emit(ev)
    if ev.kind == "spawn" and self.meta then
      local m = meta_of(self, ev.task, renamed[ev.task])
      if m then
        m.t = ev.t
        emit(m)
      end
    end
  end
  return n
end

--- Move past the events recorded since the last poll without emitting them.
-- @treturn integer number of events skipped
function Feed:skip()
  local n = 0
  for seq in self.inspector.iter_events(self.next_seq) do
    n = n + 1
    self.next_seq = seq + 1
  end
  return n
end

return M

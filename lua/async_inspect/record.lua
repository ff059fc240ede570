--- Recording the event stream to a file as it happens, and replaying it.
--
-- A recording is NDJSON (one JSON object per line, see docs/dashboard.md):
--
--   {"type":"header","format":"async_inspect.recording","version":1,...}
--   {"type":"event","seq":1,"t":120,"task":1,"kind":"spawn","loc":"app.lua:3"}
--   {"type":"task","id":1,"name":"worker","kind":"coroutine","t":120}
--   {"type":"snapshot","full":true,"seq":1,"snapshot":{...}}
--   {"type":"gap","from":10,"to":19,"lost":10}
--   {"type":"end","t":...,"seq":...,"events":...,"lost":...}
--
-- The recorder polls `ai.iter_events` on a luv timer (every 100 ms by default), writes
-- what is new, flushes, and every second writes a partial snapshot (stats, resources,
-- warnings and the live tasks: what events alone cannot tell). It never keeps more than one
-- poll of events in memory. `stop()` (or closing, or garbage collection at exit) writes the
-- rest, a full snapshot and the end line.
-- @module async_inspect.record

local feed_mod = require("async_inspect.feed")
local model = require("async_inspect.model")
local wire = require("async_inspect.wire")
local handles = require("async_inspect.handles")

local M = {}

--- Format name written in the header.
M.FORMAT = "async_inspect.recording"
--- Format version written in the header (replay refuses other versions).
M.VERSION = 1

local function bad(n, fname, expected, got)
  error(string.format("bad argument #%d to '%s' (%s expected, got %s)", n, fname, expected,
    got == nil and "no value" or type(got)), 3)
end

local FINAL = { completed = true, failed = true, cancelled = true, dropped = true }

local Recorder = {}
Recorder.__index = Recorder

local function write(self, msg)
  local ok, err = self.file:write(wire.encode(msg), "\n")
  if not ok then error("write failed: " .. tostring(err), 0) end
end

local function take_snapshot(self, full)
  local snap = self.inspector.snapshot()
  local tasks = snap.tasks
  if not full then
    local live = {}
    for _, t in ipairs(tasks) do
      if not FINAL[t.state] then live[#live + 1] = t end
    end
    tasks = live
  end
  write(self, {
    type = "snapshot", full = full, seq = self.feed.next_seq - 1,
    snapshot = {
      t = snap.t, seq = self.feed.next_seq - 1, stats = snap.stats, tasks = tasks,
      resources = snap.resources, warnings = snap.warnings, deadlocks = snap.deadlocks,
    },
  })
  self.last_snapshot = self.now()
end

local function poll(self)
  local gap = false
  local n = self.feed:poll(function(msg)
    if msg.type == "gap" then gap = true end
    write(self, msg)
  end)
  self.events = self.events + n
  -- after a gap the task figures cannot be rebuilt from events: write the truth
  if gap then take_snapshot(self, true) end
  return n
end

local function fail(self, err)
  self.error = tostring(err)
  io.stderr:write("async_inspect.record: recording to " .. self.path .. " stopped: "
    .. self.error .. "\n")
  self:stop()
end

-- One step: new events, the periodic partial snapshot when due, then flush.
local function step(self)
  local n = poll(self)
  if self.now() - self.last_snapshot >= self.snapshot_interval * 1e6 then
    take_snapshot(self, false)
  elseif n == 0 then
    return
  end
  self.file:flush()
end

local function header(self, opts)
  local uv = self.uv
  write(self, {
    type = "header", format = M.FORMAT, version = M.VERSION,
    t = self.now(), wall = os.time(), pid = uv and uv.os_getpid() or nil,
    host = uv and uv.os_gethostname() or nil, lua = _VERSION,
    program = type(_G.arg) == "table" and _G.arg[0] or nil,
    interval = self.interval, snapshot_interval = self.snapshot_interval,
    note = opts.note,
  })
end

local function start(self, opts)
  local first, last = feed_mod.bounds(self.inspector)
  local history = opts.history ~= false and (first == nil or first == 1)
  header(self, opts)
  if history then
    -- the ring still holds everything since tracking started: record it all first
    self.feed = feed_mod.new(self.inspector, { from_seq = 1, max_rows = math.huge })
    poll(self)
    self.feed.max_rows = self.max_rows
  else
    self.feed = feed_mod.new(self.inspector, { from_seq = last + 1, max_rows = self.max_rows })
  end
  take_snapshot(self, true)
  self.file:flush()
end

--- Start recording the event stream to a file.
-- @tparam string path file to write (replaced)
-- @tparam[opt] table opts `interval` (poll period in ms, default 100),
-- `snapshot_interval` (ms between partial snapshots, default 1000), `max_rows` (events
-- read per poll, default 100000), `history` (also record the events still in the ring
-- when it holds them all, default true), `keep_alive` (the timer keeps the luv loop
-- running, default false), `inspector` (default `require "async_inspect"`), `note`
-- (string stored in the header)
-- @treturn table recorder with `stop()`, `flush()` and the fields `path`, `events`
-- (events written), `error` (set when writing failed: the recording stopped)
-- @usage local rec <close> = ai.record("run.aiv"); ... ; rec:stop()
function M.record(path, opts)
  if type(path) ~= "string" then bad(1, "record", "string", path) end
  if opts ~= nil and type(opts) ~= "table" then bad(2, "record", "table", opts) end
  opts = opts or {}
  local inspector = opts.inspector or require("async_inspect")
  local file, err = io.open(path, "wb")
  if not file then error("async_inspect.record: cannot open " .. path .. ": " .. err, 2) end
  file:setvbuf("full", 65536)
  local ok_uv, uv = pcall(require, "luv")
  local self = {
    path = path, file = file, inspector = inspector, uv = ok_uv and uv or nil,
    interval = opts.interval or 100, snapshot_interval = opts.snapshot_interval or 1000,
    max_rows = opts.max_rows or 100000, events = 0, closed = false,
    now = inspector.now or function() return inspector.snapshot().t end,
    last_snapshot = 0,
  }
  local ok, start_err = pcall(start, setmetatable(self, Recorder), opts)
  if not ok then
    file:close()
    error("async_inspect.record: " .. tostring(start_err), 2)
  end
  if self.uv then
    self.timer = uv.new_timer()
    self.timer:start(self.interval, self.interval, function() self:flush() end)
    if not opts.keep_alive then self.timer:unref() end
  end
  -- the guard is created last so that at exit it is finalised before the timer handle
  self.guard = setmetatable({}, { __gc = function() self:stop() end })
  return self
end

--- Write what is pending (new events, and the periodic partial snapshot when it is due)
-- and flush the file; the recorder keeps going. The luv timer calls this.
-- @treturn boolean true, or false when the recording has stopped
function Recorder:flush()
  if self.closed then return false end
  local ok, err = pcall(step, self)
  if not ok then
    fail(self, err)
    return false
  end
  return true
end

--- Stop recording: write the remaining events, a full snapshot and the end line, and
-- close the file. Safe to call more than once.
-- @treturn integer number of events written
function Recorder:stop()
  if self.closed then return self.events end
  self.closed = true
  if self.timer then handles.release(self.timer) end
  if not self.error then
    local ok, err = pcall(function()
      poll(self)
      take_snapshot(self, true)
      write(self, { type = "end", t = self.now(), seq = self.feed.next_seq - 1,
        events = self.events, lost = self.feed.lost })
    end)
    if not ok then self.error = tostring(err) end
  end
  pcall(self.file.close, self.file)
  return self.events
end

Recorder.close = Recorder.stop
Recorder.__close = function(self) self:stop() end

-- Replay ----------------------------------------------------------------------------------

--- Read a recording.
-- @tparam string path
-- @tparam[opt] table opts `max_events` (events in a replayed snapshot, default 100000)
-- @treturn table history (see `async_inspect.model.history`) with the extra fields
-- `header` (the header line) and `complete` (whether the end line was found); use
-- `:cursor()` for a time cursor and `:snapshot_at(t)` for one moment
-- @usage local h = record.open("run.aiv"); local c = h:cursor(); c:last(); print(#c:snapshot().tasks)
function M.open(path, opts)
  if type(path) ~= "string" then bad(1, "open", "string", path) end
  if opts ~= nil and type(opts) ~= "table" then bad(2, "open", "table", opts) end
  local file, err = io.open(path, "rb")
  if not file then error("async_inspect.record: cannot open " .. path .. ": " .. err, 2) end
  local h = model.history(opts)
  local n, pending_err = 0, nil
  for line in file:lines() do
    n = n + 1
    if pending_err then
      file:close()
      error(path .. ":" .. (n - 1) .. ": " .. pending_err, 2)
    end
    local msg, derr = wire.decode(line)
    if type(msg) ~= "table" then
      -- a line cut short by a crash can only be the last one
      pending_err = "not a JSON object (" .. tostring(derr) .. ")"
    elseif n == 1 then
      if msg.type ~= "header" or msg.format ~= M.FORMAT then
        file:close()
        error(path .. " is not an async_inspect recording", 2)
      end
      if msg.version ~= M.VERSION then
        file:close()
        error(path .. ": recording format version " .. tostring(msg.version)
          .. " is not supported (this reader knows " .. M.VERSION .. ")", 2)
      end
      h.header = msg
    elseif msg.type == "end" then
      h.complete = true
      h.footer = msg
    else
      h:add(msg)
    end
  end
  file:close()
  if n == 0 then error(path .. " is empty", 2) end
  h.complete = h.complete or false
  return h
end

--- Open a recording in the dashboard with a time cursor (starts at the beginning,
-- paused). Run the luv loop afterwards (`uv.run()`).
-- @tparam string path
-- @tparam[opt] table opts passed to `tui.start` (e.g. `on_quit`, `ascii`, `color`)
-- @treturn table the dashboard handle (`:stop()`), with the field `history`
-- @usage record.replay("run.aiv"); require("luv").run()
function M.replay(path, opts)
  if type(path) ~= "string" then bad(1, "replay", "string", path) end
  if opts ~= nil and type(opts) ~= "table" then bad(2, "replay", "table", opts) end
  local h = M.open(path)
  local tui_opts = {}
  for k, v in pairs(opts or {}) do tui_opts[k] = v end
  tui_opts.source = M.source(h)
  local handle = require("async_inspect.tui").start(tui_opts)
  handle.history = h
  return handle
end

--- A dashboard source over a history: snapshots at a cursor that the dashboard moves.
-- @tparam table history from `open`
-- @treturn table source `{mode="replay", cursor=, snapshot=function(need), status=function()}`
function M.source(history)
  if type(history) ~= "table" or type(history.cursor) ~= "function" then
    bad(1, "source", "history", history)
  end
  local cursor = history:cursor()
  local name = history.header and history.header.program or "recording"
  return {
    mode = "replay",
    cursor = cursor,
    snapshot = function(need)
      return cursor:snapshot({ events = need and need.events })
    end,
    status = function()
      local i, n = cursor:position()
      return string.format("%s  event %d/%d%s", tostring(name), i, n,
        history.complete and "" or "  (recording cut short)")
    end,
  }
end

return M

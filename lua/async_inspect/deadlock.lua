--- Deadlocks and stuck tasks: reports, policy, classification.
--
-- The wait-for graph lives in the C core (csrc/waitgraph.c): every tracked lock,
-- semaphore, channel, event and join records who holds it and who waits for it, and
-- the core searches for a cycle at the moment a wait begins, from the waiting task
-- only. This module turns a cycle into a report (every task of the cycle, what it
-- waits for and where, who holds that and where it was acquired, for how long) and
-- applies the `deadlock` setting: `"report"` (default: printed once to stderr, then
-- the `on_deadlock` callbacks), `"error"` (the callbacks, then an error raised in the
-- task whose wait closed the cycle), `"ignore"`. Every cycle is kept for snapshots
-- (`snap.deadlocks`) whatever the policy.
--
-- When a scheduler runs out of work with tasks still suspended, `stuck{idle=true}`
-- classifies each: deadlocked (in a cycle), waiting for a resource whose holder ended
-- without releasing it (a leaked lock), waiting on a channel nobody can use any more,
-- lost wake-up (nothing left could resume it), or blocked behind one of those.
--
-- Loading this module registers a snapshot provider (`snap.resources`,
-- `snap.deadlocks`) and a diagnoser (`ai._diagnosers`).
-- @module async_inspect.deadlock
-- @usage
-- local deadlock = require "async_inspect.deadlock"
-- deadlock.on_deadlock(function(report) log(report.text) end)

local ai = require("async_inspect")
local core = require("async_inspect.core")
local util = require("async_inspect.views.util")

local M = {}

local format, concat = string.format, table.concat
local sanitize = util.sanitize

local MAX_HISTORY = 64   -- cycles kept for snapshots, newest last

local history = {}       -- reports of detected cycles
local callbacks = {}     -- on_deadlock functions, in registration order
local described = setmetatable({}, { __mode = "v" }) -- handle -> Lua object with :_describe(r)

local function arg_error(n, fname, msg)
  error(format("bad argument #%d to '%s' (%s)", n, fname, msg), 3)
end

local function duration(ns) return util.duration(ns, true) end

local FINISHED = { completed = true, failed = true, cancelled = true, dropped = true }

-- reports --------------------------------------------------------------------------------

local function who(id, name)
  if id == 0 then return "the main thread" end
  return format("#%d %s", id, sanitize(name or "?"))
end

local function what(step)
  if step.kind == "join" then return format("%s to end (join)", who(step.held_by, step.held_by_name)) end
  local mode = step.mode and format(" (%s)", step.mode) or ""
  return format("%s '%s'%s", step.kind or "resource", sanitize(step.waits_for or "?"), mode)
end

-- why a task waiting for what it holds itself never gets it
local function self_hint(step)
  if step.held_by ~= step.task then return nil end
  if step.kind == "rwlock" and step.mode == "write" and step.hold_mode == "read" then
    return "a read-to-write upgrade: it waits for every reader to leave, itself included"
  elseif step.kind == "rwlock" then
    return "it holds this lock already (for writing): it waits for itself"
  elseif step.kind == "mutex" then
    return "it holds this mutex already: locking it again waits for itself (not re-entrant)"
  elseif step.kind == "join" then
    return "a task cannot join itself"
  end
  return "it holds this resource already and waits for itself"
end

local function holder_text(step)
  local count = (step.count or 1) > 1 and format(" x%d", step.count) or ""
  local mode = step.hold_mode and format(" (%s)", step.hold_mode) or ""
  local text = format("held by %s%s%s, acquired at %s", who(step.held_by, step.held_by_name),
    mode, count, sanitize(step.acquired_at or "?"))
  local others = #(step.holders or {}) - 1
  if others > 0 then
    text = text .. format(" (and %d other holder%s, all blocked)", others, others > 1 and "s" or "")
  end
  return text
end

local function step_lines(lines, step)
  local join = step.kind == "join"
  lines[#lines + 1] = format("  %s waits for %s at %s for %s%s", who(step.task, step.name),
    what(step), sanitize(step.at or "?"), duration(step.waited), join and "" or ",")
  if not join then lines[#lines + 1] = "      " .. holder_text(step) end
  local hint = self_hint(step)
  if hint then lines[#lines + 1] = "      -- " .. hint end
end

--- The text of a deadlock report.
-- @tparam table report `{t=, tasks={step, ...}}` (the steps of `snap.deadlocks`)
-- @treturn string
function M.format(report)
  if type(report) ~= "table" or type(report.tasks) ~= "table" then
    arg_error(1, "format", "deadlock report expected")
  end
  local n = #report.tasks
  local lines = {
    n == 1 and "deadlock: a task waits for itself"
      or format("deadlock: %d tasks wait for each other in a cycle", n),
  }
  for _, step in ipairs(report.tasks) do step_lines(lines, step) end
  local first = report.tasks[1]
  if first then
    lines[#lines + 1] = format("  the cycle closed when %s began to wait at %s (t=%s)",
      who(first.task, first.name), sanitize(first.at or "?"), util.timestamp(report.t))
  end
  return concat(lines, "\n")
end

-- a report's text is made when first read: under the "ignore" policy, a cycle of
-- thousands of tasks costs its detection, not its formatting
local Report = { __index = function(report, key)
  if key ~= "text" then return nil end
  local text = M.format(report)
  rawset(report, "text", text)
  return text
end }

local function policy()
  local ok, settings = pcall(ai.settings)
  local p = ok and settings.deadlock or "report"
  return p
end

local function remember(report)
  history[#history + 1] = report
  if #history > MAX_HISTORY then table.remove(history, 1) end
end

local function notify(report)
  for _, fn in ipairs(callbacks) do
    local ok, err = pcall(fn, report)
    if not ok then
      io.stderr:write(format("async_inspect: an on_deadlock callback failed: %s\n", tostring(err)))
    end
  end
end

--- Handle a cycle found by the core (a `wg_wait` or `wg_wait_task` result).
-- Builds the report, keeps it for snapshots and applies the policy.
-- @tparam table cycle the steps from the core, the task that closed it first
-- @treturn table the report `{t=, tasks=, text=}` (`text` is made when first read)
-- @treturn string|nil the error message when the policy is `"error"`: the caller undoes
-- its wait, then raises it
function M.found(cycle)
  if type(cycle) ~= "table" or cycle[1] == nil then arg_error(1, "found", "cycle expected") end
  local report = setmetatable({ t = core.now(), tasks = cycle }, Report)
  remember(report)
  local p = policy()
  if p == "ignore" then return report, nil end
  if p == "report" then io.stderr:write("async_inspect: ", report.text, "\n") end
  notify(report)
  if p == "error" then return report, report.text end
  return report, nil
end

--- Call `fn(report)` for every deadlock detected from now on (policies `report` and
-- `error`). It runs inside the task that closed the cycle and must not yield.
-- @tparam function fn
-- @treturn function a function that removes the callback again
-- @usage local off = deadlock.on_deadlock(function(r) print(r.text) end) ... off()
function M.on_deadlock(fn)
  if type(fn) ~= "function" then
    arg_error(1, "on_deadlock", format("function expected, got %s", fn == nil and "no value" or type(fn)))
  end
  callbacks[#callbacks + 1] = fn
  return function()
    for i = #callbacks, 1, -1 do
      if callbacks[i] == fn then table.remove(callbacks, i) end
    end
  end
end

-- joins and awaits -------------------------------------------------------------------------

local function task_id(v)
  if type(v) == "thread" then return core.track(v) end
  return v
end

local function check_task(v, n, fname)
  if type(v) ~= "thread" and math.type(v) ~= "integer" then
    arg_error(n, fname, format("coroutine or task id expected, got %s", v == nil and "no value" or type(v)))
  end
end

--- Record that `waiter` waits for task `target` to end (a join, or an await whose
-- target is known): an edge of the same wait-for graph as the locks, so a cycle of
-- joins, or of joins and locks, is caught as it forms. Call `done_waiting` when the
-- wait is over. With the `error` policy a cycle raises here, the edge undone.
-- @param waiter coroutine or task id (normally the running task)
-- @param target coroutine or task id (a coroutine is faster: ids are looked up)
-- @tparam[opt] string|integer at where it waits: "source:line", or a stack level of the
-- running thread counted from the caller of `wait_for_task` (1, the default: that
-- caller; 2: its caller, e.g. the user of a `join` built on this)
-- @treturn table|nil the deadlock report when this wait closed a cycle
-- @usage deadlock.wait_for_task(coroutine.running(), other_co); ... deadlock.done_waiting(coroutine.running())
function M.wait_for_task(waiter, target, at)
  check_task(waiter, 1, "wait_for_task")
  check_task(target, 2, "wait_for_task")
  if at ~= nil and type(at) ~= "string" and not (math.type(at) == "integer" and at >= 1) then
    arg_error(3, "wait_for_task", format("string or level expected, got %s", type(at)))
  end
  if at == nil or type(at) == "number" then at = (at or 1) + 1 end
  local cycle = core.wg_wait_task(waiter, target, at)
  if cycle == nil then return nil end
  local report, err = M.found(cycle)
  if err then
    M.done_waiting(waiter)
    error(err, 2)
  end
  return report
end

--- The wait recorded by `wait_for_task` (or any wait of that task) is over.
-- @param waiter coroutine or task id
function M.done_waiting(waiter)
  check_task(waiter, 1, "done_waiting")
  local id = task_id(waiter)
  if id ~= nil then core.wg_unwait(id) end
end

-- resources for snapshots --------------------------------------------------------------------

--- Let a Lua object add its details (capacity, size, closed, ...) to its resource in
-- snapshots: `obj:_describe(r)` is called with the resource table. Kept weakly.
-- @tparam integer handle the core's resource handle
-- @tparam table obj
function M.describe(handle, obj)
  if math.type(handle) ~= "integer" then arg_error(1, "describe", "resource handle expected") end
  if type(obj) ~= "table" then arg_error(2, "describe", "table expected") end
  described[handle] = obj
end

local function live_resources(joins)
  local list = core.wg_resources(joins)
  for _, r in ipairs(list) do
    local obj = described[r.id]
    if obj ~= nil then obj:_describe(r) end
  end
  return list
end

--- Every tracked resource as `snapshot.resources` has them (docs/internals.md).
-- @treturn table array of resource tables
function M.resources()
  return live_resources(false)
end

-- task id -> {res=, entry=} for every recorded waiter (joins included)
local function waits_of(resources)
  local waits = {}
  for _, r in ipairs(resources) do
    for _, w in ipairs(r.waiters) do waits[w.task] = { res = r, entry = w } end
  end
  return waits
end

local function is_active(report, waits)
  for _, step in ipairs(report.tasks) do
    local w = waits[step.task]
    if w == nil or not w.entry.deadlocked or w.res.id ~= step.resource then return false end
  end
  return true
end

local function copy_report(report, waits)
  return { t = report.t, tasks = report.tasks, text = report.text, active = is_active(report, waits) }
end

--- Deadlocks detected so far (the last 64), as `snapshot.deadlocks` has them; `active`
-- tells whether every task of the cycle still waits in it.
-- @treturn table array of `{t=, tasks=, text=, active=}`
function M.deadlocks()
  local waits = waits_of(core.wg_resources(true))
  local out = {}
  for i, report in ipairs(history) do out[i] = copy_report(report, waits) end
  return out
end

--- Forget the deadlocks detected so far (the resources stay).
function M.clear()
  history = {}
end

-- stuck tasks ---------------------------------------------------------------------------------

local function by_id(tasks)
  local by = {}
  for _, t in ipairs(tasks) do by[t.id] = t end
  return by
end

local function ended(id, by)
  if id == 0 then return false end
  local t = by[id]
  return t == nil or FINISHED[t.state] == true
end

local function finding(kind, severity, t, loc, message, recommendation)
  return { kind = kind, severity = severity, task = t.id, name = t.name, loc = loc,
           message = message, recommendation = recommendation }
end

local function res_text(r)
  if r.kind == "join" then return format("task %s to end (join)", sanitize(r.name or "?")) end
  return format("%s '%s'", r.kind, sanitize(r.name or "?"))
end

local function leaked(t, wait, by)
  for _, h in ipairs(wait.res.holders) do
    if ended(h.task, by) then
      local holder = by[h.task]
      local how = holder and holder.state or "ended (record evicted)"
      local err = holder and holder.error and format(": %s", sanitize(holder.error)) or ""
      return finding("leaked_lock", "error", t, wait.entry.at,
        format("%s waits for %s at %s, held by %s which %s%s without releasing it; it acquired it at %s",
          who(t.id, t.name), res_text(wait.res), sanitize(wait.entry.at or "?"),
          who(h.task, holder and holder.name), how, err, sanitize(h.at or "?")),
        "Release it on every path, errors included: a to-be-closed guard "
          .. "(`local g <close> = m:guard()`) does that.")
    end
  end
  return nil
end

local function others_live(t, tasks)
  for _, o in ipairs(tasks) do
    if o.id ~= t.id and not FINISHED[o.state] then return true end
  end
  return false
end

local function dead_channel(t, wait, tasks, idle)
  local r = wait.res
  local alone = not others_live(t, tasks)
  if not (r.closed or alone or idle) then return nil end
  local verb = wait.entry.mode == "send" and "send on" or "receive from"
  local why = r.closed and "it is closed"
      or alone and "every other task has ended"
      or "no task left can use it: all others have ended or are stuck waiting themselves"
  return finding("dead_channel", "error", t, wait.entry.at,
    format("%s waits to %s channel '%s' at %s: %s", who(t.id, t.name), verb,
      sanitize(r.name or "?"), sanitize(wait.entry.at or "?"), why),
    "Close the channel when its producers are done, and make sure the task meant to "
      .. (wait.entry.mode == "send" and "receive" or "send") .. " is started and does not wait itself.")
end

local function lost_event(t, wait)
  return finding("lost_wakeup", "error", t, wait.entry.at,
    format("%s waits for event '%s' at %s and nothing left will set it (a set before the wait "
      .. "was missed, or cleared before this task looked)", who(t.id, t.name),
      sanitize(wait.res.name or "?"), sanitize(wait.entry.at or "?")),
    "Check the condition under the same event before waiting, and do not clear an event "
      .. "other tasks may still need.")
end

-- why the holders of what t waits for will not let go
local function holders_text(r, by)
  local h = r.holders[1]
  if h then
    local holder = by[h.task]
    return format("held by %s which is stuck itself", who(h.task, holder and holder.name))
  elseif (r.anonymous or 0) > 0 then
    return "held by a task without a record (untracked, sampled out, or while recording was off)"
  end
  return "held by nobody: nothing is left to release it"
end

local function blocked(t, wait, by)
  return finding("blocked", "error", t, wait.entry.at,
    format("%s waits for %s at %s, %s", who(t.id, t.name), res_text(wait.res),
      sanitize(wait.entry.at or "?"), holders_text(wait.res, by)),
    "Fix what it waits for (see the entries of its holders); this task follows.")
end

local function lost_wakeup(t)
  return finding("lost_wakeup", "error", t, t.where,
    format("%s is suspended at %s%s with nothing left that could resume it (a lost wake-up)",
      who(t.id, t.name), sanitize(t.where or "?"),
      t.wait and format(" (waiting for %s)", sanitize(t.wait)) or ""),
    "Whoever was meant to resume it already ran or failed: register the waiter before "
      .. "the event can happen, or wait on an ai.sync primitive that keeps the wake-up.")
end

-- the classification of one suspended task; nil when it is not (certainly) stuck
local function classify(t, waits, by, tasks, idle)
  local wait = waits[t.id]
  if wait == nil then return idle and lost_wakeup(t) or nil end
  if wait.entry.deadlocked then
    return finding("deadlock", "error", t, wait.entry.at,
      format("%s is deadlocked: it waits for %s at %s in a cycle (see the deadlock report)",
        who(t.id, t.name), res_text(wait.res), sanitize(wait.entry.at or "?")),
      "Acquire locks in one global order, or do not hold one while waiting for another.")
  end
  local f = leaked(t, wait, by)
  if f then return f end
  if wait.res.kind == "channel" then return dead_channel(t, wait, tasks, idle) end
  if not idle then return nil end
  if wait.res.kind == "event" then return lost_event(t, wait) end
  return blocked(t, wait, by)
end

local function in_scope(opts, id)
  return opts.tasks == nil or opts.tasks[id] == true
end

--- Classify the suspended tasks that can never continue.
-- Without `idle`, only what is certain at any time: deadlocked tasks, tasks waiting for
-- a resource whose holder ended without releasing it, tasks waiting on a channel when
-- every other task has ended. With `idle = true` (the scheduler ran out of work, so no
-- suspended task will be resumed by it) every suspended task is classified: also
-- channels nobody can use any more, events nothing will set, lost wake-ups, and tasks
-- blocked behind stuck ones.
-- @tparam[opt] table opts `{idle=bool, tasks={[id]=true,...} (only these), snapshot=snap}`
-- @treturn table array of findings `{kind=, severity=, task=, name=, loc=, message=, recommendation=}`
-- with kind `deadlock`, `leaked_lock`, `dead_channel`, `lost_wakeup` or `blocked`
-- @usage for _, f in ipairs(deadlock.stuck{idle = true}) do print(f.message) end
function M.stuck(opts)
  if opts ~= nil and type(opts) ~= "table" then
    arg_error(1, "stuck", format("table expected, got %s", type(opts)))
  end
  opts = opts or {}
  local tasks = opts.snapshot and opts.snapshot.tasks or core.tasks()
  local by = by_id(tasks)
  local waits = waits_of(live_resources(true))
  local out = {}
  for _, t in ipairs(tasks) do
    if t.state == "suspended" and in_scope(opts, t.id) then
      out[#out + 1] = classify(t, waits, by, tasks, opts.idle == true)
    end
  end
  return out
end

--- The text of a list of stuck-task findings.
-- @tparam table findings from `stuck`
-- @treturn string
function M.stuck_text(findings)
  if type(findings) ~= "table" then arg_error(1, "stuck_text", "table expected") end
  local lines = { format("stuck: %d task%s can never continue", #findings, #findings == 1 and "" or "s") }
  for _, f in ipairs(findings) do lines[#lines + 1] = "  " .. f.message end
  return concat(lines, "\n")
end

--- The scheduler ran out of work with tasks still suspended: classify them (as
-- `stuck{idle=true}`), print the result to stderr unless the policy is `ignore`, and
-- return the findings. Schedulers call this when their loop ends.
-- @tparam[opt] table opts as for `stuck` (`idle` is implied)
-- @treturn table findings
function M.on_idle(opts)
  if opts ~= nil and type(opts) ~= "table" then
    arg_error(1, "on_idle", format("table expected, got %s", type(opts)))
  end
  local o = { idle = true }
  for k, v in pairs(opts or {}) do o[k] = v end
  local findings = M.stuck(o)
  if #findings > 0 and policy() ~= "ignore" then
    io.stderr:write("async_inspect: ", M.stuck_text(findings), "\n")
  end
  return findings
end

-- integration -----------------------------------------------------------------------------

local function provider(snap)
  local all = live_resources(true)
  local waits = waits_of(all)
  local list = {}
  for _, r in ipairs(all) do
    if r.kind ~= "join" then list[#list + 1] = r end
  end
  snap.resources = list
  local cycles = {}
  for i, report in ipairs(history) do cycles[i] = copy_report(report, waits) end
  snap.deadlocks = cycles
end

-- one line naming every task and resource of a cycle (the full report is in
-- snapshot.deadlocks and was printed when it formed, under the "report" policy)
local function summary(report)
  local parts = {}
  for _, step in ipairs(report.tasks) do
    parts[#parts + 1] = format("%s waits for %s at %s", who(step.task, step.name), what(step),
      sanitize(step.at or "?"))
  end
  return format("deadlock of %d task%s (formed at t=%s): %s", #report.tasks,
    #report.tasks == 1 and "" or "s", util.timestamp(report.t), concat(parts, "; "))
end

-- deadlocks still in force, then what is stuck (all of it when snap.idle)
local function diagnoser(snap)
  local findings = M.stuck{ idle = snap.idle == true, snapshot = snap }
  local out = {}
  local waits = waits_of(core.wg_resources(true))
  for _, report in ipairs(history) do
    if is_active(report, waits) then
      local first = report.tasks[1]
      out[#out + 1] = { kind = "deadlock", severity = "error", task = first.task, name = first.name,
        loc = first.at, message = summary(report),
        recommendation = "Acquire locks in one global order, or do not hold one while waiting "
          .. "for another (and never join a task that waits for you)." }
    end
  end
  for _, f in ipairs(findings) do
    if f.kind ~= "deadlock" then out[#out + 1] = f end
  end
  return out
end

local function register(list, fn)
  if type(list) ~= "table" then return end
  for _, f in ipairs(list) do
    if f == fn then return end
  end
  list[#list + 1] = fn
end

register(ai._snapshot_providers, provider)
register(ai._diagnosers, diagnoser)

return M

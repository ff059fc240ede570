--- async_inspect: X-ray vision for asynchronous Lua.
--
-- `require "async_inspect"` replaces `coroutine.create`, `wrap`, `resume` and
-- `close` with C functions that behave exactly like Lua's own and record every
-- coroutine as a task: its state, where it is suspended, how long it ran, and
-- a timeline of its resumes and yields. See docs/api.md for the whole API and
-- docs/internals.md for the records it returns.
--
-- @module async_inspect
-- @usage
-- local ai = require "async_inspect"
-- local co = coroutine.create(function() coroutine.yield() end):inspect("worker")
-- coroutine.resume(co)
-- print(ai.report.summary())

local core = require "async_inspect.core"
local config = require "async_inspect.config"

local M = {}

M._VERSION = "0.1.0"
M.core = core

local original = {}          -- the coroutine functions we replaced
for _, name in ipairs({ "create", "wrap", "resume", "close" }) do
  original[name] = coroutine[name]
end
M.original = original

local installed = false
local user_disabled = false  -- ai.disable() was called
local lua_settings = config.defaults()

local function arg_error(n, fname, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), (level or 1) + 2)
end

local function expect(n, fname, value, want, optional)
  local got = type(value)
  if got == want or (optional and value == nil) then return value end
  arg_error(n, fname, ("%s expected, got %s"):format(want, value == nil and "no value" or got), 2)
end

-- thread metatable: co:inspect("name") on every coroutine ---------------------

local thread_mt_saved, thread_mt_ours

local function inspect_method(co, name)
  if type(co) ~= "thread" then
    arg_error(1, "inspect", ("coroutine expected, got %s"):format(type(co)))
  end
  expect(2, "inspect", name, "string")
  core.name(co, name)
  return co
end

local function install_thread_methods()
  local mt = debug.getmetatable(coroutine.running())
  thread_mt_saved = mt
  if mt == nil then
    thread_mt_ours = { __index = { inspect = inspect_method } }
    debug.setmetatable(coroutine.running(), thread_mt_ours)
  elseif type(mt.__index) == "table" and mt.__index.inspect == nil then
    mt.__index.inspect = inspect_method
  end
end

local function uninstall_thread_methods()
  local mt = debug.getmetatable(coroutine.running())
  if mt ~= nil and mt == thread_mt_ours then
    debug.setmetatable(coroutine.running(), thread_mt_saved)
  elseif mt ~= nil and type(mt.__index) == "table" and mt.__index.inspect == inspect_method then
    mt.__index.inspect = nil
  end
  thread_mt_ours = nil
end

--- Install the hooks on `coroutine.*` and start recording.
-- Done by `require` unless `ASYNC_INSPECT=0`; calling it again is harmless.
-- @usage ai.uninstall(); ai.install()
function M.install()
  if installed then return M end
  -- replacing the library's functions is the point of the module
  for name, fn in pairs(core.hooks) do coroutine[name] = fn end -- luacheck: ignore 122
  install_thread_methods()
  installed = true
  core.enable(not user_disabled)
  return M
end

--- Restore the original coroutine functions exactly and stop recording.
-- Records stay readable. Coroutines suspended meanwhile keep working.
-- @usage ai.uninstall(); assert(coroutine.resume == ai.original.resume)
function M.uninstall()
  if not installed then return M end
  for name, fn in pairs(original) do coroutine[name] = fn end -- luacheck: ignore 122
  uninstall_thread_methods()
  installed = false
  core.enable(false)
  return M
end

--- Are the hooks installed?
-- @treturn boolean
function M.is_installed() return installed end

--- Pause recording; the hooks stay, at the cost of one branch per call.
-- @usage ai.disable(); hot_loop(); ai.enable()
function M.disable()
  user_disabled = true
  core.enable(false)
end

--- Resume recording after `disable`.
function M.enable()
  user_disabled = false
  if installed then core.enable(true) end
end

--- Is recording on?
-- @treturn boolean
function M.is_enabled() return core.enabled() end

--- Apply settings (see docs/configuration.md).
-- Keys: `max_tasks`, `ring_capacity`, `locations`, `tracebacks`, `sample`,
-- `long_poll_ms`, `creation_traces`, `preset` ("production" or "default"),
-- `unjoined_errors` ("warn", "raise", "ignore"), `deadlock` ("report", "error",
-- "ignore"), `seed`.
-- @tparam table opts
-- @usage ai.configure{ max_tasks = 10000, sample = 0.1 }
function M.configure(opts)
  expect(1, "configure", opts, "table")
  local c_opts, lua_opts = config.split(opts, 2)
  core.configure(c_opts)
  for k, v in pairs(lua_opts) do lua_settings[k] = v end
  return M
end

--- The settings in force (C and Lua side).
-- @treturn table
function M.settings()
  local s = core.settings()
  for k, v in pairs(lua_settings) do s[k] = v end
  return s
end

-- names, points, blocks --------------------------------------------------------

--- Name a task.
-- @param co a coroutine or a task id
-- @tparam string name
-- @return the coroutine (or id) given
-- @usage ai.name(coroutine.running(), "fetch")
function M.name(co, name)
  if type(co) ~= "thread" and math.type(co) ~= "integer" then
    arg_error(1, "name", ("coroutine or task id expected, got %s"):format(type(co)))
  end
  expect(2, "name", name, "string")
  core.name(co, name)
  return co
end

--- Mark an inspection point in the current task.
-- @tparam string label
-- @tparam[opt] string detail
-- @usage ai.point("parsed", ("%d rows"):format(n))
function M.point(label, detail)
  expect(1, "point", label, "string")
  if detail ~= nil and type(detail) ~= "string" then
    arg_error(2, "point", ("string expected, got %s"):format(type(detail)))
  end
  core.point(label, detail)
end

--- Name the next await (yield) of the current task.
-- @tparam string label
-- @tparam[opt] integer level the caller level whose line to record (0: the yield)
-- @usage ai.await_point("waiting for reply"); coroutine.yield()
function M.await_point(label, level)
  expect(1, "await_point", label, "string")
  if level ~= nil and math.type(level) ~= "integer" then
    arg_error(2, "await_point", ("integer expected, got %s"):format(type(level)))
  end
  core.await_point(label, level and level + 1 or 0)
end

local Guard = {}
Guard.__index = Guard

local function finish_guard(g, how, err)
  if g.done then return false end
  g.done = true
  if g.id == nil then return false end
  return core.finish(g.id, how, err)
end

--- Complete this block task. @treturn boolean
function Guard:complete() return finish_guard(self, "completed") end
--- Fail this block task with an error. @treturn boolean
function Guard:fail(err) return finish_guard(self, "failed", err) end

Guard.__close = function(g, err)
  if err ~= nil then finish_guard(g, "failed", err) else finish_guard(g, "completed") end
end
Guard.__name = "async_inspect.task"

--- Track a block of code as a task, ended when the guard is closed.
-- @tparam string name
-- @return a to-be-closed guard with `:complete()`, `:fail(err)`, `.id`
-- @usage do local _ <close> = ai.task("load config") ... end
function M.task(name)
  expect(1, "task", name, "string")
  return setmetatable({ id = core.block_open(name, 2), name = name }, Guard)
end

--- Complete the current task (innermost open `ai.task` block, else the
-- current coroutine's task).
-- @treturn boolean true if a task was ended
function M.complete()
  local id = core.current()
  return id ~= nil and core.finish(id, "completed") or false
end

--- Fail the current task with `err` (see `complete`).
-- @param err the error (any value; recorded as text without metamethods)
-- @treturn boolean
function M.fail(err)
  local id = core.current()
  return id ~= nil and core.finish(id, "failed", err) or false
end

--- Id of the current task, or nil on the main thread outside any block.
-- @treturn integer|nil
function M.current() return core.current() end

-- queries ------------------------------------------------------------------------

local function task_matches(t, f)
  if f.state and t.state ~= f.state then return false end
  if f.name and not tostring(t.name):find(f.name) then return false end
  if f.parent and t.parent ~= f.parent then return false end
  if f.active ~= nil then
    local active = t.state == "pending" or t.state == "running"
        or t.state == "suspended" or t.state == "normal"
    if active ~= f.active then return false end
  end
  return true
end

--- All tracked tasks, as plain tables (docs/internals.md), by id.
-- @tparam[opt] table filter `{state=, name=pattern, parent=id, active=bool}`
-- @treturn table array of task records
-- @usage for _, t in ipairs(ai.tasks{state = "suspended"}) do print(t.name, t.where) end
function M.tasks(filter)
  if filter == nil then return core.tasks() end
  expect(1, "tasks", filter, "table")
  local out = {}
  for _, t in ipairs(core.tasks(filter.state)) do
    if task_matches(t, filter) then out[#out + 1] = t end
  end
  return out
end

--- One task's record.
-- @param co_or_id a coroutine or a task id
-- @treturn table|nil
function M.task_info(co_or_id)
  if type(co_or_id) ~= "thread" and math.type(co_or_id) ~= "integer" then
    arg_error(1, "task_info", ("coroutine or task id expected, got %s"):format(type(co_or_id)))
  end
  return core.task(co_or_id)
end

--- Stream events: `for seq, t, task, kind, loc, other, detail in ai.iter_events() do`.
-- @tparam[opt] integer from_seq
function M.iter_events(from_seq)
  if from_seq ~= nil and math.type(from_seq) ~= "integer" then
    arg_error(1, "iter_events", ("integer expected, got %s"):format(type(from_seq)))
  end
  return core.iter_events(from_seq)
end

--- Events as tables `{seq=, t=, task=, kind=, loc=, other=, detail=}`.
-- @tparam[opt] table filter `{task=id, kind=string, since=ns, from_seq=n, limit=n}`
-- @treturn table
-- @usage for _, e in ipairs(ai.events{task = id}) do print(e.kind, e.loc) end
function M.events(filter)
  if filter ~= nil then expect(1, "events", filter, "table") end
  filter = filter or {}
  local out, limit = {}, filter.limit or math.huge
  for seq, t, task, kind, loc, other, detail in core.iter_events(filter.from_seq) do
    if (filter.task == nil or filter.task == task) and (filter.kind == nil or filter.kind == kind)
        and (filter.since == nil or t >= filter.since) then
      out[#out + 1] = { seq = seq, t = t, task = task, kind = kind, loc = loc,
                        other = other, detail = detail }
      if #out >= limit then break end
    end
  end
  return out
end

--- Counters: tasks, active, running, suspended, completed, failed, ...
-- @treturn table
function M.stats() return core.stats() end

--- Nanoseconds since tracking started (or the last reset).
-- @treturn integer
function M.now() return core.now() end

--- Forget every task and event; the clock restarts. Deadlock history goes too.
function M.reset()
  core.reset()
  local deadlock = package.loaded["async_inspect.deadlock"]
  if deadlock and deadlock.clear then deadlock.clear() end
end

--- A snapshot for views and exports (docs/internals.md).
-- @tparam[opt] table opts `{events=true}` to include the events
-- @treturn table
function M.snapshot(opts)
  if opts ~= nil then expect(1, "snapshot", opts, "table") end
  local snap = { t = core.now(), stats = core.stats(), tasks = core.tasks() }
  if opts and opts.events then snap.events = M.events() end
  for _, provider in ipairs(M._snapshot_providers) do provider(snap, opts or {}) end
  return snap
end

-- other modules add parts of snapshots (resources, warnings, ...)
M._snapshot_providers = {}

-- other modules add diagnosers: function(snap) -> array of findings
M._diagnosers = {}

local SEVERITY_RANK = { error = 1, warn = 2, info = 3 }

-- modules whose diagnosers always take part in ai.diagnose(); the others
-- (luv, sync) register theirs when a program uses them
local DIAGNOSTIC_MODULES = { "async_inspect.profile" }

--- Everything that needs a person's attention: stuck and deadlocked tasks,
-- leaked locks, failures nobody looked at, long polls and other lints.
-- Runs every registered diagnoser over one snapshot.
-- @tparam[opt] table snap a snapshot (default: a fresh one with events)
-- @treturn table array of findings `{kind=, severity=, task=, name=, loc=, message=, recommendation=}`,
-- errors first
-- @usage for _, f in ipairs(ai.diagnose()) do print(f.severity, f.message) end
function M.diagnose(snap)
  if snap ~= nil then expect(1, "diagnose", snap, "table") end
  for _, name in ipairs(DIAGNOSTIC_MODULES) do require(name) end
  snap = snap or M.snapshot{ events = true }
  local findings = {}
  for _, diagnoser in ipairs(M._diagnosers) do
    for _, f in ipairs(diagnoser(snap) or {}) do findings[#findings + 1] = f end
  end
  table.sort(findings, function(a, b)
    local ra, rb = SEVERITY_RANK[a.severity] or 9, SEVERITY_RANK[b.severity] or 9
    if ra ~= rb then return ra < rb end
    return (a.task or 0) < (b.task or 0)
  end)
  return findings
end

-- where every task is and why (async_inspect.where) --------------------------------

local where = require "async_inspect.where"

--- Where each suspended task waits: traceback, await label, what it waits
-- for, for how long, and its spawn chain. See async_inspect.where.
-- @function where
M.where = where.where
--- The goroutine-style dump of every live task, longest waits first,
-- identical stacks folded. @function dump
M.dump = where.dump
--- Print `dump()` to stdout. @function print_dump
M.print_dump = where.print_dump
--- A task's await points (its states) with counts and times. @function states
M.states = where.states
--- Locals and upvalues of a suspended task's frames, rendered safely. @function locals
M.locals = where.locals
--- Print the task tree. @function tree
M.tree = where.tree

-- resources and deadlocks (async_inspect.resource, async_inspect.deadlock) -----------

--- A tracked resource for another library's lock: `ai.resource(name, kind)`
-- with `:waiting()`, `:acquired()`, `:released()`. See docs/deadlocks.md.
-- @usage local r = ai.resource("db pool", "semaphore"); r:waiting(); ...; r:acquired()
function M.resource(...)
  return require("async_inspect.resource")(...)
end

--- Call `fn(report)` each time a deadlock forms; returns a function that removes it.
-- @tparam function fn
-- @usage ai.on_deadlock(function(d) log(d.text) end)
function M.on_deadlock(fn)
  return require("async_inspect.deadlock").on_deadlock(fn)
end

-- remote console and recording (async_inspect.remote, async_inspect.record) ---------

--- Serve snapshots and the live event stream over TCP (newline-delimited JSON,
-- docs/dashboard.md). Loopback unless `allow_remote = true`; optional `token`.
-- @tparam table opts `{host="127.0.0.1", port=0, token=nil, allow_remote=false}`
-- @return the server, with `.port`, `:stats()`, `:close()`
-- @usage local server = ai.serve{ port = 7070 }
function M.serve(opts)
  return require("async_inspect.remote").serve(opts)
end

--- Write the event stream to a file as it happens (bounded buffering,
-- flushed at exit); replay it with `async-inspect replay FILE`.
-- @tparam string path
-- @tparam[opt] table opts
-- @return the recorder, with `:flush()` and `:stop()`
-- @usage local rec <close> = ai.record("run.aiq")
function M.record(path, opts)
  return require("async_inspect.record").record(path, opts)
end

-- submodules, loaded on first use ---------------------------------------------------

local lazy = {
  report = "async_inspect.reporter",
  export = "async_inspect.export",
  sync = "async_inspect.sync",
  profile = "async_inspect.profile",
  tui = "async_inspect.tui",
}

setmetatable(M, {
  __index = function(t, k)
    local modname = lazy[k]
    if modname == nil then return nil end
    local mod = require(modname)
    rawset(t, k, mod)
    return mod
  end,
})

-- start ------------------------------------------------------------------------------

package.loaded["async_inspect"] = M
local env = config.from_env(os.getenv)
if env.c then core.configure(env.c) end
for k, v in pairs(env.lua or {}) do lua_settings[k] = v end
if env.enabled then M.install() else core.enable(false) end

return M

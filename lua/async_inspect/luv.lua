--- Tracked tasks over libuv (luv): spawn, await timers and I/O, join, run.
--
-- A small scheduler on the luv event loop. Its tasks are ordinary coroutines,
-- so the C hooks track them like any other; on top of that every wait is an
-- await point labelled with what it waits for and located at the caller's
-- line, every wake records which kind of luv callback caused it, failures go
-- to whoever joins the task, and an error nobody joins is reported instead of
-- lost. Code written in the usual luv style (`coroutine.running()`, a
-- callback that resumes it, `coroutine.yield()`) needs no change.
-- See docs/luv.md for the guide.
--
-- @module async_inspect.luv
-- @usage
-- local aio = require "async_inspect.luv"
-- print(aio.run(function()
--   local h = aio.spawn("answer", function() aio.sleep(10); return 42 end)
--   return h:join()
-- end)) --> 42

local ai = require "async_inspect"

-- luv is needed from here on, but never by `require "async_inspect"` itself
local function load_luv()
  local ok, uv = pcall(require, "luv")
  if ok and type(uv) == "table" then return uv end
  error("async_inspect.luv: luv (libuv bindings for Lua) could not be loaded; install it "
    .. "(Debian: apt install lua-luv, LuaRocks: luarocks install luv)\n" .. tostring(uv), 0)
end
local uv = load_luv()

local core = ai.core
-- tasks are created with Lua's own create: core.spawned tracks them, located once
local co_create, co_close = ai.original.create, core.hooks.close
local co_running, co_status = coroutine.running, coroutine.status
local core_now, core_track = core.now, core.track
local pack, unpack, select, type, setmetatable = table.pack, table.unpack, select, type, setmetatable
local format = string.format

-- The scheduler's bindings of the core (module.c).
-- spawned: the creation site of a task is the user's line, not ours.
-- pin: texts used over and over become ids (no hashing, never freed)
local core_spawned, core_pin = core.spawned, core.pin
-- The hot path of the scheduler is in C (csrc/sched.c): the ready queue and each
-- task's scheduling state (generations, the pending wake, done/started). A task is
-- one userdata, which is also its handle: its metatable serves the fields this file
-- uses (`rec.title`, `rec.joiners`, ...), a few from the C state, the rest from a
-- table made on first use. This file keeps the slow paths, which the C side calls
-- back.
local s_new, s_spawn, s_adopt = core.sched_new, core.sched_spawn, core.sched_adopt
local s_enqueue, s_run = core.sched_enqueue, core.sched_run
local s_suspend, s_drain = core.sched_suspend, core.sched_drain
local s_info, s_set, s_queued = core.sched_info, core.sched_set, core.sched_queued
local s_done, s_bump = core.sched_done, core.sched_bump
local s_completed, s_results = core.sched_completed, core.sched_results

local M = { uv = uv }

local DRAIN_BUDGET = 4096      -- resumes per pass over the ready queue before I/O gets a turn
local SLOW_KEEP = 100          -- slow callbacks remembered
local UNJOINED_KEEP = 1000     -- unjoined failures remembered until reported
local RAW_SCAN_EVERY = 5e6     -- ns between scans when many tasks yield outside the helpers
local SETTINGS_EVERY = 1e8     -- ns between re-reads of ai.settings()

local MAIN_THREAD = debug.getregistry()[1] -- LUA_RIDX_MAINTHREAD

-- module state that outlives calls; coroutines only ever as weak keys
local recs = setmetatable({}, { __mode = "k" })    -- coroutine -> its record
local raw_set = setmetatable({}, { __mode = "k" }) -- records suspended outside our helpers
local streams = setmetatable({}, { __mode = "k" }) -- stream handle -> read state
local state = {
  slow_ns = 10e6, policy = "warn", settings_at = -math.huge,
  slow = {}, slow_total = 0,
  unjoined = {}, unjoined_dropped = 0,
  run_main = nil,        -- the task of the innermost aio.run
  raw_scan_at = 0, raw_count = 0,
  signals = {},          -- signal name -> handle installed by dump_on_signal
}

-- texts as pinned ids (labels, kinds, waits): constant ones always, others
-- while there is room, so the number of texts kept for good stays bounded
local PIN_LIMIT = 4096
local pin_count = 0
local pin_ids = {} -- text -> id
local pin_texts = {} -- id -> text

local function pin(text)
  local id = pin_ids[text]
  if id ~= nil then return id end
  if pin_count >= PIN_LIMIT then return text end
  pin_count = pin_count + 1
  id = core_pin(text)
  pin_ids[text], pin_texts[id] = id, text
  return id
end

-- helpers ----------------------------------------------------------------------

-- identity: calling through it keeps the caller's frame (no tail call)
local function values(...) return ... end

local function typename(v)
  return v == nil and "no value" or type(v)
end

local function arg_error(n, fname, msg)
  error(format("bad argument #%d to '%s' (%s)", n, fname, msg), 3)
end

local function refresh_settings()
  local s = ai.settings()
  state.slow_ns = math.floor((s.slow_callback_ms or 10) * 1e6)
  state.policy = s.unjoined_errors or "warn"
  state.settings_at = core_now()
end

-- an error object as text, never letting a metamethod raise
local function error_text(err)
  if type(err) == "string" then return err end
  if type(err) == "number" or type(err) == "boolean" or err == nil then return tostring(err) end
  local ok, s = pcall(tostring, err)
  if ok and type(s) == "string" then return s end
  return format("(error object is a %s value)", type(err))
end

-- a luv handle (timer, tcp, pipe, process, ...), not a request or a work context
local function is_handle(v)
  if type(v) ~= "userdata" then return false end
  local mt = getmetatable(v)
  local methods = type(mt) == "table" and mt.__index
  return type(methods) == "table" and methods.is_closing ~= nil and methods.get_type ~= nil
end

local function is_req(v)
  local mt = type(v) == "userdata" and getmetatable(v)
  return type(mt) == "table" and mt.__name == "uv_req"
end

local function close_handle(h)
  if is_handle(h) and not h:is_closing() then h:close() end
end

-- an undo (rec, arg) that closes the handle arg
local function undo_close(_, h) close_handle(h) end

-- "task 'name' (#3)", "task #3" or "task 'name'"
local function describe(rec)
  if rec.title and rec.tid then return format("task '%s' (#%d)", rec.title, rec.tid) end
  if rec.tid then return format("task #%d", rec.tid) end
  if rec.title then return format("task '%s'", rec.title) end
  return "an untracked task"
end

-- the core's record of a task (a fresh table; for reports only)
local function info_of(rec)
  if rec.tid then return core.task(rec.tid) end
  return nil
end

-- the task handle: the record itself (a C task state), with methods ------------------------------

--- A handle on a task started by `spawn`.
-- Methods: `join`, `cancel`, `status`, `id`, `name`, `result`. A handle is the task itself
-- (one object per task); a program may keep fields of its own on it, which never hide a
-- method. The scheduler's own fields (`co`, `title`, `tid`, `done`) are read-only.
-- @type Task
-- @usage local h = aio.spawn("fetch", fetch, url); h.request_id = 42
local Task = {}
-- Task has no __metatable field, so the raw metatable is what getmetatable
-- returns; reading it raw skips getmetatable's lookup of "__metatable"
-- (a third of a spawn + join's cost in luv's own calls)
local raw_getmetatable = (debug and debug.getmetatable) or getmetatable
local function is_task(v) return raw_getmetatable(v) == Task end
-- fields: co, title, tid, done, observed from the C state (read-only but
-- observed), any other in a table of the task's own; methods come first
Task.__index, Task.__newindex = core.sched_fields(Task)
Task.__name = "async_inspect.luv.task"
Task.__tostring = function(rec) return describe(rec) end

local function check_handle(self, fname)
  if not is_task(self) then
    error(format("bad argument #1 to '%s' (task handle expected, got %s)", fname, typename(self)), 3)
  end
end

-- the ready queue: tasks with a resume scheduled on the loop ----------------------
-- The queue and what to resume each task with live in C (sched.c): one pending
-- wake per task, the first one wins (a later one would be void anyway, see
-- sched_run). Scheduling a resume allocates nothing.

local S = nil      -- the scheduler (sched.c), made once its slow paths are defined
local idle = nil   -- a uv idle handle while the queue is not empty, closed when it is

local note_slow  -- defined below

local function drain()
  -- the pass is one luv callback: timed as a whole (the span of its resumes,
  -- which the core timed already), never each resume
  local taken, empty, ran, t0 = s_drain(S, DRAIN_BUDGET)
  if empty then  -- no handle of ours stays open
    idle:close()
    idle = nil
  end
  if ran > state.slow_ns then note_slow(nil, "ready queue", ran, t0, taken) end
end

-- the C side calls this when the queue gets its first entry
local function start_idle()
  idle = uv.new_idle()
  idle:start(drain)
end

-- the scheduler's gen of rec: how many resumes of ours it had (see sched_run)
local function gen_of(rec)
  return (s_info(rec))
end

-- rec has an undo for its wait: rec.undo, undo_arg (and wait_handle) are
-- cleared at its next resume, as long as rec.undo is set then
local function set_undo(rec, undo, arg)
  rec.undo, rec.undo_arg = undo, arg
  s_set(rec, "undo")
end

-- what rec waits for (a text, for reports), set by the helper it waits in
local function wait_of(rec)
  local _, _, wait = s_info(rec)
  return wait
end

-- has rec had its first resume? (adopted coroutines count as started)
local function started(rec)
  local _, _, _, yes = s_info(rec)
  return yes
end

-- slow callbacks -------------------------------------------------------------------

-- rec: the task the callback resumed (nil: several); resumes: how many
function note_slow(rec, kind, ran, t0, resumes)
  local info = rec and info_of(rec)
  state.slow_total = state.slow_total + 1
  state.slow[(state.slow_total - 1) % SLOW_KEEP + 1] = {
    kind = pin_texts[kind] or kind, duration = ran, task = rec and rec.tid, t = t0, resumes = resumes,
    at = info and (info.where or info.created_at) or nil,
  }
end

--- The luv callbacks that ran longer than `ai.settings().slow_callback_ms`, oldest first.
-- The last 100 are kept; each is `{kind=, duration=ns, task=id|nil, at="source:line"|nil, t=ns}`
-- (`at`: where the task stopped: its next yield). A pass over the ready queue (spawns, joins,
-- wakes) counts as one callback of kind `"ready queue"`, with `resumes` = how many it ran.
-- Snapshots carry them as `slow_callbacks`.
-- @treturn table array
-- @usage for _, s in ipairs(aio.slow_callbacks()) do print(s.kind, s.duration) end
function M.slow_callbacks()
  local out, total = {}, state.slow_total
  for i = math.max(1, total - SLOW_KEEP + 1), total do
    local s = state.slow[(i - 1) % SLOW_KEEP + 1]
    out[#out + 1] = { kind = s.kind, duration = s.duration, task = s.task, at = s.at, t = s.t,
                      resumes = s.resumes }
  end
  return out
end

--- Wrap a callback of your own so that a run longer than `slow_callback_ms` is recorded
-- (as `aio.slow_callbacks()` and snapshots show).
-- @tparam string kind what the callback is for (`"timer"`, `"http"`, ...)
-- @tparam function fn the callback
-- @treturn function the measured callback, same arguments and results
-- @usage timer:start(100, 100, aio.callback("tick", on_tick))
function M.callback(kind, fn)
  if type(kind) ~= "string" then arg_error(1, "callback", "string expected, got " .. typename(kind)) end
  if type(fn) ~= "function" then arg_error(2, "callback", "function expected, got " .. typename(fn)) end
  local function finish(t0, ...)
    local ran = core_now() - t0
    if ran > state.slow_ns then
      state.slow_total = state.slow_total + 1
      state.slow[(state.slow_total - 1) % SLOW_KEEP + 1] = {
        kind = kind, duration = ran, task = core.current(), t = t0 }
    end
    return ...
  end
  return function(...) return finish(core_now(), fn(...)) end
end

-- unjoined failures -------------------------------------------------------------------

local function note_unjoined(rec, text, traceback)
  local list = state.unjoined
  if #list >= UNJOINED_KEEP then
    state.unjoined_dropped = state.unjoined_dropped + 1
    return
  end
  local entry = { task = rec.tid, name = rec.title, error = text, traceback = traceback,
                  what = describe(rec), t = core_now() }
  list[#list + 1] = entry
  rec.unjoined = entry
end

local function observed(rec)
  rec.observed = true
  if rec.unjoined then rec.unjoined.observed = true end
end

local function unjoined_text(list)
  local lines = {}
  for _, e in ipairs(list) do
    lines[#lines + 1] = format("async_inspect.luv: %s failed and nobody joined it: %s", e.what, e.error)
    if e.traceback then lines[#lines + 1] = "  " .. e.traceback:gsub("\n", "\n  ") end
  end
  if state.unjoined_dropped > 0 then
    lines[#lines + 1] = format("async_inspect.luv: %d more unjoined failures not kept",
      state.unjoined_dropped)
  end
  return table.concat(lines, "\n") .. "\n"
end

-- the unjoined failures nobody has seen yet; they count as reported afterwards
local function take_unjoined()
  local out = {}
  for _, e in ipairs(state.unjoined) do
    if not e.observed then out[#out + 1] = e end
  end
  state.unjoined = {}
  return out
end

--- Apply the `unjoined_errors` policy now to failures nobody joined: "warn" (default)
-- prints them to stderr, "raise" raises one error listing them, "ignore" drops them.
-- `run` does this when the loop ends; tasks joined later no longer count.
-- @treturn table the failures reported, `{task=id, name=, error=text, traceback=}` each
-- @usage aio.check_unjoined()
function M.check_unjoined()
  refresh_settings()
  local list = take_unjoined()
  if #list == 0 or state.policy == "ignore" then
    state.unjoined_dropped = 0
    return list
  end
  local text = unjoined_text(list)
  state.unjoined_dropped = 0
  if state.policy == "raise" then error(text, 2) end
  io.stderr:write(text)
  return list
end

-- at the close of the Lua state, failures nobody joined are still worth a word
state.exit_guard = setmetatable({}, { __gc = function()
  if state.policy == "ignore" then return end
  local list = take_unjoined()
  if #list > 0 then pcall(io.stderr.write, io.stderr, unjoined_text(list)) end
end })

-- task life ---------------------------------------------------------------------------

-- the wait of rec ended: what it was waiting on no longer needs undoing (the
-- core's `wait` is cleared at a resume of ours; a cancelled task keeps it)
local function clear_wait(rec)
  rec.undo, rec.undo_arg, rec.wait_handle = nil, nil, nil
  s_set(rec, "nowait")
end

-- does rec wait in a helper of ours (rather than having yielded on its own)?
-- (see sched_run)
local function in_helper(rec)
  local _, waits = s_info(rec)
  return waits
end

local function raw_remove(rec)
  rec.raw = nil
  raw_set[rec] = nil
end

local K_JOIN, K_WAKE = pin("join"), pin("wake")

-- rec ended: wake whoever joins it
local function finished(rec)
  if rec.raw then raw_remove(rec) end
  local joiners = rec.joiners
  if joiners then
    rec.joiners = nil
    for i = 1, #joiners, 2 do s_enqueue(joiners[i], joiners[i + 1], K_JOIN, 0) end
  end
end

-- runs inside the task, so completion is seen even when the last resume was
-- not ours (luv-style code resuming the coroutine from its own callback)
local function completed(rec, ...)
  -- no resume of ours any more; the results are kept in C. more: rec has other
  -- fields (joiners, raw, ...), else there is nothing to look at
  local more = s_done(rec, "completed", ...)
  if more and (rec.joiners or rec.raw) then finished(rec) end
  return ...
end

local function task_main(rec, fn, ...)
  return completed(rec, fn(...))
end

local function task_failed(rec, text, err, traceback)
  s_done(rec, "failed")
  rec.err = err
  rec.traceback = traceback
  co_close(rec.co) -- close its to-be-closed variables, as coroutine.wrap would
  if (rec.joiners == nil or #rec.joiners == 0) and not rec.observed then
    note_unjoined(rec, text, traceback)
  end
  finished(rec)
  if rec == state.run_main then uv.stop() end
end

local failed_elsewhere -- defined below

-- a resume of ours returned an error
local function resume_failed(rec, err)
  local co = rec.co
  if co_status(co) ~= "dead" then return end -- it was not suspended: nothing ran
  if err == "cannot resume dead coroutine" and not rec.adopted then
    return failed_elsewhere(rec) -- it had died already, in a resume that was not ours
  end
  local text = error_text(err)
  local traceback = debug.traceback(co, text)
  if rec.adopted then  -- a plain coroutine woken by a helper: nobody else will see this
    s_done(rec, "failed")
    note_unjoined(rec, text, traceback)
  else
    task_failed(rec, text, err, traceback)
  end
end

-- a task that failed inside a resume that was not ours: the error object went
-- to that resumer, the core kept its text and traceback
function failed_elsewhere(rec)
  local info = info_of(rec)
  local text = info and info.error or "failed (its error went to the code that resumed it)"
  local traceback = info and info.traceback or debug.traceback(rec.co, text)
  task_failed(rec, text, text, traceback)
end

local checker = nil -- a uv check handle while tasks are suspended outside our helpers

local function scan_raw()
  local count = 0
  for rec in pairs(raw_set) do
    if rec.done or in_helper(rec) then
      raw_remove(rec)
    elseif co_status(rec.co) == "dead" then
      raw_remove(rec)
      failed_elsewhere(rec)
    else
      count = count + 1
    end
  end
  state.raw_count = count
  state.raw_scan_at = core_now()
  if count == 0 and checker ~= nil then
    checker:close()
    checker = nil
  end
end

-- once per loop iteration; with many such tasks at most every 5 ms (a failure
-- is then noticed a little late, never missed)
local function scan_raw_throttled()
  if state.raw_count > 256 and core_now() - state.raw_scan_at < RAW_SCAN_EVERY then return end
  scan_raw()
end

-- rec yielded outside our helpers: watch it once per loop iteration
local function raw_add(rec)
  if rec.raw then return end
  rec.raw = true
  raw_set[rec] = true
  state.raw_count = state.raw_count + 1
  if checker == nil then
    checker = uv.new_check()
    checker:start(scan_raw_throttled)
    checker:unref() -- watching never keeps the loop alive
  end
end

local K_SPAWN = pin("spawn")

-- the main thread waits in block_main: hand it the values of its wake (the C
-- side calls this for a queued wake of the main thread)
local function wake_main(rec, n, val)
  rec.woken = true
  if n == 1 then rec.values = { n = 1, val } elseif n == 0 then rec.values = { n = 0 } else rec.values = val end
end

-- Resume a task from a luv callback or the ready queue, attributing the wake
-- to `kind` (a pinned text): sched_run (sched.c). Every resume of ours moves
-- the task's gen on; a helper about to yield stores the gen as its wgen. So
-- after a resume, wgen == gen says "it waits in a helper" (else it yielded on
-- its own: raw_add), and in the helper an unchanged gen after the yield says
-- "resumed by someone else" (spurious). Values travel as a count and a value:
-- the value itself when there is one, a packed table when there are more.

-- the same from a luv callback of ours, with the callback's values: timed
local function resume_timed(rec, kind, ...)
  local n = select("#", ...)
  local t0 = core_now()
  s_run(rec, kind, n, n == 1 and (...) or n > 1 and pack(...) or nil)
  local t1 = core_now()
  if t1 - t0 > state.slow_ns then note_slow(rec, kind, t1 - t0, t0) end
  if t1 - state.settings_at > SETTINGS_EVERY then refresh_settings() end
end

-- waiting ---------------------------------------------------------------------------------

local function adopt(co, is_main)
  local rec = s_adopt(S, co, (not is_main) and core_track(co) or nil, is_main)
  recs[co] = rec
  return rec
end

-- the record of whoever calls a waiting helper `fname`: a task, a plain
-- coroutine, or the main thread (which then runs the loop while it waits)
local function waiter(fname)
  local co, is_main = co_running()
  local rec = recs[co] or adopt(co, is_main)
  if rec.main then
    if uv.loop_mode() ~= nil then
      error(format("'%s' outside any task while the luv loop is running (in a luv callback?): "
        .. "spawn a task with aio.spawn and wait there", fname), 3)
    end
  elseif not coroutine.isyieldable() then
    error(format("'%s' cannot wait here: this coroutine cannot yield "
      .. "(a C function or metamethod stands between)", fname), 3)
  end
  return rec
end

local function run_undo(rec)
  local undo, arg = rec.undo, rec.undo_arg
  rec.undo, rec.undo_arg = nil, nil
  if undo then undo(rec, arg) end
end

local function suspended_text(rec)
  local info = info_of(rec)
  local where = info and info.where and (" at " .. info.where) or ""
  local wait = (info and info.wait) or wait_of(rec)
  return format("%s is %s%s%s", describe(rec), rec.done or (started(rec) and "suspended" or "pending"),
    where, wait and (" waiting for " .. wait) or "")
end

-- the main thread waits by running the loop until it is woken
local function block_main(rec, label, level)
  rec.woken = false
  while not rec.woken do
    local alive = uv.run("once")
    if not rec.woken and not alive then
      scan_raw() -- a failure it finds wakes joiners, and the loop goes on
      if not rec.woken and not uv.loop_alive() then
        local what = rec.blocked_on and suspended_text(rec.blocked_on) or ("the " .. label)
        run_undo(rec)
        s_bump(rec)
        rec.blocked_on = nil
        error(format("%s: the luv loop has nothing left to run, but %s", label, what), level + 2)
      end
    end
  end
  local v = rec.values
  rec.values = nil
  return unpack(v, 1, v.n)
end

-- a task waiting in a helper was resumed by someone else: the wait is abandoned
local function spurious(rec)
  run_undo(rec)
  s_bump(rec)
  error("async_inspect.luv: a task waiting in an aio helper was resumed by other code "
    .. "(use aio.wake to wake it)", 0)
end

-- suspend rec until a resume of ours (sched_run, the ready queue); `level` 1 locates
-- the await at the caller of the helper that calls suspend. Never tail-call it: the
-- levels count frames.
-- `wait`: the text of what it waits for; pin_wait: it is one of few (pin it)
-- (a C function in tail position keeps this frame: the level still counts it)
local function suspend(rec, label, wait, level, pin_wait)
  if rec.main then return values(block_main(rec, label, level + 1)) end
  return s_suspend(rec, pin(label), level + 1, (pin_wait and wait) and pin(wait) or wait, wait)
end

-- coroutines the scheduler did not spawn (the main thread, luv-style code using a
-- helper) get a state too: a record with the task's fields, no methods, not a Task
local Adopted = { __name = "async_inspect.luv.adopted" }
Adopted.__index, Adopted.__newindex = core.sched_fields({})

-- the scheduler: its queue and task states in C, its slow paths here
S = s_new(Task, Adopted, start_idle, resume_failed, raw_add, wake_main, spurious)

local K_TIMER = pin("timer")

--- Sleep without blocking the loop: the task is suspended on a luv timer.
-- Outside any task (on the main thread, with the loop not running) it runs the loop
-- until the time is up.
-- @tparam number ms milliseconds, rounded up to a whole one
-- @usage aio.sleep(100)
function M.sleep(ms)
  if type(ms) ~= "number" or not (ms >= 0 and ms < math.huge) then
    arg_error(1, "sleep", "non-negative number of milliseconds expected, got "
      .. (type(ms) == "number" and tostring(ms) or typename(ms)))
  end
  local rec = waiter("sleep")
  local whole = math.ceil(ms)
  local timer, gen = uv.new_timer(), gen_of(rec)
  timer:start(whole, 0, function()
    timer:close()
    if gen_of(rec) == gen then resume_timed(rec, K_TIMER) end
  end)
  set_undo(rec, undo_close, timer)
  rec.wait_handle = timer
  suspend(rec, "sleep", format("timer %dms", whole), 1)
end

-- aio.await ---------------------------------------------------------------------------------

local uv_names = nil -- luv function -> its name in the luv table, built on first use

local FAMILY = {
  getaddrinfo = "getaddrinfo", getnameinfo = "getnameinfo", spawn = "process",
  queue_work = "work", random = "random", new_work = "work",
}
-- callbacks whose first argument is not an error
local PLAIN = { spawn = true, timer_start = true, signal_start = true,
  signal_start_oneshot = true, idle_start = true, prepare_start = true, check_start = true }

local await_infos = setmetatable({}, { __mode = "k" })

local function luv_name(fn)
  if uv_names == nil then
    uv_names = setmetatable({}, { __mode = "k" })
    for k, v in pairs(uv) do
      if type(v) == "function" then uv_names[v] = k end
    end
  end
  return uv_names[fn]
end

local function await_info(fn)
  local info = await_infos[fn]
  if info then return info end
  local name = luv_name(fn)
  info = { name = name, plain = PLAIN[name] or false,
           label = "await " .. (name or "callback"), wait = name or "callback" }
  if name then
    info.family = FAMILY[name] or name:match("^(%a+)_") or name
    local stop = name:match("^(.-)_start$")
    if stop then info.stop = uv[stop .. "_stop"] end
  end
  await_infos[fn] = info
  return info
end

-- the kind of callback that will wake the task: stream operations are named
-- after the stream ("tcp", "pipe"), the rest after their family ("fs", ...)
local function await_kind(info, first)
  if info.name == nil then return "callback" end
  if info.family ~= "fs" and is_handle(first) then return first:get_type() end
  return info.family
end

-- a result that arrived for a task that stopped waiting: release what it holds
local function release_late(info, err, a)
  if err ~= nil then return end
  if info.name == "fs_open" or info.name == "fs_mkstemp" then
    local fd = math.tointeger(a)
    if fd then uv.fs_close(fd) end
  elseif info.name == "fs_opendir" and type(a) == "userdata" then
    pcall(a.closedir, a)
  end
end

local function on_await(call, ...)
  local info = call.info
  if info.stop and call.handle and not call.handle:is_closing() then
    pcall(info.stop, call.handle) -- a repeating callback answers once
  end
  if info.name == "spawn" then close_handle(call.proc) end
  local rec = call.rec
  if gen_of(rec) ~= call.gen then return release_late(info, ...) end
  resume_timed(rec, call.kind, ...)
end

local function abort_await(_, call)
  if call.req then pcall(uv.cancel, call.req) end
  if call.proc and not call.proc:is_closing() then
    pcall(call.proc.kill, call.proc, "sigterm")
    call.proc:close()
  end
  close_handle(call.handle)
end

local function convention(info, err, ...)
  if info.plain then
    if err == nil and select("#", ...) == 0 then return true end
    return err, ...
  end
  if err ~= nil then return nil, err end
  if select("#", ...) == 0 then return true end
  return ...
end

--- Call a luv function that takes a trailing callback and wait for the callback.
-- Returns what the callback got, in the `nil, err` convention: on an error `nil, err`;
-- otherwise the callback's other arguments, or `true` when there are none. Callbacks
-- without an error argument (`uv.spawn`: code, signal; `timer_start`, `signal_start`)
-- return their arguments as they are. A failure to start (luv returns `nil, err`)
-- returns at once. Cancelling the task closes a handle it was waiting on (the first
-- argument, or the process of `uv.spawn`) and cancels its request.
-- @tparam function fn a luv function (any function whose last argument is a callback)
-- @param ... its arguments, without the callback
-- @return the callback's results
-- @usage local fd, err = aio.await(uv.fs_open, path, "r", 420)
function M.await(fn, ...)
  if type(fn) ~= "function" then arg_error(1, "await", "function expected, got " .. typename(fn)) end
  local rec = waiter("await")
  local info = await_info(fn)
  local n = select("#", ...)
  local first = ...
  local call = { rec = rec, gen = gen_of(rec), info = info, kind = pin(await_kind(info, first)),
                 handle = is_handle(first) and first or nil }
  local args = pack(...)
  args[n + 1] = function(...) return on_await(call, ...) end
  local r1, r2 = fn(unpack(args, 1, n + 1))
  if r1 == nil and r2 ~= nil then return nil, r2 end -- it never started
  if info.name == "spawn" then call.proc = r1 elseif is_req(r1) then call.req = r1 end
  set_undo(rec, abort_await, call)
  rec.wait_handle = call.proc or call.handle
  local wait = info.wait
  if call.handle and info.family == info.name then wait = wait .. " " .. call.handle:get_type() end
  return convention(info, suspend(rec, info.label, wait, 1, true))
end

-- aio.read ------------------------------------------------------------------------------------

local function take_chunk(st)
  if st.head <= st.tail then
    local data = st.buf[st.head]
    st.buf[st.head] = nil
    st.head = st.head + 1
    if st.head > st.tail then st.head, st.tail = 1, 0 end
    return data
  end
  if st.err then return nil, st.err end
  return nil
end

local function on_read(stream, st, err, data)
  if err then st.err = err
  elseif data == nil then st.eof = true
  else
    st.tail = st.tail + 1
    st.buf[st.tail] = data
  end
  local reader = st.reader
  if reader then
    st.reader = nil
    if gen_of(reader) == st.reader_gen then resume_timed(reader, st.kind, take_chunk(st)) end
  end
  -- nobody waits: stop reading, so data stays in the kernel, not in a Lua buffer
  if st.reader == nil and st.reading and not stream:is_closing() then
    stream:read_stop()
    st.reading = false
  end
end

local function abort_read(_, stream)
  local st = streams[stream]
  if st then st.reader = nil end
  close_handle(stream)
end

local function read_state(stream)
  local st = streams[stream]
  if st == nil then
    local kind = stream:get_type()
    st = { buf = {}, head = 1, tail = 0, kind = pin(kind), what = "read " .. kind }
    st.cb = function(err, data) on_read(stream, st, err, data) end
    streams[stream] = st
  end
  return st
end

--- Read the next chunk from a stream (TCP, pipe, TTY) without blocking the loop.
-- Data arriving while no task reads stays in the kernel (reading stops).
-- @param stream a luv stream handle
-- @treturn string|nil the next chunk; `nil` at the end of the stream
-- @treturn[2] nil
-- @treturn[2] string the error (`nil, err`)
-- @usage while true do local data = aio.read(client); if not data then break end end
function M.read(stream)
  if not is_handle(stream) or stream.read_start == nil then
    arg_error(1, "read", "stream handle expected, got " .. typename(stream))
  end
  local st = read_state(stream)
  if st.head <= st.tail or st.err or st.eof then return take_chunk(st) end
  local rec = waiter("read")
  if st.reader and gen_of(st.reader) == st.reader_gen then
    arg_error(1, "read", "another task is already reading this stream")
  end
  if not st.reading then
    if stream:is_closing() then return nil, "EBADF: stream is closed" end
    local ok, err = stream:read_start(st.cb)
    if not ok then return nil, err end
    st.reading = true
  end
  st.reader, st.reader_gen = rec, gen_of(rec)
  set_undo(rec, abort_read, stream)
  rec.wait_handle = stream
  local data, err = suspend(rec, "read", st.what, 1, true)
  return data, err
end

-- joining ---------------------------------------------------------------------------------------

local function add_joiner(target, rec)
  local j = target.joiners
  if j == nil then
    j = {}
    target.joiners = j
  end
  j[#j + 1] = rec
  j[#j + 1] = gen_of(rec)
end

local function remove_joiner(target, rec)
  local j = target.joiners
  if j == nil then return end
  for i = #j - 1, 1, -2 do
    if j[i] == rec then
      table.remove(j, i + 1)
      table.remove(j, i)
    end
  end
end

local function abort_join(rec, targets)
  for _, t in ipairs(targets) do remove_joiner(t, rec) end
  -- cancelled while joining: its edge in the wait-for graph goes too
  local deadlock = package.loaded["async_inspect.deadlock"]
  if deadlock and rec.co and not rec.main then pcall(deadlock.done_waiting, rec.co) end
end

local function short_ref(rec)
  if rec.tid then return "#" .. rec.tid end
  return format("'%s'", rec.title or "?")
end

-- wait until target ends; `level` as for suspend
-- A task joining another is an edge of the wait-for graph (async_inspect.deadlock):
-- a join cycle is caught the moment it closes, as a lock cycle is. The main thread
-- is not a task: its joins run the loop and are not edges.
local function join_edge(rec, target, level)
  if rec.main or rec.co == nil or target.co == nil then return false end
  local deadlock = require("async_inspect.deadlock")
  -- the wait is located at the user's call: join_edge, wait_for, the helper, then it
  deadlock.wait_for_task(rec.co, target.co, level + 3)
  return true
end

local function join_edge_done(rec)
  require("async_inspect.deadlock").done_waiting(rec.co)
end

local function wait_for(rec, target, label, wait, level)
  local edge = join_edge(rec, target, level)
  add_joiner(target, rec)
  set_undo(rec, abort_join, { target })
  rec.blocked_on = target
  local ok, err = pcall(suspend, rec, label, wait, level + 2)
  rec.blocked_on = nil
  if edge then join_edge_done(rec) end
  if not ok then error(err, 0) end
end

-- the results of an ended task, or its error raised
local function outcome(rec)
  rec.observed = true
  if rec.unjoined then rec.unjoined.observed = true end
  local done = rec.done
  if done == "completed" then return s_results(rec) end
  if done == "failed" then
    if type(rec.err) == "string" then error(format("%s failed: %s", describe(rec), rec.err), 0) end
    error(rec.err, 0)
  end
  error(describe(rec) .. " was cancelled", 0)
end

-- if rec failed in a resume that was not ours and nobody noticed yet, notice now
local function refresh(rec)
  if rec.done == nil and started(rec) and co_status(rec.co) == "dead" then
    if rec.raw then raw_remove(rec) end
    failed_elsewhere(rec)
  end
end

--- Wait for the task to end and return its results, or raise its error
-- (`task 'name' (#3) failed: <error>`; an error object that is not a string is raised as
-- it is) or `task 'name' (#3) was cancelled`. In a task it suspends; outside any task it
-- runs the loop until the task ends.
-- @return the task's results
-- @usage local body = aio.spawn("fetch", fetch, url):join()
function Task:join()
  if s_completed(self) then return s_results(self) end -- the common case of outcome
  check_handle(self, "join")
  if self.done == nil then
    refresh(self)
    if self.done == nil then
      local rec = waiter("join")
      if rec == self then error("a task cannot join itself", 2) end
      wait_for(rec, self, "join", "join " .. short_ref(self), 1)
    end
  end
  return outcome(self)
end

--- Cancel the task: it is closed where it waits (its to-be-closed variables run), its
-- state becomes `cancelled`, a luv handle it waited on is closed, and its joiners get
-- the error `task 'name' (#3) was cancelled`.
-- @treturn boolean true if it was cancelled, false if it had already ended
-- @usage h:cancel()
function Task:cancel()
  check_handle(self, "cancel")
  refresh(self)
  if self.done then return false end
  local st = co_status(self.co)
  if st == "running" or st == "normal" then
    error(format("cannot cancel %s: it is running (return from it instead)", describe(self)), 2)
  end
  s_bump(self)       -- whatever was scheduled for it is void now
  run_undo(self)
  clear_wait(self)
  s_done(self, "cancelled") -- its body and arguments go too
  co_close(self.co)
  finished(self)
  return true
end

--- The task's state: `pending` (not started yet), `running`, `suspended`, `normal`
-- (it resumed another coroutine), `completed`, `failed` or `cancelled`.
-- @treturn string
function Task:status()
  check_handle(self, "status")
  refresh(self)
  if self.done then return self.done end
  if not started(self) then return "pending" end
  return co_status(self.co)
end

--- The task's id in async_inspect (`ai.task_info(id)`), or nil when it is not tracked
-- (tracking disabled or sampled out).
-- @treturn integer|nil
function Task:id()
  check_handle(self, "id")
  return self.tid
end

--- The task's name, as given to `spawn` (nil when none was given).
-- @treturn string|nil
function Task:name()
  check_handle(self, "name")
  return self.title
end

--- The outcome without waiting: `true, results...` when it completed, `false, err` when it
-- failed (the error as raised) or was cancelled, `nil, state` while it has not ended.
-- @usage local ok, value = h:result()
function Task:result()
  check_handle(self, "result")
  refresh(self)
  local done = self.done
  if done == nil then return nil, started(self) and co_status(self.co) or "pending" end
  observed(self)
  if done == "completed" then return true, outcome(self) end
  if done == "failed" then return false, self.err end
  return false, describe(self) .. " was cancelled"
end

local function check_handles(handles, fname)
  if type(handles) ~= "table" then arg_error(1, fname, "table of task handles expected, got " .. typename(handles)) end
  for i = 1, #handles do
    if not is_task(handles[i]) then
      arg_error(1, fname, format("task handle expected at index %d, got %s", i, typename(handles[i])))
    end
    refresh(handles[i])
  end
end

--- Wait until every task has ended. Returns their results as an array of packed tables
-- (`results[i].n` values each); when one failed or was cancelled, raises the error of the
-- first such task (in the order given) once all have ended. Outside any task it runs the loop.
-- @tparam {Task,...} handles
-- @treturn table `{ {n=, ...}, ... }`
-- @usage local r = aio.wait_all{a, b}; print(r[1][1], r[2][1])
function M.wait_all(handles)
  check_handles(handles, "wait_all")
  local n = #handles
  for i = 1, n do
    local h = handles[i]
    if h.done == nil then
      local rec = waiter("wait_all")
      if rec == h then error("a task cannot wait for itself", 2) end
      wait_for(rec, h, "wait_all", format("wait_all %d/%d (join %s)", i, n, short_ref(h)), 1)
    end
  end
  local results, first_bad = {}, nil
  for i = 1, n do
    local h = handles[i]
    observed(h)
    if h.done == "completed" then results[i] = pack(outcome(h))
    elseif first_bad == nil then first_bad = h end
  end
  if first_bad then outcome(first_bad) end
  return results
end

local function first_done(handles)
  for i = 1, #handles do
    if handles[i].done then return handles[i], i end
  end
end

--- Wait until one of the tasks has ended and return it (join it for its results).
-- Outside any task it runs the loop.
-- @tparam {Task,...} handles a non-empty array
-- @treturn Task the first task (in the order given) that has ended
-- @treturn integer its index
-- @usage local h = aio.wait_any{fetch, timeout}; local v = h:join()
function M.wait_any(handles)
  check_handles(handles, "wait_any")
  if #handles == 0 then arg_error(1, "wait_any", "non-empty table expected") end
  local h, i = first_done(handles)
  if h then return h, i end
  local rec = waiter("wait_any")
  for j = 1, #handles do
    if handles[j] == rec then error("a task cannot wait for itself", 2) end
  end
  for j = 1, #handles do add_joiner(handles[j], rec) end
  set_undo(rec, abort_join, handles)
  rec.blocked_on = handles[1]
  suspend(rec, "wait_any", format("wait_any of %d tasks", #handles), 1)
  rec.blocked_on = nil
  abort_join(rec, handles)
  return first_done(handles)
end

-- spawning ---------------------------------------------------------------------------------------

-- a new task whose creation site is `level` frames above spawn_task's caller
local function spawn_task(name, fn, level, ...)
  local co = co_create(task_main)
  -- the default name is where fn is defined, not task_main; held: queued until it runs
  local tid = core_spawned(co, level + 1, fn, name, true)
  -- the task (its handle, a Task), with its first resume (rec, fn, ...) queued
  local rec = s_spawn(S, co, tid, name, K_SPAWN, fn, ...)
  recs[co] = rec
  return rec
end

--- Start a task: `fn(...)` in a new named coroutine whose first resume is scheduled on
-- the loop (not run now). The task running `spawn` is its parent.
-- @tparam string|nil name the task's name (nil: where fn is defined)
-- @tparam function fn the task's body
-- @param ... its arguments
-- @treturn Task a handle: `join`, `cancel`, `status`, `id`, `name`, `result`
-- @usage local h = aio.spawn("worker", work, job)
function M.spawn(name, fn, ...)
  if name ~= nil and type(name) ~= "string" then
    arg_error(1, "spawn", "string or nil expected, got " .. typename(name))
  end
  if type(fn) ~= "function" then arg_error(2, "spawn", "function expected, got " .. typename(fn)) end
  local h = spawn_task(name, fn, 1, ...) -- not a tail call: the level counts this frame
  return h
end

--- Same as `spawn`.
-- @function spawn_tracked
M.spawn_tracked = M.spawn

--- The handle of the task running now, or nil outside tasks started by `spawn`.
-- @treturn Task|nil
function M.current()
  local rec = recs[co_running()]
  if rec and is_task(rec) then return rec end
  return nil
end

-- waking, for other schedulers and synchronisation primitives ---------------------------------

local function target_rec(target, n, fname)
  if is_task(target) then return target end
  if type(target) ~= "thread" then
    arg_error(n, fname, "task handle or coroutine expected, got " .. typename(target))
  end
  return recs[target] or adopt(target, target == MAIN_THREAD)
end

local function schedule(rec, kind, ...)
  if rec.done then return false end
  if rec.adopted and not rec.main and co_status(rec.co) == "dead" then return false end
  local n = select("#", ...)
  s_enqueue(rec, gen_of(rec), kind, n, n == 1 and (...) or n > 1 and pack(...) or nil)
  return true
end

-- aio.wake: the common case, a task and no more than one value, is a C function
-- (sched.c); the rest comes here
local function wake_slow(target, ...)
  return schedule(target_rec(target, 1, "wake"), K_WAKE, ...)
end

--- Schedule a resume of a waiting task on the loop, passing `...` to it: `aio.suspend`
-- returns them. Whatever else it waits on is abandoned (a sleep ends early). A wake is
-- void if the task is resumed by anything else before the wake runs, so waking twice
-- resumes once.
-- @function wake
-- @param target a task handle or a coroutine (the main thread too, while it waits in `run`)
-- @param ... values for the woken task
-- @treturn boolean false when the task has already ended
-- @usage aio.wake(waiter, item)
M.wake = core.sched_waker(K_WAKE, wake_slow)

--- `wake` with the kind of event that caused it, as the resume event will show it
-- (`"lock"`, `"channel"`, ...).
-- @tparam string kind
-- @param target a task handle or a coroutine
-- @param ... values for the woken task
-- @treturn boolean
-- @usage aio.wake_as("channel", receiver, message)
function M.wake_as(kind, target, ...)
  if type(kind) ~= "string" then arg_error(1, "wake_as", "string expected, got " .. typename(kind)) end
  return schedule(target_rec(target, 2, "wake_as"), pin(kind), ...)
end

local function call_on_cancel(rec, fn)
  local ok, err = pcall(fn, rec.co)
  if not ok then io.stderr:write("async_inspect.luv: on_cancel failed: ", error_text(err), "\n") end
end

local function suspend_slow(label, wait, on_cancel, level)
  if type(label) ~= "string" then arg_error(1, "suspend", "string expected, got " .. typename(label)) end
  if wait ~= nil and type(wait) ~= "string" then
    arg_error(2, "suspend", "string or nil expected, got " .. typename(wait))
  end
  if on_cancel ~= nil and type(on_cancel) ~= "function" then
    arg_error(3, "suspend", "function or nil expected, got " .. typename(on_cancel))
  end
  if level ~= nil and (math.type(level) ~= "integer" or level < 1) then
    arg_error(4, "suspend", "positive integer expected, got " .. tostring(level))
  end
  local rec = waiter("suspend")
  if on_cancel then set_undo(rec, call_on_cancel, on_cancel) end
  return values(suspend(rec, label, wait, level or 1, true))
end

--- Suspend the current task until `aio.wake` wakes it; returns the values given to wake.
-- For synchronisation primitives: the await is labelled and located at the caller.
-- On the main thread (loop not running) it runs the loop until woken.
-- @tparam string label await label (`"lock"`, `"recv"`)
-- @tparam[opt] string wait what it waits for (`"lock:db"`)
-- @tparam[opt] function on_cancel called with the coroutine if the task is cancelled while waiting
-- @param[opt] level which caller's line to record (1, the default: the caller of suspend)
-- @return the values passed to `wake`
-- @usage local item = aio.suspend("recv", "channel:jobs")
function M.suspend(label, wait, on_cancel, level)
  local co, is_main = co_running()
  local rec = recs[co]
  local lid = pin_ids[label]
  local wid = wait and pin_ids[wait]
  if lid == nil or (wid == nil and wait ~= nil) or on_cancel ~= nil or level ~= nil
      or rec == nil or is_main then
    -- checks, rare cases, first uses; a tail call, so it stands where we stand
    return suspend_slow(label, wait, on_cancel, level)
  end
  -- the common case: a task, texts seen before
  return s_suspend(rec, lid, 1, wid, wait)
end

-- reports: what is still suspended, diagnoser, snapshot provider --------------------------

-- aio tasks (and coroutines waiting in our helpers) that have not ended
local function live_records()
  local out = {}
  for co, rec in pairs(recs) do
    if not rec.main and not rec.done then
      local st = co_status(co)
      if st == "suspended" and (not rec.adopted or in_helper(rec)) then out[#out + 1] = rec end
    end
  end
  table.sort(out, function(a, b) return (a.tid or math.huge) < (b.tid or math.huge) end)
  return out
end

local function why_stuck(rec)
  local info = info_of(rec)
  local wait = (info and info.wait) or wait_of(rec)
  if not in_helper(rec) then
    return "it yielded outside the aio helpers and nothing resumed it",
      "resume it from a luv callback, or wait with aio.await / aio.sleep / aio.read"
  end
  if rec.blocked_on then
    return "it joins " .. describe(rec.blocked_on) .. ", which is stuck too",
      "see the finding about " .. describe(rec.blocked_on)
  end
  if wait and (wait:find("^timer") or wait:find("^read") or rec.wait_handle) then
    return "the handle it waits on was closed", "do not close a handle a task is waiting on; cancel the task instead"
  end
  return "nothing called aio.wake for it", "a lock never released or a message never sent? wake it, or cancel it"
end

local function stuck_finding(rec, snap_task)
  local where = snap_task and snap_task.where
  local wait = (snap_task and snap_task.wait) or wait_of(rec) or "?"
  local why, fix = why_stuck(rec)
  return {
    kind = "stuck", severity = "error", task = rec.tid, name = rec.title or (snap_task and snap_task.name),
    loc = where,
    message = format("%s is suspended%s waiting for %s, and no luv handle or request is left "
      .. "that could wake it: %s", describe(rec), where and (" at " .. where) or "", wait, why),
    recommendation = fix,
  }
end

-- is a task waiting on a handle that was closed under it?
local function waits_on_closed(rec)
  local h = rec.wait_handle
  return h ~= nil and is_handle(h) and h:is_closing()
end

local function stuck_findings(snap, out)
  local loop_over = uv.loop_mode() == nil and not uv.loop_alive() and s_queued(S) == 0
  local by_id = {}
  for _, t in ipairs(snap and snap.tasks or {}) do by_id[t.id] = t end
  for _, rec in ipairs(live_records()) do
    if loop_over or waits_on_closed(rec) then
      out[#out + 1] = stuck_finding(rec, rec.tid and by_id[rec.tid] or info_of(rec))
    end
  end
end

local function unjoined_findings(out)
  for _, e in ipairs(state.unjoined) do
    if not e.observed then
      out[#out + 1] = {
        kind = "unjoined_failure", severity = "error", task = e.task, name = e.name,
        message = format("%s failed and nobody joined it: %s", e.what, e.error),
        recommendation = "join its handle (h:join()) or handle the error inside the task",
      }
    end
  end
end

local function slow_findings(out)
  local list = M.slow_callbacks()
  if #list == 0 then return end
  local worst = list[1]
  for _, s in ipairs(list) do
    if s.duration > worst.duration then worst = s end
  end
  out[#out + 1] = {
    kind = "slow_callback", severity = "warn", task = worst.task, loc = worst.at,
    value = worst.duration,
    message = format("%d luv callbacks ran longer than %g ms; the longest (%s) ran %.1f ms%s",
      state.slow_total, state.slow_ns / 1e6, worst.kind, worst.duration / 1e6,
      worst.at and (" and stopped at " .. worst.at) or ""),
    recommendation = "move CPU-heavy work to uv.new_work or uv.new_thread, or split it with aio.sleep(0)",
  }
end

--- The luv-level findings on a snapshot (registered in `ai._diagnosers`): tasks suspended
-- with nothing left that could wake them, failures nobody joined, slow callbacks.
-- @tparam table snap a snapshot (`ai.snapshot()`)
-- @treturn table findings `{kind=, severity=, task=, name=, loc=, message=, recommendation=}`
-- @usage for _, f in ipairs(aio.diagnose(ai.snapshot())) do print(f.message) end
function M.diagnose(snap)
  if snap ~= nil and type(snap) ~= "table" then arg_error(1, "diagnose", "table expected, got " .. typename(snap)) end
  local out = {}
  stuck_findings(snap, out)
  unjoined_findings(out)
  slow_findings(out)
  return out
end

local diagnosers = rawget(ai, "_diagnosers")
if diagnosers == nil then
  diagnosers = {}
  rawset(ai, "_diagnosers", diagnosers)
end
diagnosers[#diagnosers + 1] = M.diagnose

-- snapshots get `slow_callbacks` and `unjoined` (failures nobody has joined yet,
-- `{task=, name=, error=, t=}` each; the profiler leaves these to us)
ai._snapshot_providers[#ai._snapshot_providers + 1] = function(snap)
  if state.slow_total > 0 then snap.slow_callbacks = M.slow_callbacks() end
  local list = {}
  for _, e in ipairs(state.unjoined) do
    if not e.observed then list[#list + 1] = { task = e.task, name = e.name, error = e.error, t = e.t } end
  end
  if #list > 0 then snap.unjoined = list end
end

local function format_findings(findings)
  local lines = {}
  for _, f in ipairs(findings) do
    lines[#lines + 1] = format("[%s] %s", f.severity or "info", f.message or f.kind or "?")
    if f.recommendation then lines[#lines + 1] = "    -> " .. f.recommendation end
  end
  return table.concat(lines, "\n")
end

-- the report printed when the loop ends with tasks still suspended
local function report_stuck(stuck)
  local text
  local diagnose = rawget(ai, "diagnose")
  if type(diagnose) == "function" then
    local ok, r = pcall(diagnose)
    if ok and type(r) == "string" then text = r
    elseif ok and type(r) == "table" then text = format_findings(r.findings or r) end
  end
  text = text or format_findings(M.diagnose(ai.snapshot()))
  io.stderr:write(format("async_inspect.luv: the loop ended with %d task%s still suspended:\n",
    #stuck, #stuck == 1 and "" or "s"), text, "\n")
  -- the unjoined failures were listed above: the policy need not print them again
  for _, e in ipairs(state.unjoined) do e.printed = true end
end

local function apply_unjoined_policy()
  local list = take_unjoined()
  if #list == 0 or state.policy == "ignore" then return end
  if state.policy == "raise" then error(unjoined_text(list), 0) end
  local fresh = {}
  for _, e in ipairs(list) do
    if not e.printed then fresh[#fresh + 1] = e end
  end
  if #fresh > 0 then io.stderr:write(unjoined_text(fresh)) end
end

--- Run `main(...)` as a task named "main" and the loop until it has nothing left to do;
-- return main's results. If main fails, the loop stops and its error is raised. When the
-- loop ends while tasks are still suspended, they are reported on stderr (with
-- `ai.diagnose()` when available), and if main is one of them an error is raised. Failures
-- nobody joined are then handled per `ai.settings().unjoined_errors`.
-- @tparam function main
-- @param ... its arguments
-- @return main's results
-- @usage aio.run(function() aio.sleep(10) end)
function M.run(main, ...)
  if type(main) ~= "function" then arg_error(1, "run", "function expected, got " .. typename(main)) end
  if uv.loop_mode() ~= nil then
    error("aio.run: the luv loop is already running (aio.run cannot be called from a luv callback "
      .. "or a task)", 2)
  end
  refresh_settings()
  local h = spawn_task("main", main, 1, ...)
  h.observed = true
  local outer = state.run_main
  state.run_main = h
  uv.run("default")
  state.run_main = outer
  scan_raw()
  if h.done ~= "failed" then
    local stuck = live_records()
    if #stuck > 0 then report_stuck(stuck) end
    if checker ~= nil and not uv.loop_alive() then checker:close(); checker = nil end
  end
  apply_unjoined_policy()
  if h.done == nil then
    error("aio.run: the loop ended but " .. suspended_text(h), 2)
  end
  return outcome(h)
end

-- dumps on a signal --------------------------------------------------------------------------

local function dump_text()
  local ok, dump = pcall(function() return ai.dump end)
  if ok and type(dump) == "function" then
    local ok2, r = pcall(dump, { color = false })
    if ok2 and type(r) == "string" then return r end
    if ok2 and type(r) == "table" then return table.concat(r, "\n") end
  end
  local snap = ai.snapshot()
  local summary = ai.report.summary{ snapshot = snap, color = false }
  local lines = require("async_inspect.views.tasks").render(snap, { width = 120, color = false })
  return summary .. "\n" .. table.concat(lines, "\n")
end

local function write_dump(path)
  local ok, text = pcall(dump_text)
  if not ok then text = "async_inspect: dump failed: " .. error_text(text) end
  local header = format("=== async_inspect dump, pid %d, %s ===\n", uv.os_getpid(), os.date("%Y-%m-%d %H:%M:%S"))
  if path == nil then
    io.stderr:write(header, text, "\n")
    return
  end
  local f, err = io.open(path, "a")
  if not f then
    io.stderr:write("async_inspect: cannot write the dump: ", tostring(err), "\n")
    return
  end
  f:write(header, text, "\n")
  f:close()
end

--- On a signal, write `require("async_inspect").dump()` (or, without it, the summary and the
-- task list) to stderr, or append it to a file. The signal handle is unreferenced, so it
-- never keeps the loop alive; installing again for the same signal replaces it.
-- @tparam string signame e.g. `"sigusr1"`
-- @tparam[opt] string path file to append to (default: stderr)
-- @return the luv signal handle (close it to remove the handler)
-- @usage aio.dump_on_signal("sigusr1", "/tmp/tasks.txt")
function M.dump_on_signal(signame, path)
  if type(signame) ~= "string" then arg_error(1, "dump_on_signal", "string expected, got " .. typename(signame)) end
  if path ~= nil and type(path) ~= "string" then
    arg_error(2, "dump_on_signal", "string or nil expected, got " .. typename(path))
  end
  local sig = uv.new_signal()
  local ok, err = pcall(sig.start, sig, signame, function() write_dump(path) end)
  if not ok or err == nil then
    sig:close()
    arg_error(1, "dump_on_signal", "unknown signal '" .. signame .. "'")
  end
  sig:unref()
  close_handle(state.signals[signame])
  state.signals[signame] = sig
  return sig
end

refresh_settings()

return M

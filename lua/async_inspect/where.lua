--- Where is every task and why: await points (states), suspended stacks, locals,
-- spawn chains, creation traces, the goroutine-style dump and the task tree.
--
-- Everything here is computed when asked for, never on the hot path: a suspended
-- coroutine's stack is read from the coroutine itself, found through
-- `core.thread_of` / `core.threads` (a weak table, so nothing here keeps a coroutine
-- alive), and values are rendered by `async_inspect.render`, which invokes no
-- metamethod.
--
-- The `async_inspect` module exposes these as `ai.where`, `ai.dump`, `ai.print_dump`,
-- `ai.states`, `ai.locals` and `ai.tree`.
-- @module async_inspect.where
-- @usage
-- local ai = require "async_inspect"
-- for _, w in ipairs(ai.where()) do print(w.id, w.where, w.waited, w.traceback) end
-- ai.print_dump()

local core = require("async_inspect.core")
local render = require("async_inspect.render")
local dump_view = require("async_inspect.views.dump")

local M = {}

local format = string.format

-- the async_inspect module, loaded on use: it may be loading us
local function ai() return require("async_inspect") end

-- raise "bad argument" at the caller of a public function: `level` 3 when called from
-- the public function itself, one more for each helper in between
local function arg_error(n, fname, msg, level)
  error(format("bad argument #%d to '%s' (%s)", n, fname, msg), level or 3)
end

local function check_opts(opts, n, fname, level)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    arg_error(n, fname, "table expected, got " .. type(opts), level or 4)
  end
  return opts
end

local function check_level(level, n, fname)
  if level ~= nil and (math.type(level) ~= "integer" or level < 0) then
    arg_error(n, fname, "non-negative integer expected, got " ..
      (math.type(level) or type(level)), 4)
  end
end

-- tasks and their coroutines ------------------------------------------------------------------

-- Our own frames are left out of the traceback of a task that asks about itself.
local OWN_SOURCES = {}
OWN_SOURCES[debug.getinfo(1, "S").source] = true

local function is_own_source(source)
  return OWN_SOURCES[source] or source:find("async_inspect[/\\]init%.lua$") ~= nil
end

-- the level, relative to our caller, of the first frame outside this module
local function caller_level()
  local level = 3
  while true do
    local info = debug.getinfo(level, "S")
    if info == nil or not is_own_source(info.source) then return level - 1 end
    level = level + 1
  end
end

-- id of the task of the running coroutine, nil on the main thread or untracked
local function running_task()
  local co, main = coroutine.running()
  if main then return nil, co end
  local rec = core.task(co)
  return rec and rec.id, co
end

-- the record and (when alive) the coroutine of a task given as an id or a coroutine
local function resolve(task, n, fname)
  if type(task) == "thread" then
    return core.task(task), task
  elseif math.type(task) == "integer" then
    local rec = core.task(task)
    if rec == nil then return nil, nil end
    local running_id, running_co = running_task()
    if running_id == task then return rec, running_co end
    return rec, core.thread_of(task)
  end
  arg_error(n, fname, "task id or coroutine expected, got " .. (math.type(task) or type(task)), 4)
end

-- name of the function at `level` of a suspended coroutine, as Lua's traceback says it
local function frame_function(co, level)
  local info = debug.getinfo(co, level, "Sn")
  if info == nil then return nil end
  if info.name then return info.name end
  if info.what == "main" then return "main chunk" end
  if info.what == "C" then return "?" end
  return format("function <%s:%d>", info.short_src, info.linedefined)
end

-- the where_fn of a suspended task: recorded by the core when the call site names the
-- function, else read from the coroutine when it is still suspended at that place
local function where_fn(rec, co)
  if rec.where_fn or not rec.where or co == nil then return rec.where_fn end
  for level = 1, 3 do
    local info = debug.getinfo(co, level, "Sl")
    if info == nil then return nil end
    if info.currentline >= 0 then
      if format("%s:%d", info.short_src, info.currentline) ~= rec.where then return nil end
      return frame_function(co, level)
    end
  end
  return nil
end

local function traceback_of(co)
  local running = coroutine.running()
  if co == running then return debug.traceback(nil, caller_level()) end
  return debug.traceback(co)
end

-- creation traces ---------------------------------------------------------------------------------

--- Format a creation trace from `core.creation_trace` as traceback-like text.
-- @tparam table trace `{ {loc=, fn=}, ..., more=bool }`
-- @treturn string `creation traceback:` and one tab-indented line per frame
function M.format_creation(trace)
  if type(trace) ~= "table" then
    arg_error(1, "format_creation", "table expected, got " .. type(trace))
  end
  local lines = { "creation traceback:" }
  for _, f in ipairs(trace) do
    local loc, fn = tostring(f.loc), f.fn
    if loc:sub(1, 3) == "[C]" or fn == nil then
      lines[#lines + 1] = "\t" .. loc
    elseif fn == "main chunk" or fn:sub(1, 10) == "function <" then
      lines[#lines + 1] = format("\t%s: in %s", loc, fn)
    else
      lines[#lines + 1] = format("\t%s: in function '%s'", loc, fn)
    end
  end
  if trace.more then lines[#lines + 1] = "\t..." end
  return table.concat(lines, "\n")
end

local function creation_text(id)
  local trace = core.creation_trace(id)
  return trace and M.format_creation(trace) or nil
end

-- states: the await points of a task -----------------------------------------------------------

local ENDS = { complete = true, fail = true, cancel = true, drop = true }

-- the task's yields from the event ring: distinct (location, label) pairs in order of
-- first appearance, with counts and suspension times
local function collect_points(id, now)
  local points, list, open, saw_spawn, first_t = {}, {}, nil, false, nil
  local function close(t)
    local d = t - open.since
    open.point.total = open.point.total + d
    if d > open.point.longest then open.point.longest = d end
    open = nil
  end
  for _, t, task, kind, loc, _, detail in core.iter_events() do
    first_t = first_t or t
    if task == id then
      if kind == "spawn" then
        saw_spawn = true
      elseif kind == "yield" then
        local key = (loc or "?") .. "\0" .. (detail or "")
        local p = points[key]
        if p == nil then
          p = { where = loc, await = detail, count = 0, total = 0, longest = 0, current = false }
          points[key] = p
          list[#list + 1] = p
        end
        p.count = p.count + 1
        open = { point = p, since = t }
      elseif (kind == "resume" or ENDS[kind]) and open then
        close(t)
      end
    end
  end
  if open then
    open.point.current = true
    close(now)
  end
  return list, saw_spawn
end

--- The states of a task: state 0 is its creation (time pending before the first
-- resume), then each distinct await point (yield location and await label) in order of
-- first appearance, like `fn::await#N` labels but with true source lines.
-- Read from the event ring: when old events were overwritten, `partial` is true.
-- @param task a task id or a coroutine
-- @treturn table|nil array of `{state=N, name="fn::await#N", where="source:line",
-- where_fn=, await=label|nil, count=, total=ns, longest=ns, current=bool}` with fields
-- `task` (id) and `partial`; nil and a message for an unknown task
-- @usage for _, s in ipairs(ai.states(co)) do print(s.state, s.name, s.where, s.count) end
function M.states(task)
  local rec, co = resolve(task, 1, "states")
  if rec == nil then return nil, "not a tracked task" end
  local now = core.now()
  local points, saw_spawn = collect_points(rec.id, now)
  local names = core.location_names()
  local pending_until = rec.first_resume or (not rec.ended and now) or rec.ended
  local states = {
    task = rec.id, partial = not saw_spawn,
    { state = 0, name = "created", where = rec.created_at, count = 1,
      total = math.max(0, pending_until - rec.created),
      longest = math.max(0, pending_until - rec.created), current = rec.state == "pending" },
  }
  for i, p in ipairs(points) do
    local fn = names[p.where]
    if fn == nil and p.current and p.where == rec.where then fn = where_fn(rec, co) end
    p.state, p.where_fn = i, fn
    p.name = format("%s::await#%d", fn or "?", i)
    states[#states + 1] = p
  end
  return states
end

-- locals -----------------------------------------------------------------------------------------

local function frame_values(co, level, f, ropts, temporaries)
  local locals, upvalues = {}, {}
  for i = 1, 250 do
    local name, value = debug.getlocal(co, level, i)
    if name == nil then break end
    if temporaries or name:sub(1, 1) ~= "(" then
      locals[#locals + 1] = { name = name, value = render.value(value, ropts) }
    end
  end
  for i = 1, 250 do
    local name, value = debug.getlocal(co, level, -i)
    if name == nil then break end
    locals[#locals + 1] = { name = format("...[%d]", i), value = render.value(value, ropts) }
  end
  if f and debug.getinfo(f, "S").what ~= "C" then
    for i = 1, 255 do
      local name, value = debug.getupvalue(f, i)
      if name == nil then break end
      -- _ENV is the globals table: name it, do not expand it
      local o = name == "_ENV" and { depth = 0, ids = ropts.ids } or ropts
      upvalues[#upvalues + 1] = { name = name, value = render.value(value, o) }
    end
  end
  return locals, upvalues
end

local function frame_of(co, level, ropts, temporaries)
  local info = debug.getinfo(co, level, "Slnf")
  if info == nil then return nil end
  local frame = { level = level, what = info.what, fn = frame_function(co, level),
    where = info.currentline >= 0 and format("%s:%d", info.short_src, info.currentline) or "[C]" }
  if info.what == "C" then
    frame.locals, frame.upvalues = {}, {}
  else
    frame.locals, frame.upvalues = frame_values(co, level, info.func, ropts, temporaries)
  end
  return frame
end

local RENDER_KEYS = { "depth", "items", "string_len", "width", "scan" }

local function render_opts(opts)
  local o = { ids = render.ids(), width = 200 }
  for _, k in ipairs(RENDER_KEYS) do
    if opts[k] ~= nil then o[k] = opts[k] end
  end
  return o
end

-- frames of a stack that is not running: every level, or the one asked for
local function collect_frames(co, level, opts)
  local ropts = render_opts(opts)
  local frames = {}
  if level then
    frames[1] = frame_of(co, level, ropts, opts.temporaries)
    return frames
  end
  local max = opts.frames or 20
  for l = 0, 199 do
    local frame = frame_of(co, l, ropts, opts.temporaries)
    if frame == nil or #frames >= max then break end
    -- the yield itself (a C frame at level 0) says nothing
    if not (l == 0 and frame.what == "C") then frames[#frames + 1] = frame end
  end
  return frames
end

local function check_locals_opts(opts)
  opts = check_opts(opts, 3, "locals", 5)
  local probe = {}
  for _, k in ipairs(RENDER_KEYS) do probe[k] = opts[k] end
  local ok, err = pcall(render.value, nil, probe)
  if not ok then arg_error(3, "locals", (tostring(err):match("%((.*)%)") or "bad options"), 4) end
  if opts.frames ~= nil and (math.type(opts.frames) ~= "integer" or opts.frames < 1) then
    arg_error(3, "locals", "frames must be a positive integer", 4)
  end
  return opts
end

--- The locals and upvalues of a suspended task's frames, rendered safely (no
-- metamethod invoked; depth, length and width limits; cycles as references).
-- Levels are those of `debug.getinfo(co, level)` in the coroutine: 1 is the function that
-- called `coroutine.yield`.
-- @param task a task id or a coroutine
-- @tparam[opt] integer level one frame only
-- @tparam[opt] table opts render limits `depth`, `items`, `string_len`, `width`, `scan`
-- (see `async_inspect.render`), `frames` (most frames, 20), `temporaries` (show `(temporary)`
-- slots)
-- @treturn table|nil frames `{level=, what=, fn=, where=, locals={{name=, value=}...},
-- upvalues={...}}` innermost first (with field `task`); nil and a message when the task
-- has no readable stack (finished, running, never suspended, collected)
-- @usage for _, f in ipairs(ai.locals(co)) do for _, v in ipairs(f.locals) do print(v.name, v.value) end end
function M.locals(task, level, opts)
  local rec, co = resolve(task, 1, "locals")
  check_level(level, 2, "locals")
  opts = check_locals_opts(opts)
  local id = rec and rec.id
  local who = id and format("task #%d", id) or "the coroutine"
  if co == nil then
    if rec == nil then return nil, "not a tracked task" end
    return nil, format("%s has no readable stack (%s)", who, rec.state)
  end
  if co == coroutine.running() then
    return nil, who .. " is the running one: read its locals with debug.getlocal"
  end
  if coroutine.status(co) == "dead" then return nil, who .. " has ended" end
  local frames = collect_frames(co, level, opts)
  if level and frames[1] == nil then return nil, format("%s has no frame at level %d", who, level) end
  frames.task = id
  return frames
end

--- Lines showing frames from `locals`, for reports and the dashboard.
-- @tparam table frames as returned by `locals`
-- @treturn {string,...}
function M.format_locals(frames)
  if type(frames) ~= "table" then
    arg_error(1, "format_locals", "table expected, got " .. type(frames))
  end
  local lines = {}
  for _, f in ipairs(frames) do
    lines[#lines + 1] = format("frame %d: %s at %s", f.level, f.fn or "?", f.where or "?")
    for _, v in ipairs(f.locals or {}) do lines[#lines + 1] = "  local " .. v.name .. " = " .. v.value end
    for _, v in ipairs(f.upvalues or {}) do
      lines[#lines + 1] = "  upvalue " .. v.name .. " = " .. v.value
    end
  end
  return lines
end

-- where --------------------------------------------------------------------------------------------

local function where_record(rec, co, now, lookup)
  local r = {
    id = rec.id, name = rec.name, state = rec.state, kind = rec.kind, await = rec.await,
    wait = rec.wait, where = rec.where, where_fn = where_fn(rec, co),
    created_at = rec.created_at, chain = dump_view.chain(rec, lookup),
  }
  if rec.state == "suspended" or rec.state == "pending" then r.waited = dump_view.waited(rec, now) end
  if co ~= nil and coroutine.status(co) ~= "dead" then r.traceback = traceback_of(co) end
  r.creation_trace = creation_text(rec.id)
  return r
end

--- Where tasks are and why. For each suspended task (or the one given): its await
-- label, what it waits for, how long, the traceback of the suspended coroutine, its
-- spawn chain and, when creation traces are on, where it was created.
-- @param[opt] task a task id or a coroutine; without it, every suspended task
-- @treturn table with one task: `{id=, name=, state=, await=, wait=, waited=ns, where=,
-- where_fn=, traceback=, created_at=, chain={{id=, name=, created_at=}, ...},
-- creation_trace=}`; without: an array of them, longest wait first. With a task not
-- tracked: nil and a message.
-- @usage local w = ai.where(co); print(w.where, w.traceback)
function M.where(task)
  local now = core.now()
  if task ~= nil then
    local rec, co = resolve(task, 1, "where")
    if rec == nil then return nil, "not a tracked task" end
    return where_record(rec, co, now, core.task)
  end
  local all = core.tasks()
  local by, threads = {}, core.threads()
  for _, t in ipairs(all) do by[t.id] = t end
  local out = {}
  for _, t in ipairs(all) do
    if t.state == "suspended" then out[#out + 1] = where_record(t, threads[t.id], now, by) end
  end
  table.sort(out, function(a, b)
    if a.waited ~= b.waited then return a.waited > b.waited end
    return a.id < b.id
  end)
  return out
end

-- annotate and dump --------------------------------------------------------------------------

local function annotate_task(t, co, opts, with_locals)
  t.traceback_now = t.traceback_now or debug.traceback(co)
  t.where_fn = where_fn(t, co)
  if with_locals and t.locals == nil then
    t.locals = M.format_locals(collect_frames(co, nil, opts))
  end
end

--- Add what only the live program knows to a snapshot's task records: `traceback_now`
-- (the traceback of each suspended or normal coroutine), `locals` (lines),
-- `creation_trace` (when captured) and `where_fn` when the core could not name it.
-- Usable as a snapshot provider (`table.insert(ai._snapshot_providers, where.annotate)`).
-- @tparam table snap a snapshot of this process
-- @tparam[opt] table opts `task` (annotate only this id), `locals` (false: no locals;
-- default true), `max_locals` (tasks given locals, 50), and render limits as in `locals`
-- @treturn table snap
function M.annotate(snap, opts)
  if type(snap) ~= "table" or type(snap.tasks) ~= "table" then
    arg_error(1, "annotate", "snapshot expected, got " .. type(snap))
  end
  opts = check_opts(opts, 2, "annotate")
  local only = opts.task
  local with_locals, budget = opts.locals ~= false, opts.max_locals or 50
  local threads = core.threads()
  local running_id = running_task()
  for _, t in ipairs(snap.tasks) do
    if (only == nil or t.id == only) and (t.state == "suspended" or t.state == "normal") then
      local co = threads[t.id]
      if co ~= nil and t.id ~= running_id and coroutine.status(co) ~= "dead" then
        annotate_task(t, co, opts, with_locals and budget > 0)
        budget = budget - 1
      end
    end
    if (only == nil or t.id == only) and t.creation_trace == nil then
      t.creation_trace = creation_text(t.id)
    end
  end
  return snap
end

--- The goroutine-style dump of every live task (suspended, pending, running, normal):
-- longest waits first, identical stacks folded with a count, each with its await label,
-- what it waits for, its stack and its spawn chain. See `async_inspect.views.dump`.
-- @tparam[opt] table opts `locals` (true: show the locals of each stack), `snapshot`
-- (render this snapshot instead of a live one), `limit`, `ids`, `color`, `ascii`
-- @treturn string the dump, ending with a newline
-- @usage io.stderr:write(ai.dump())
function M.dump(opts)
  opts = check_opts(opts, 1, "dump")
  local snap = opts.snapshot
  if snap == nil then
    snap = ai().snapshot()
    M.annotate(snap, { locals = opts.locals == true })
    local running_id, co = running_task()
    for _, t in ipairs(snap.tasks) do
      if t.id == running_id then t.traceback_now = traceback_of(co) end
    end
  elseif type(snap) ~= "table" then
    arg_error(1, "dump", "snapshot must be a table")
  end
  local view_opts = { limit = opts.limit, ids = opts.ids, color = opts.color, ascii = opts.ascii,
    locals = opts.locals == true }
  return table.concat(dump_view.render(snap, view_opts), "\n") .. "\n"
end

--- Write the dump (see `dump`) to a file handle, stdout by default.
-- @tparam[opt] table opts as for `dump`, plus `file` (an open file handle)
-- @treturn string the dump written
-- @usage ai.print_dump{file = io.stderr}
function M.print_dump(opts)
  opts = check_opts(opts, 1, "print_dump")
  local file = opts.file or io.stdout
  if io.type(file) ~= "file" then arg_error(1, "print_dump", "file must be an open file handle") end
  local text = M.dump(opts)
  file:write(text)
  file:flush()
  return text
end

--- Print the task tree (parents and children, with states and durations): the
-- reporter's tree view.
-- @tparam[opt] table opts as for `ai.report.tree` (`ascii`, `color`, `width`, `snapshot`,
-- `filter`), plus `file` (an open file handle, stdout by default)
-- @treturn string the tree printed
-- @usage ai.tree()
function M.tree(opts)
  opts = check_opts(opts, 1, "tree")
  local file = opts.file or io.stdout
  if io.type(file) ~= "file" then arg_error(1, "tree", "file must be an open file handle") end
  local view_opts = {}
  for k, v in pairs(opts) do
    if k ~= "file" then view_opts[k] = v end
  end
  local text = require("async_inspect.reporter").tree(view_opts)
  file:write(text, "\n")
  file:flush()
  return text
end

return M

--- The reporter (`ai.report`): text reports drawn from a fresh snapshot.
--
-- Each function returns a string; its `print_` twin writes it to stdout.
-- Unicode box drawing unless the locale is not UTF-8 or `ascii=true`; colour
-- only when stdout is a terminal and `NO_COLOR` is not set (or `color=true`).
-- @module async_inspect.reporter
-- @usage
-- local ai = require "async_inspect"
-- ai.report.print_summary()
-- print(ai.report.timeline{limit = 20})

local M = {}

local function ai() return require("async_inspect") end

local tty_cache

local function stdout_is_tty()
  if tty_cache == nil then
    -- luv tells without a shell, but only when the program already uses it:
    -- loading it here would start a loop the program never asked for
    local uv = package.loaded["luv"]
    if type(uv) == "table" and uv.guess_handle then
      tty_cache = uv.guess_handle(1) == "tty"
    else
      tty_cache = os.execute("[ -t 1 ]") == true
    end
  end
  return tty_cache
end

--- Whether reports use colour by default: stdout is a terminal and NO_COLOR is unset.
-- @treturn boolean
function M.default_color()
  local no = os.getenv("NO_COLOR")
  if no ~= nil and no ~= "" then return false end
  return stdout_is_tty()
end

--- Whether reports use ASCII by default: the locale is not UTF-8, or ASYNC_INSPECT_ASCII is set.
-- @treturn boolean
function M.default_ascii()
  local forced = os.getenv("ASYNC_INSPECT_ASCII")
  if forced ~= nil and forced ~= "" and forced ~= "0" then return true end
  local loc = os.getenv("LC_ALL") or os.getenv("LC_CTYPE") or os.getenv("LANG") or ""
  if loc == "" then return false end -- unset locale: modern terminals are UTF-8
  return not loc:upper():find("UTF%-?8")
end

local function options(fname, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #1 to '%s' (table expected, got %s)"):format(fname, type(opts)), 3)
  end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  if o.color == nil then o.color = M.default_color() end
  if o.ascii == nil then o.ascii = M.default_ascii() end
  return o
end

local function join(lines) return table.concat(lines, "\n") end

-- the summary needs the counters only: no task tables, whatever their number
local function counters_snapshot()
  local m = ai()
  return { t = m.now(), stats = m.stats(), tasks = {} }
end

--- The summary box: total tasks, active (running/blocked), completed, failed, events, duration.
-- @tparam[opt] table opts `{ascii=, color=, snapshot=}`
-- @treturn string
function M.summary(opts)
  local o = options("summary", opts)
  return join(require("async_inspect.views.summary").render(o.snapshot or counters_snapshot(), o))
end

--- One line summary.
-- @tparam[opt] table opts `{snapshot=}`
-- @treturn string
function M.compact(opts)
  local o = options("compact", opts)
  return require("async_inspect.views.summary").compact(o.snapshot or counters_snapshot())
end

--- The timeline listing, one event a line.
-- @tparam[opt] table opts `{task=id, limit=n, width=n, color=, snapshot=}`
-- @treturn string
function M.timeline(opts)
  local o = options("timeline", opts)
  return join(require("async_inspect.views.timeline").render(
    o.snapshot or ai().snapshot{ events = true }, o))
end

--- One task in detail: figures, resumes, await points, where it is suspended, error.
-- @param id task id or coroutine
-- @tparam[opt] table opts `{color=, ascii=, width=, snapshot=}`
-- @treturn string
function M.task(id, opts)
  if type(id) == "thread" then
    local info = ai().task_info(id)
    if info == nil then error("bad argument #1 to 'task' (coroutine is not tracked)", 2) end
    id = info.id
  elseif math.type(id) ~= "integer" then
    error(("bad argument #1 to 'task' (task id or coroutine expected, got %s)"):format(type(id)), 2)
  end
  local o = options("task", opts)
  local snap = o.snapshot or ai().snapshot{ events = true }
  o.id = id
  o.width = o.width or 100
  o.height = o.height or 1000
  return join(require("async_inspect.views.detail").render(snap, o))
end

--- The concurrency view: a Gantt chart, one row per task.
-- @tparam[opt] table opts `{from=ns, to=ns, filter=pattern|function, width=n, color=, ascii=}`
-- @treturn string
function M.gantt(opts)
  local o = options("gantt", opts)
  return join(require("async_inspect.views.gantt").gantt(o.snapshot or ai().snapshot{ events = true }, o))
end

--- The task tree (parents and children).
-- @tparam[opt] table opts `{color=, ascii=, width=}`
-- @treturn string
function M.tree(opts)
  local o = options("tree", opts)
  o.width = o.width or 120
  o.height = o.height or 100000
  return join(require("async_inspect.views.tree").render(o.snapshot or ai().snapshot(), o))
end

-- print_ twins
for _, name in ipairs({ "summary", "compact", "timeline", "task", "gantt", "tree" }) do
  local fn = M[name]
  M["print_" .. name] = function(...)
    io.stdout:write(fn(...), "\n")
  end
end

return M

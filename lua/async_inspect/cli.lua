--- The `async-inspect` command: run a Lua script under inspection and say at exit what
-- needs a person's attention; replay a recording, attach to a running program, export a
-- recording. `bin/async-inspect` is a launcher that calls `main`; everything else is here.
--
--     async-inspect run [options] script.lua [args...]
--     async-inspect replay FILE
--     async-inspect console HOST:PORT
--     async-inspect export RECORDING --to chrome|html|json|csv|folded [-o FILE]
--
-- `run` installs the hooks before the script's first line and keeps the script's `arg`
-- table, `...`, output and exit status as `lua5.4 script.lua args...` would (`os.exit`
-- included). When the script returns having loaded luv without running its loop, the
-- loop is run, as luvit does, so that pending callbacks complete. Then the report goes to
-- stderr, so the program's stdout stays clean: a summary and every finding (failed tasks
-- with their error and traceback, stuck and deadlocked tasks with the dump, long polls
-- and the other lints of `ai.diagnose()`), or one line saying that all is well.
-- See docs/cli.md.
-- @module async_inspect.cli

local M = {}

--- Exit status of a usage error.
M.EXIT_USAGE = 2

--- The usage text (`--help`).
M.USAGE = [[
usage: async-inspect run [options] script.lua [args...]
       async-inspect replay FILE
       async-inspect console HOST:PORT
       async-inspect export RECORDING --to chrome|html|json|csv|folded [-o FILE]
       async-inspect --help | --version

run: run a Lua script with every coroutine tracked as a task; at exit, print (on
stderr) a summary and every finding that needs attention, or that all is well.
The script's arguments, output and exit status are kept.

run options (before the script name):
  --timeline       print the event timeline at exit
  --dump           print the dump of every live task at exit
  --profile        print the profile report (statistics, lints) at exit
  --chrome FILE    write a Chrome/Perfetto trace at exit
  --html FILE      write the self-contained HTML report at exit
  --folded FILE    write folded stacks (flamegraph input) at exit
  --json FILE      write tasks and events as JSON at exit
  --record FILE    record the run as it happens (async-inspect replay FILE)
  --tui            show the live dashboard (needs a terminal; q quits)
  --serve PORT     serve the inspector on 127.0.0.1:PORT (async-inspect console)
  --quiet          print findings only: nothing at all when all is well
  --               end of the options

replay FILE        browse a recording in the dashboard, with a time cursor
console HOST:PORT  the dashboard of a program running with --serve or ai.serve
export RECORDING   convert a recording: --to chrome|html|json|csv|folded, -o FILE
                   (default: next to the recording; -o - writes to stdout)

Settings come from the environment (ASYNC_INSPECT_PRESET=production,
ASYNC_INSPECT_SAMPLE, ASYNC_INSPECT_MAX_TASKS, ...): see docs/configuration.md.
]]

--- The usage lines printed after a usage error.
M.SYNOPSIS = M.USAGE:match("^(.-\n)\n") .. "(async-inspect --help tells more)\n"

local format = string.format

local function write_err(...)
  io.stderr:write(...)
end

-- parsing ------------------------------------------------------------------------------

-- run options: flag -> option name; options taking a value
local RUN_FLAGS = {
  ["--timeline"] = "timeline", ["--dump"] = "dump", ["--profile"] = "profile",
  ["--tui"] = "tui", ["--quiet"] = "quiet",
}
local RUN_VALUES = {
  ["--chrome"] = "chrome", ["--html"] = "html", ["--folded"] = "folded",
  ["--json"] = "json", ["--record"] = "record", ["--serve"] = "serve",
}

--- Formats of `export --to`.
M.EXPORT_FORMATS = { chrome = true, html = true, json = true, csv = true, folded = true }

local function check_argv(argv, fname)
  if type(argv) ~= "table" then
    error(format("bad argument #1 to '%s' (table expected, got %s)", fname, type(argv)), 3)
  end
end

--- Parse `HOST:PORT`, `[v6]:PORT` or `PORT` (host 127.0.0.1).
-- @tparam string s
-- @treturn string|nil host
-- @treturn integer|string port, or an error message when the host is nil
function M.parse_address(s)
  if type(s) ~= "string" then
    error("bad argument #1 to 'parse_address' (string expected, got " .. type(s) .. ")", 2)
  end
  local host, port = s:match("^%[(.+)%]:(%d+)$")
  if not host then host, port = s:match("^([^:]+):(%d+)$") end
  if not host and s:match("^%d+$") then host, port = "127.0.0.1", s end
  port = port and math.tointeger(tonumber(port))
  if not host or not port or port < 0 or port > 65535 then
    return nil, format("'%s' is not HOST:PORT or PORT (a port is 0 to 65535)", s)
  end
  return host, port
end

-- "--name=value" or "--name value": the value and the next index
local function option_value(argv, i, word)
  local name, inline = word:match("^(%-%-[%w-]+)=(.*)$")
  if name then return name, inline, i + 1 end
  return word, argv[i + 1], i + 2
end

local function parse_run(argv, first)
  local opts, i = {}, first
  while i <= #argv do
    local word = argv[i]
    if word == "--" then
      i = i + 1
      break
    elseif RUN_FLAGS[word] then
      opts[RUN_FLAGS[word]] = true
      i = i + 1
    elseif word:sub(1, 2) == "--" then
      local name, value, next_i = option_value(argv, i, word)
      local key = RUN_VALUES[name]
      if not key then return nil, format("unknown option '%s'", word) end
      if value == nil or value == "" then return nil, format("option '%s' needs a value", name) end
      if key == "serve" then
        local host, port = M.parse_address(value)
        if not host then return nil, "--serve: " .. port end
        opts.serve = { host = host, port = port }
      else
        opts[key] = value
      end
      i = next_i
    elseif word:sub(1, 1) == "-" and word ~= "-" then
      return nil, format("unknown option '%s'", word)
    else
      break
    end
  end
  if argv[i] == nil then return nil, "run: no script given" end
  local args = table.move(argv, i + 1, #argv, 1, {})
  return { name = "run", options = opts, script = argv[i], script_index = i, args = args }
end

local function parse_export(argv, first)
  local cmd, i = { name = "export" }, first
  while i <= #argv do
    local word = argv[i]
    if word == "--to" or word:match("^%-%-to=") then
      local _, value, next_i = option_value(argv, i, word)
      if not value or value == "" then return nil, "option '--to' needs a format" end
      if not M.EXPORT_FORMATS[value] then
        return nil, format("unknown format '%s' (chrome, html, json, csv or folded)", value)
      end
      cmd.format, i = value, next_i
    elseif word == "-o" or word == "--output" or word:match("^%-%-output=") then
      local _, value, next_i = option_value(argv, i, word)
      if not value or value == "" then return nil, format("option '%s' needs a file name", word) end
      cmd.output, i = value, next_i
    elseif word:sub(1, 1) == "-" and word ~= "-" then
      return nil, format("unknown option '%s'", word)
    elseif cmd.recording then
      return nil, format("export: unexpected argument '%s'", word)
    else
      cmd.recording, i = word, i + 1
    end
  end
  if not cmd.recording then return nil, "export: no recording given" end
  if not cmd.format then return nil, "export: --to FORMAT is required" end
  if cmd.format == "csv" and cmd.output == "-" then
    return nil, "export: csv writes two files and cannot go to stdout"
  end
  return cmd
end

local function one_operand(argv, name, what)
  if argv[2] == nil then return nil, format("%s: no %s given", name, what) end
  if argv[3] ~= nil then return nil, format("%s: unexpected argument '%s'", name, argv[3]) end
  if argv[2]:sub(1, 1) == "-" then return nil, format("unknown option '%s'", argv[2]) end
  return argv[2]
end

--- Parse the command line (the launcher's `arg`, from index 1).
-- @tparam table argv
-- @treturn table|nil the command: `{name="run", options=, script=, script_index=, args=}`,
-- `{name="replay", file=}`, `{name="console", host=, port=}`,
-- `{name="export", recording=, format=, output=}`, `{name="help"}` or `{name="version"}`
-- @treturn string|nil the usage error
-- @usage local cmd, err = cli.parse{"run", "--dump", "app.lua"}
function M.parse(argv)
  check_argv(argv, "parse")
  local first = argv[1]
  if first == nil then return nil, "no command given" end
  if first == "--help" or first == "-h" or first == "help" then return { name = "help" } end
  if first == "--version" or first == "-v" then return { name = "version" } end
  if first == "run" then return parse_run(argv, 2) end
  if first == "export" then return parse_export(argv, 2) end
  if first == "replay" then
    local file, err = one_operand(argv, "replay", "recording")
    if not file then return nil, err end
    return { name = "replay", file = file }
  end
  if first == "console" then
    local addr, err = one_operand(argv, "console", "HOST:PORT")
    if not addr then return nil, err end
    local host, port = M.parse_address(addr)
    if not host then return nil, "console: " .. port end
    return { name = "console", host = host, port = port }
  end
  if first:sub(1, 1) == "-" then return nil, format("unknown option '%s'", first) end
  return nil, format("unknown command '%s'", first)
end

--- The script's `arg` table: the launcher's, shifted so that the script is at index 0,
-- its arguments at 1..n and everything before it (interpreter, launcher, command,
-- options) at negative indices, as `lua5.4` itself does.
-- @tparam table argv the launcher's `arg`
-- @tparam integer script_index where the script name is in `argv`
-- @treturn table
function M.script_arg(argv, script_index)
  check_argv(argv, "script_arg")
  if math.type(script_index) ~= "integer" or argv[script_index] == nil then
    error("bad argument #2 to 'script_arg' (index of the script expected)", 2)
  end
  local lo = 0
  while argv[lo - 1] ~= nil do lo = lo - 1 end
  local out = {}
  for i = lo, #argv do out[i - script_index] = argv[i] end
  return out
end

-- the interpreter's name, as lua.c prints it before an error message
local function progname(argv)
  local lo = 0
  while argv[lo - 1] ~= nil do lo = lo - 1 end
  return lo < 0 and argv[lo] or "lua5.4"
end

-- modules ----------------------------------------------------------------------------------

-- A module that may not be there (the options' modules are optional parts):
-- the module, or nil and a message telling whether it is missing or broken.
local function load_module(name)
  local loaded = package.loaded[name]
  if loaded ~= nil then return loaded end
  local ok, mod = pcall(require, name)
  if ok then return mod end
  if package.searchpath(name, package.path) == nil and package.searchpath(name, package.cpath) == nil then
    return nil, format("module %s is not installed", name)
  end
  return nil, format("module %s failed to load: %s", name, tostring(mod))
end

-- what each run option needs
local OPTION_MODULES = {
  timeline = "async_inspect.reporter", dump = "async_inspect.where",
  profile = "async_inspect.profile", chrome = "async_inspect.export",
  html = "async_inspect.export", folded = "async_inspect.export", json = "async_inspect.export",
  record = "async_inspect.record", tui = "async_inspect.tui", serve = "async_inspect.remote",
}

-- modules that register diagnosers (ai._diagnosers) when loaded
M.DIAGNOSER_MODULES = {
  "async_inspect.where", "async_inspect.profile", "async_inspect.deadlock", "async_inspect.sync",
}

-- is file descriptor fd a terminal? (luv when loaded, else the shell)
local function isatty(fd)
  local uv = package.loaded.luv
  if type(uv) == "table" and uv.guess_handle then return uv.guess_handle(fd) == "tty" end
  return os.execute(format("[ -t %d ]", fd)) == true
end

local function style_options()
  local no_color = os.getenv("NO_COLOR")
  local color = (no_color == nil or no_color == "") and isatty(2)
  local ok, reporter = pcall(require, "async_inspect.reporter")
  local ascii = ok and reporter.default_ascii() or false
  return { color = color, ascii = ascii }
end

-- the report ------------------------------------------------------------------------------

local LIVE = { suspended = true, pending = true }
local SEVERITY_RANK = { error = 1, warn = 2 }

local function sanitize(s)
  return require("async_inspect.views.util").sanitize(s)
end

local function duration(ns)
  return require("async_inspect.views.util").duration(ns)
end

-- "file.lua:12: message" -> "file.lua:12"
local function error_location(err)
  if type(err) ~= "string" then return nil end
  return err:match("^([^%s:]+:%d+):")
end

-- traceback text -> indented lines
local function traceback_lines(tb, indent)
  local lines = {}
  for line in tostring(tb):gmatch("[^\n]+") do
    local tabs, rest = line:match("^(\t*)(.*)$")
    lines[#lines + 1] = indent .. ("    "):rep(#tabs) .. sanitize(rest)
  end
  return lines
end

local function failed_item(t)
  local lines = {}
  if t.traceback then
    for _, l in ipairs(traceback_lines(t.traceback, "")) do lines[#lines + 1] = l end
  elseif t.error == nil then
    lines[1] = "(the error was not kept)"
  end
  return {
    severity = "error", kind = "failed", task = t.id, name = t.name,
    loc = error_location(t.error) or t.created_at,
    message = t.error and ("error: " .. t.error) or "failed", details = lines, notes = {},
  }
end

local function finding_item(f)
  return {
    severity = f.severity, kind = f.kind or "finding", task = f.task, name = f.name, loc = f.loc,
    message = f.message, recommendation = f.recommendation, details = {}, notes = {},
    live = f.task ~= nil,
  }
end

-- tasks left suspended, never started, or collected while suspended (nothing could resume
-- them any more) or before they ever ran, grouped by state and place
local UNFINISHED = { suspended = true, pending = true, dropped = true }

local function unfinished_text(g, t, n, now)
  local several = n > 1 and format("%d tasks were ", n) or ""
  local awaiting = (g.await and (" awaiting " .. g.await) or "")
      .. (g.wait and (" (waits for " .. g.wait .. ")") or "")
  if g.state == "pending" then
    return format("%screated at %s and never started when the program ended (for %s)",
      several, g.at, duration(now - (t.created or now)))
  elseif g.state == "dropped" and g.never_ran then
    return format("%screated at %s and garbage-collected before %s ever ran", several, g.at,
      n > 1 and "they" or "it")
  elseif g.state == "dropped" then
    return format("%sleft suspended at %s%s and garbage-collected: nothing could resume it any more",
      several, g.at, awaiting)
  end
  return format("%sleft suspended at %s%s when the program ended (for %s)",
    several, g.at, awaiting, duration(now - (t.last_change or t.created or now)))
end

local function unfinished_items(snap, covered)
  local groups, order = {}, {}
  for _, t in ipairs(snap.tasks) do
    if UNFINISHED[t.state] and not covered[t.id] then
      local never_ran = t.state == "pending"
        or (t.state == "dropped" and t.where == nil and (t.resumes or 0) == 0)
      local at = never_ran and (t.created_at or "?") or (t.where or "?")
      local key = table.concat({ t.state, at, t.await or "", t.wait or "", tostring(never_ran) }, "\0")
      local g = groups[key]
      if not g then
        g = { tasks = {}, state = t.state, at = at, await = t.await, wait = t.wait, never_ran = never_ran }
        groups[key] = g
        order[#order + 1] = g
      end
      g.tasks[#g.tasks + 1] = t
    end
  end
  local items = {}
  for _, g in ipairs(order) do
    local t, n = g.tasks[1], #g.tasks
    items[#items + 1] = {
      severity = "warn", kind = g.state == "dropped" and "dropped" or "unfinished",
      task = t.id, name = t.name, loc = g.at, count = n, live = LIVE[g.state] == true,
      details = {}, notes = {}, message = unfinished_text(g, t, n, snap.t),
      recommendation = "if it waits for something that never came, that is the bug; "
        .. "a generator dropped on purpose can be closed with coroutine.close to say so",
    }
  end
  return items
end

local function long_poll_item(snap)
  local settings = snap.settings or {}
  local ms = settings.long_poll_ns and format("%g ms", settings.long_poll_ns / 1e6) or "the threshold"
  local n = snap.stats.long_polls
  return {
    severity = "warn", kind = "long_poll", details = {}, notes = {},
    message = format("%d resume%s ran longer than %s (long_poll_ms) without yielding",
      n, n == 1 and "" or "s", ms),
    recommendation = "a long resume holds up every other task: yield inside long loops, "
      .. "or move the work to a thread (uv.new_work); --profile names the tasks",
  }
end

--- Everything that needs a person's attention, from a snapshot and the findings of
-- `ai.diagnose()`: failed tasks (with their error and traceback, and the findings about
-- them as notes), each warning or error finding, tasks left unfinished that no finding
-- mentions, and long polls counted by the core when no diagnoser reported them.
-- Errors come first.
-- @tparam table snap snapshot (with `stats` and `tasks`)
-- @tparam table findings as returned by `ai.diagnose()`
-- @treturn table items `{severity=, kind=, task=, name=, loc=, message=, recommendation=,
-- details={lines}, notes={findings}, count=, live=}`
-- @treturn integer number of info findings left out
function M.gather(snap, findings)
  if type(snap) ~= "table" or type(snap.tasks) ~= "table" then
    error("bad argument #1 to 'gather' (snapshot expected, got " .. type(snap) .. ")", 2)
  end
  if type(findings) ~= "table" then
    error("bad argument #2 to 'gather' (table expected, got " .. type(findings) .. ")", 2)
  end
  local items, by_failed, covered, infos, long_polls = {}, {}, {}, 0, false
  for _, t in ipairs(snap.tasks) do
    if t.state == "failed" then
      local item = failed_item(t)
      by_failed[t.id] = item
      items[#items + 1] = item
    end
  end
  for _, f in ipairs(findings) do
    if SEVERITY_RANK[f.severity] == nil then
      infos = infos + 1
    elseif f.task and by_failed[f.task] then
      local notes = by_failed[f.task].notes
      notes[#notes + 1] = f
    else
      items[#items + 1] = finding_item(f)
      if f.task then covered[f.task] = true end
    end
    if f.kind == "long_poll" then long_polls = true end
  end
  for _, item in ipairs(unfinished_items(snap, covered)) do items[#items + 1] = item end
  if not long_polls and (snap.stats.long_polls or 0) > 0 and not package.loaded["async_inspect.profile"] then
    items[#items + 1] = long_poll_item(snap)
  end
  for i, item in ipairs(items) do item.order = i end
  table.sort(items, function(a, b)
    local ra, rb = SEVERITY_RANK[a.severity], SEVERITY_RANK[b.severity]
    if ra ~= rb then return ra < rb end
    return a.order < b.order
  end)
  return items, infos
end

local function item_lines(item, style, util)
  local sev = item.severity == "error" and "ERROR" or "WARN "
  local head = { util.paint(sev, item.severity == "error" and "red" or "yellow", style.color),
    " ", sanitize(item.kind) }
  if item.task then
    local name = item.name and item.name ~= "" and (" " .. sanitize(item.name)) or ""
    head[#head + 1] = "  task #" .. tostring(item.task) .. name
    if item.count and item.count > 1 then head[#head + 1] = format(" (and %d more)", item.count - 1) end
  end
  if item.loc then head[#head + 1] = "  at " .. sanitize(item.loc) end
  local lines = { table.concat(head) }
  local arrow = style.ascii and "->" or "→"
  if item.message then lines[#lines + 1] = "    " .. sanitize(item.message) end
  for _, l in ipairs(item.details) do lines[#lines + 1] = "    " .. l end
  if item.recommendation then lines[#lines + 1] = "    " .. arrow .. " " .. sanitize(item.recommendation) end
  for _, n in ipairs(item.notes) do
    lines[#lines + 1] = format("    %s %s: %s", n.severity == "error" and "ERROR" or "WARN",
      sanitize(n.kind or "finding"), sanitize(n.message or ""))
    if n.recommendation then lines[#lines + 1] = "    " .. arrow .. " " .. sanitize(n.recommendation) end
  end
  return lines
end

--- The one line printed when no task needs attention: "all is well" when the program
-- also exited with status 0.
-- @tparam table snap snapshot
-- @tparam[opt] integer infos info findings left out
-- @tparam[opt] integer status the program's exit status (default 0)
-- @treturn string
function M.all_well_line(snap, infos, status)
  if type(snap) ~= "table" then
    error("bad argument #1 to 'all_well_line' (snapshot expected, got " .. type(snap) .. ")", 2)
  end
  if infos ~= nil and math.type(infos) ~= "integer" then
    error("bad argument #2 to 'all_well_line' (integer expected, got " .. type(infos) .. ")", 2)
  end
  if status ~= nil and math.type(status) ~= "integer" then
    error("bad argument #3 to 'all_well_line' (integer expected, got " .. type(status) .. ")", 2)
  end
  local s = snap.stats or {}
  local ended = {}
  for _, k in ipairs({ "completed", "cancelled", "dropped" }) do
    if (s[k] or 0) > 0 then ended[#ended + 1] = format("%d %s", s[k], k) end
  end
  local tasks = (s.tasks or 0) == 0 and "no task"
      or format("%d task%s (%s)", s.tasks, s.tasks == 1 and "" or "s", table.concat(ended, ", "))
  local verdict = (status or 0) == 0 and "all is well"
      or format("no task needs attention (the program exited with status %d)", status)
  return format("async-inspect: %s: %s, %d events, %s%s", verdict, tasks, s.events or 0,
    duration(s.uptime or snap.t), (infos or 0) > 0 and format(", %d notes", infos) or "")
end

--- The report printed at exit: the summary box (unless `quiet`), a headline and every
-- item, or the all-is-well line.
-- @tparam table snap snapshot
-- @tparam table items from `gather`
-- @tparam[opt] table opts `quiet`, `color`, `ascii`, `infos` (count of info findings),
-- `summary` (lines of the summary box), `status` (the program's exit status)
-- @treturn table lines (empty when quiet and all is well)
function M.report_lines(snap, items, opts)
  if type(snap) ~= "table" then
    error("bad argument #1 to 'report_lines' (snapshot expected, got " .. type(snap) .. ")", 2)
  end
  if type(items) ~= "table" then
    error("bad argument #2 to 'report_lines' (table expected, got " .. type(items) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #3 to 'report_lines' (table expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  local util = require("async_inspect.views.util")
  if #items == 0 then
    if opts.quiet then return {} end
    return { M.all_well_line(snap, opts.infos, opts.status) }
  end
  local lines = {}
  if not opts.quiet and opts.summary then
    for _, l in ipairs(opts.summary) do lines[#lines + 1] = l end
  end
  local errors = 0
  for _, item in ipairs(items) do
    if item.severity == "error" then errors = errors + 1 end
  end
  lines[#lines + 1] = format("async-inspect: %d finding%s need%s attention (%d error%s, %d warning%s)",
    #items, #items == 1 and "" or "s", #items == 1 and "s" or "", errors, errors == 1 and "" or "s",
    #items - errors, #items - errors == 1 and "" or "s")
  for _, item in ipairs(items) do
    lines[#lines + 1] = ""
    for _, l in ipairs(item_lines(item, opts, util)) do lines[#lines + 1] = l end
  end
  return lines
end

-- the dump of the live tasks that items point at (and of nothing else)
local function dump_lines(ai, snap, items, style)
  local wanted = {}
  for _, item in ipairs(items) do
    if item.live and item.task then wanted[item.task] = true end
  end
  if next(wanted) == nil then return {} end
  local tasks = {}
  for _, t in ipairs(snap.tasks) do
    if wanted[t.id] or not LIVE[t.state] then tasks[#tasks + 1] = t end
  end
  -- every task of a group of unfinished tasks shares its stack: the first stands for all
  local sub = { t = snap.t, stats = snap.stats, tasks = tasks }
  for k, v in pairs(snap) do if sub[k] == nil then sub[k] = v end end
  local where = package.loaded["async_inspect.where"]
  local text
  if where and where.dump then
    local ok, res = pcall(where.dump, { snapshot = sub, color = style.color, ascii = style.ascii })
    if ok then text = res end
  end
  if text == nil then
    local threads = ai.core.threads and ai.core.threads() or {}
    for _, t in ipairs(tasks) do
      local co = threads[t.id]
      if co and t.traceback_now == nil and t.state == "suspended" then t.traceback_now = debug.traceback(co) end
    end
    text = table.concat(require("async_inspect.views.dump").render(sub, style), "\n")
  end
  local lines = { "" }
  for l in text:gmatch("[^\n]*") do lines[#lines + 1] = l end
  while lines[#lines] == "" do lines[#lines] = nil end
  return lines
end

-- run every diagnoser; one that fails is reported, not fatal
local function diagnose(ai, snap)
  local ok, findings = pcall(ai.diagnose, snap)
  if ok then return findings end
  findings = {}
  for i, diagnoser in ipairs(ai._diagnosers or {}) do
    local dok, res = pcall(diagnoser, snap)
    if dok and type(res) == "table" then
      for _, f in ipairs(res) do findings[#findings + 1] = f end
    elseif not dok then
      write_err(format("async-inspect: diagnoser #%d failed: %s\n", i, tostring(res)))
    end
  end
  return findings
end

-- running a script ---------------------------------------------------------------------------

-- The message lua.c prints for an error object, with the standard traceback.
local function message_handler(e)
  local msg
  if type(e) == "string" or math.type(e) then
    msg = tostring(e)
  else
    local mt = debug.getmetatable(e)
    if mt and mt.__tostring then
      local s = mt.__tostring(e)
      if type(s) == "string" then return { text = s } end
    end
    msg = format("(error object is a %s value)", type(e))
  end
  return { text = debug.traceback(msg, 2), traceback = true }
end

-- Our frames below the script's main chunk are not the program's: end the traceback there,
-- as lua5.4 would.
local function trim_traceback(text)
  local keep = {}
  for line in (text .. "\n"):gmatch("(.-)\n") do
    keep[#keep + 1] = line
    if line:match(": in main chunk$") then
      keep[#keep + 1] = "\t[C]: in ?"
      break
    end
  end
  return table.concat(keep, "\n")
end

local Session = {}
Session.__index = Session

-- Let `require "uv"` find luv (luvit-style code) when no real `uv` module exists, and note
-- whether the program runs the luv loop itself.
function Session:watch_luv()
  local session = self
  local function wrap(uv)
    if type(uv) ~= "table" or type(uv.run) ~= "function" or session.uv == uv then return uv end
    session.uv = uv
    local run = uv.run
    uv.run = function(...)
      session.loop_ran = true
      return run(...)
    end
    session.uv_run = run
    return uv
  end
  if package.loaded.luv then
    wrap(package.loaded.luv)
  elseif package.searchpath("luv", package.cpath) then
    package.preload.luv = function()
      package.preload.luv = nil
      return wrap(require("luv"))
    end
  end
  if package.preload.uv == nil and package.loaded.uv == nil
      and package.searchpath("uv", package.path) == nil and package.searchpath("uv", package.cpath) == nil
      and package.searchpath("luv", package.cpath) then
    package.preload.uv = function() return require("luv") end
  end
end

-- the options' modules, loaded before the script so that a missing one stops us early
function Session:check_modules()
  for key in pairs(self.options) do
    local name = OPTION_MODULES[key]
    if name then
      local mod, err = load_module(name)
      if not mod then return nil, format("--%s is not available: %s", key, err) end
    end
  end
  return true
end

local function pick_tui_fd()
  if isatty(0) and isatty(1) then return 1 end
  if isatty(0) and isatty(2) then return 2 end
  return nil
end

-- what must run before the script's first line: recorder, server, dashboard
function Session:start_options()
  local o = self.options
  if o.record then
    local ok, rec = pcall(require("async_inspect.record").record, o.record)
    if not ok then return nil, "--record: " .. tostring(rec) end
    self.recorder = rec
  end
  if o.serve then
    local ok, srv = pcall(require("async_inspect.remote").serve, { host = o.serve.host, port = o.serve.port })
    if not ok then return nil, "--serve: " .. tostring(srv) end
    self.server = srv
    if not o.quiet then
      write_err(format("async-inspect: serving on %s:%d (async-inspect console %s:%d)\n",
        srv.host, srv.port, srv.host, srv.port))
    end
  end
  if o.tui then
    local fd = pick_tui_fd()
    if not fd then return nil, "--tui needs a terminal (standard input and output or error)" end
    local ok, dash = pcall(require("async_inspect.tui").start, { fd_out = fd })
    if not ok then return nil, "--tui: " .. tostring(dash) end
    self.dashboard = dash
  end
  return true
end

-- one step of the exit work: a failure is reported and the next step still runs
local function step(what, fn)
  local ok, err = pcall(fn)
  if not ok then write_err(format("async-inspect: %s failed: %s\n", what, tostring(err))) end
end

-- give the terminal back before anything else is written to it
function Session:stop_dashboard()
  local dash = self.dashboard
  if dash == nil then return end
  self.dashboard = nil
  step("--tui", function() dash:stop() end)
end

-- undo what start_options did when the run does not go ahead
function Session:abort()
  self:stop_dashboard()
  if self.recorder then pcall(self.recorder.stop, self.recorder) end
  if self.server then pcall(self.server.close, self.server) end
  self.recorder, self.server = nil, nil
end

function Session:write_exports()
  local o, ai = self.options, self.ai
  local wrote = {}
  local function export(flag, label, fn)
    if not o[flag] then return end
    step("--" .. flag, function()
      local export_mod = require("async_inspect.export")
      fn(export_mod, export_mod.source_live(ai), o[flag])
      wrote[#wrote + 1] = format("async-inspect: wrote %s (%s)", o[flag], label)
    end)
  end
  export("chrome", "Chrome trace: ui.perfetto.dev or chrome://tracing", function(e, src, path)
    e.chrome_trace(path, { source = src })
  end)
  export("html", "HTML report", function(e, src, path) e.html(path, { source = src }) end)
  export("folded", "folded stacks", function(e, src, path) e.folded({ path = path, source = src }) end)
  export("json", "JSON", function(e, src, path) e.json(path, { source = src }) end)
  if not o.quiet then
    for _, line in ipairs(wrote) do write_err(line, "\n") end
  end
end

local function as_text(v)
  if type(v) == "table" then return table.concat(v, "\n") end
  return tostring(v)
end

function Session:write_sections(style)
  local o, ai = self.options, self.ai
  if o.timeline then
    step("--timeline", function()
      write_err(ai.report.timeline({ color = style.color, ascii = style.ascii }), "\n")
    end)
  end
  if o.dump then
    step("--dump", function()
      write_err(require("async_inspect.where").dump({ color = style.color, ascii = style.ascii }))
    end)
  end
  if o.profile then
    step("--profile", function()
      local text = ai.profile.report({ color = style.color, ascii = style.ascii })
      if text ~= nil then write_err(as_text(text), "\n") end
    end)
  end
end

function Session:write_report(style, status)
  local ai = self.ai
  for _, name in ipairs(M.DIAGNOSER_MODULES) do load_module(name) end
  local snap = ai.snapshot({ events = true })
  snap.settings = ai.settings()
  local where = package.loaded["async_inspect.where"]
  if where and where.annotate then pcall(where.annotate, snap, { locals = false }) end
  local items, infos = M.gather(snap, diagnose(ai, snap))
  local summary
  if #items > 0 and not self.options.quiet then
    local ok, text = pcall(ai.report.summary, { snapshot = snap, color = style.color, ascii = style.ascii })
    if ok then summary = { text } end
  end
  local lines = M.report_lines(snap, items,
    { quiet = self.options.quiet, color = style.color, ascii = style.ascii, infos = infos,
      summary = summary, status = status })
  for _, l in ipairs(dump_lines(ai, snap, items, style)) do lines[#lines + 1] = l end
  if #lines > 0 then write_err(table.concat(lines, "\n"), "\n") end
end

-- At exit (the script returned, failed or called os.exit): stop what we started, write the
-- files asked for and the report. Once.
function Session:finish(status)
  if self.finished then return end
  self.finished = true
  -- what the program no longer references must not turn into "dropped" tasks while we
  -- look: the report shows the tasks as the program left them
  local gc_was_running = collectgarbage("isrunning")
  collectgarbage("stop")
  io.stdout:flush()
  self:stop_dashboard()
  self.ai.disable()
  if self.recorder then
    step("--record", function()
      self.recorder:stop()
      if self.recorder.error then error(self.recorder.error, 0) end
    end)
  end
  local style = style_options()
  self:write_exports()
  self:write_sections(style)
  step("the report", function() self:write_report(style, status) end)
  if self.server then step("--serve", function() self.server:close() end) end
  if gc_was_running then collectgarbage("restart") end
end

-- os.exit(code, close) as the script sees it: the report first, then the real exit
function Session:hook_exit()
  local real_exit = os.exit
  self.real_exit = real_exit
  os.exit = function(code, close) -- luacheck: ignore 122
    local status = code == nil and 0 or type(code) == "boolean" and (code and 0 or 1)
        or math.tointeger(tonumber(code))
    if status == nil then
      -- the message os.exit itself gives, at the script's line
      error(format("bad argument #1 to 'exit' (%s)", tonumber(code)
        and "number has no integer representation" or ("number expected, got " .. type(code))), 2)
    end
    self:finish(status)
    os.exit = real_exit -- luacheck: ignore 122
    return real_exit(code, close)
  end
end

function Session:unhook_exit()
  if self.real_exit then os.exit = self.real_exit end -- luacheck: ignore 122
end

-- after a script that loaded luv and never ran the loop: run it, as luvit does
function Session:run_pending_loop()
  local uv = rawget(package.loaded, "luv")
  if type(uv) ~= "table" or self.loop_ran then return end
  local run = self.uv_run or uv.run
  local ok, err = pcall(run)
  if not ok then write_err("async-inspect: the luv loop stopped on an error: ", tostring(err), "\n") end
end

local function open_script(path)
  if path == "-" then return loadfile(nil) end  -- standard input, as lua5.4 reads it
  local f, err = io.open(path, "rb")
  if not f then return nil, nil, err end
  f:close()
  return loadfile(path)
end

--- Run a script under inspection (the `run` command).
-- @tparam table cmd from `parse`
-- @tparam table argv the launcher's `arg` (for the script's `arg` table)
-- @treturn integer exit status
function M.run(cmd, argv)
  if type(cmd) ~= "table" or cmd.name ~= "run" then
    error("bad argument #1 to 'run' (a run command from parse expected)", 2)
  end
  check_argv(argv, "run")
  local chunk, load_err, open_err = open_script(cmd.script)
  if open_err then
    write_err(format("async-inspect: cannot open script '%s': %s\n", cmd.script,
      (open_err:gsub("^[^:]*: ", ""))))
    return M.EXIT_USAGE
  end
  if not chunk then
    write_err(progname(argv), ": ", load_err, "\n")
    return 1
  end
  local ai = require("async_inspect")
  ai.install()
  local session = setmetatable({ ai = ai, options = cmd.options }, Session)
  local ok, err = session:check_modules()
  if ok then ok, err = session:start_options() end
  if not ok then
    session:abort()
    write_err("async-inspect: ", err, "\n")
    return M.EXIT_USAGE
  end
  session:watch_luv()
  _G.arg = M.script_arg(argv, cmd.script_index)
  session:hook_exit()
  local status = 0
  local res = table.pack(xpcall(chunk, message_handler, table.unpack(cmd.args)))
  if res[1] then
    session:run_pending_loop()
  else
    local e = res[2]
    local text = type(e) == "table" and e.text or tostring(e)
    if type(e) == "table" and e.traceback then text = trim_traceback(text) end
    io.stdout:flush()
    session:stop_dashboard()
    write_err(progname(argv), ": ", text, "\n")
    status = 1
  end
  session:finish(status)
  session:unhook_exit()
  return status
end

-- the other commands ---------------------------------------------------------------------------

local function fail(msg)
  write_err("async-inspect: ", msg, "\n")
  return 1
end

local function readable(path)
  local f, err = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil, err
end

-- the dashboard on a source until the user quits
local function dashboard(start)
  local uv = load_module("luv")
  if not uv then return fail("the dashboard needs luv (lua-luv)") end
  if not (isatty(0) and isatty(1)) then
    return fail("the dashboard needs a terminal (standard input and output)")
  end
  local ok, err = pcall(start)
  if not ok then return fail(tostring(err)) end
  uv.run()
  return 0
end

-- The record module for command `what` reading the recording at `path`; nil and the exit
-- status when the file cannot be read (a usage error) or the module is missing.
local function record_for(what, path)
  local ok, err = readable(path)
  if not ok then
    write_err("async-inspect: cannot open recording '", path, "': ", (err:gsub("^[^:]*: ", "")), "\n")
    return nil, M.EXIT_USAGE
  end
  local record, lerr = load_module("async_inspect.record")
  if not record then return nil, fail(what .. " is not available: " .. lerr) end
  return record
end

local function replay(cmd)
  local record, status = record_for("replay", cmd.file)
  if not record then return status end
  return dashboard(function() record.replay(cmd.file) end)
end

local function console(cmd)
  local remote, err = load_module("async_inspect.remote")
  if not remote then return fail("console is not available: " .. err) end
  return dashboard(function() remote.console(cmd.host, cmd.port) end)
end

local EXTENSIONS = { chrome = ".trace.json", html = ".html", json = ".json", folded = ".folded" }

--- Where `export` writes: the output files for a recording and a format.
-- @tparam string recording path of the recording
-- @tparam string fmt chrome, html, json, csv or folded
-- @tparam[opt] string output the `-o` value
-- @treturn table paths (two for csv: tasks, events; "-" means stdout)
function M.export_paths(recording, fmt, output)
  if type(recording) ~= "string" then
    error("bad argument #1 to 'export_paths' (string expected, got " .. type(recording) .. ")", 2)
  end
  if not M.EXPORT_FORMATS[fmt] then
    error("bad argument #2 to 'export_paths' (unknown format " .. tostring(fmt) .. ")", 2)
  end
  if output ~= nil and type(output) ~= "string" then
    error("bad argument #3 to 'export_paths' (string expected, got " .. type(output) .. ")", 2)
  end
  if fmt == "csv" then
    local base = output and output:gsub("%.csv$", "") or recording:gsub("%.[^./]*$", "")
    return { base .. "-tasks.csv", base .. "-events.csv" }
  end
  if output then return { output } end
  return { (recording:gsub("%.[^./]*$", "")) .. EXTENSIONS[fmt] }
end

local function export_recording(cmd)
  local record, status = record_for("export", cmd.recording)
  if not record then return status end
  local export, eerr = load_module("async_inspect.export")
  if not export then return fail("export is not available: " .. eerr) end
  local paths = M.export_paths(cmd.recording, cmd.format, cmd.output)
  for _, p in ipairs(paths) do
    if p == cmd.recording then return fail("refusing to overwrite the recording " .. p) end
  end
  local hok, history = pcall(record.open, cmd.recording, { max_events = math.huge })
  if not hok then return fail(tostring(history)) end
  local _, last = history:range()
  local snap = history:snapshot_at(last, { events = true })
  local target = paths[1] == "-" and io.stdout or paths[1]
  local writers = {
    chrome = function() return export.chrome_trace(target, { snapshot = snap }) end,
    html = function() return export.html(target, { snapshot = snap }) end,
    json = function() return export.json(target, { snapshot = snap }) end,
    folded = function() return export.folded({ path = target, snapshot = snap }) end,
    csv = function() return export.csv(paths[1], paths[2], { snapshot = snap }) end,
  }
  local wok, werr = pcall(writers[cmd.format])
  if not wok then return fail(tostring(werr)) end
  if paths[1] ~= "-" then
    write_err(format("async-inspect: wrote %s (%d tasks, %d events%s)\n", table.concat(paths, " and "),
      #snap.tasks, #snap.events, history.complete and "" or "; the recording was cut short"))
  end
  return 0
end

local function version()
  local ok, ai = pcall(require, "async_inspect")
  local v = ok and ai._VERSION or "unknown (async_inspect not found: " .. tostring(ai) .. ")"
  io.stdout:write(format("async-inspect %s (%s)\n", v, _VERSION))
  return 0
end

--- The command: parse `argv` and run what it asks for.
-- @tparam table argv the launcher's `arg`
-- @treturn integer exit status (2 for wrong usage)
-- @usage os.exit(require("async_inspect.cli").main(arg), true)
function M.main(argv)
  check_argv(argv, "main")
  local cmd, err = M.parse(argv)
  if not cmd then
    write_err("async-inspect: ", err, "\n", M.SYNOPSIS)
    return M.EXIT_USAGE
  end
  if cmd.name == "help" then
    io.stdout:write(M.USAGE)
    return 0
  elseif cmd.name == "version" then
    return version()
  elseif cmd.name == "run" then
    return M.run(cmd, argv)
  elseif cmd.name == "replay" then
    return replay(cmd)
  elseif cmd.name == "console" then
    return console(cmd)
  end
  return export_recording(cmd)
end

return M

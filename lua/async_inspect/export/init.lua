--- Exports: Chrome/Perfetto trace, folded stacks, SVG flamegraph, JSON, CSV
-- and a self-contained HTML report.
--
-- Every exporter reads a *source*:
--
--     { tasks = {task records...},
--       iter_events = function(from_seq) -> iterator over
--                     seq, t, task, kind, loc, other, detail,
--       stats = {...}, t = now_ns }
--
-- `source_live(ai)` builds one from the running inspector and
-- `source_snapshot(snap)` from a snapshot taken with `events = true` (or
-- rebuilt from a recording). Pass it as `opts.source` (or a snapshot as
-- `opts.snapshot`); without either, the exporters read the live inspector
-- when async_inspect is loaded (that is how `ai.export.html(path)` works),
-- or the one given to `bind(ai)`.
--
-- All writers stream: events are formatted and written in chunks as they
-- are read, so the memory used does not grow with the number of events.
-- Each writer returns a summary table (`events`, `tasks`, `bytes`, ...).
-- @module async_inspect.export

local util = require("async_inspect.export.util")
local chrome = require("async_inspect.export.chrome")
local folded_mod = require("async_inspect.export.folded")
local svg_flame = require("async_inspect.export.svg_flame")
local json_mod = require("async_inspect.export.json")
local csv_mod = require("async_inspect.export.csv")
local html_mod = require("async_inspect.export.html")

-- Raise "bad argument #n to 'fname' (msg)" at the caller of the public
-- function: level 3 from a public function, 4 from a check helper it calls.
local function argerr(n, fname, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), level or 3)
end

--- Build a source from the live inspector module.
-- Task records, stats and the time are copied now; events are streamed from
-- the ring by `ai.iter_events` when the exporter reads them.
-- @tparam table ai the async_inspect module
-- @treturn table source
-- @usage local src = export.source_live(require("async_inspect"))
local function source_live(ai)
  if type(ai) ~= "table" or type(ai.iter_events) ~= "function" then
    argerr(1, "source_live", "async_inspect module expected")
  end
  return { tasks = ai.tasks(), stats = ai.stats(), t = ai.now(), iter_events = ai.iter_events }
end

--- Build a source from a snapshot (`ai.snapshot{events=true}` or one rebuilt
-- from a recording).
-- @tparam table snap snapshot with `tasks`, `events`, `stats`, `t`
-- @treturn table source
local function source_snapshot(snap)
  if type(snap) ~= "table" then
    argerr(1, "source_snapshot", "snapshot table expected, got " .. type(snap))
  end
  local events = snap.events or {}
  return {
    tasks = snap.tasks or {}, stats = snap.stats or {}, t = snap.t,
    iter_events = function(from_seq)
      local i = 0
      return function()
        repeat
          i = i + 1
          local e = events[i]
          if not e then return nil end
          if not from_seq or e.seq >= from_seq then
            return e.seq, e.t, e.task, e.kind, e.loc, e.other, e.detail
          end
        until false
      end
    end,
  }
end

local function check_opts(opts, n, fname)
  if opts == nil then return {} end
  if type(opts) ~= "table" then argerr(n, fname, "table expected, got " .. type(opts), 4) end
  return opts
end

local function valid_source(s)
  return type(s) == "table" and type(s.tasks) == "table" and type(s.iter_events) == "function"
end

local function check_target(v, n, fname)
  if not util.is_target(v) then
    argerr(n, fname, "file name or file handle expected, got " .. (io.type(v) or type(v)), 4)
  end
end

-- Run writer(f) on an opened target, closing what we opened even on error.
local function with_target(target, fname, writer)
  local f, owned
  if io.type(target) == "file" then
    f, owned = target, false
  else
    local err
    f, err = io.open(target, "wb")
    if not f then error(fname .. ": cannot open " .. target .. " (" .. tostring(err) .. ")", 3) end
    owned = true
  end
  local ok, res = pcall(writer, f)
  if owned then f:close() end
  if not ok then error(res, 0) end
  return res
end

local function make_api(default_source)
  local api = { source_live = source_live, source_snapshot = source_snapshot }

  -- The source of one call: opts.source, opts.snapshot, or the bound default.
  local function source_of(opts, n, fname)
    if opts.source ~= nil then
      if not valid_source(opts.source) then
        argerr(n, fname, "source must be a table with tasks and iter_events", 4)
      end
      return opts.source
    end
    if opts.snapshot ~= nil then
      if type(opts.snapshot) ~= "table" then argerr(n, fname, "snapshot must be a table", 4) end
      return source_snapshot(opts.snapshot)
    end
    local src = default_source()
    if src then return src end
    argerr(n, fname, "no source: pass opts.source or opts.snapshot, or load async_inspect", 4)
  end

  -- What is wrong with opts.weight, or nil.
  local function weight_error(opts)
    local wt = opts.weight
    if wt ~= nil and wt ~= "busy" and wt ~= "wait" then
      return "weight must be \"busy\" or \"wait\""
    end
  end

  -- One exporter that writes one file: check the target (argument 1), opts (argument 2)
  -- and, with `bad_opt(opts)` (what is wrong, or nil), its own options; then write the
  -- source with `writer(f, src, opts)`. The public functions tail-call it, so that the
  -- errors still name their caller.
  local function write_one(fname, path, opts, writer, bad_opt)
    check_target(path, 1, fname)
    opts = check_opts(opts, 2, fname)
    local msg = bad_opt and bad_opt(opts)
    if msg then argerr(2, fname, msg) end
    local src = source_of(opts, 2, fname)
    return with_target(path, fname, function(f) return writer(f, src, opts) end)
  end

  --- Write a Chrome Trace Event Format file (Perfetto UI, chrome://tracing,
  -- speedscope).
  -- @param path_or_file file name or open file handle
  -- @tparam[opt] table opts `source` / `snapshot`, `process_name`,
  --   `flows` (default true), `waits` (default true)
  -- @treturn table `{events=, records=, tasks=, bytes=}`
  -- @usage ai.export.chrome_trace("trace.json")
  function api.chrome_trace(path_or_file, opts)
    return write_one("chrome_trace", path_or_file, opts, chrome.write)
  end

  --- Folded stacks (`task name;await label;location weight` per line).
  -- @tparam[opt] table opts `weight` = "busy" (default) or "wait",
  --   `path` (file name or handle; when absent the text is returned),
  --   `source` / `snapshot`
  -- @treturn string|table the folded text, or a summary when written to `path`
  -- @usage io.write(ai.export.folded{weight = "wait"})
  function api.folded(opts)
    opts = check_opts(opts, 1, "folded")
    local msg = weight_error(opts)
    if msg then argerr(1, "folded", msg) end
    if opts.path ~= nil and not util.is_target(opts.path) then
      argerr(1, "folded", "path must be a file name or file handle")
    end
    local src = source_of(opts, 1, "folded")
    if opts.path == nil then
      local lines = folded_mod.lines((folded_mod.collect(src, opts.weight)))
      return #lines > 0 and (table.concat(lines, "\n") .. "\n") or ""
    end
    local res = with_target(opts.path, "folded", function(f)
      return folded_mod.write(f, src, opts)
    end)
    return res
  end

  --- Write a self-contained SVG flamegraph.
  -- @param path file name or open file handle
  -- @tparam[opt] table opts `weight` ("busy" or "wait"), `title`, `width`,
  --   `source` / `snapshot`
  -- @treturn table `{events=, frames=, bytes=, tasks=}`
  -- @usage ai.export.svg_flamegraph("busy.svg")
  function api.svg_flamegraph(path, opts)
    return write_one("svg_flamegraph", path, opts, svg_flame.write, function(o)
      local bad_width = o.width ~= nil and (type(o.width) ~= "number" or o.width < 100)
      return weight_error(o) or (bad_width and "width must be a number >= 100" or nil)
    end)
  end

  --- Write tasks and events as one JSON document (schema in docs/exports.md).
  -- @param path file name or open file handle
  -- @tparam[opt] table opts `events` (default true), `source` / `snapshot`
  -- @treturn table `{events=, tasks=, bytes=}`
  -- @usage ai.export.json("run.json")
  function api.json(path, opts)
    return write_one("json", path, opts, json_mod.write)
  end

  --- Write two RFC 4180 CSV files: task records and events.
  -- @param tasks_path file name or open file handle for the tasks
  -- @param events_path file name or open file handle for the events
  -- @tparam[opt] table opts `source` / `snapshot`
  -- @treturn table `{tasks=, events=, bytes=}`
  -- @usage ai.export.csv("tasks.csv", "events.csv")
  function api.csv(tasks_path, events_path, opts)
    check_target(tasks_path, 1, "csv")
    check_target(events_path, 2, "csv")
    opts = check_opts(opts, 3, "csv")
    local src = source_of(opts, 3, "csv")
    local a = with_target(tasks_path, "csv", function(f) return csv_mod.write_tasks(f, src) end)
    local b = with_target(events_path, "csv", function(f) return csv_mod.write_events(f, src) end)
    return { tasks = a.tasks, events = b.events, bytes = a.bytes + b.bytes }
  end

  --- Write the self-contained HTML report.
  -- @param path file name or open file handle
  -- @tparam[opt] table opts `title`, `max_rows`, `max_tasks`, `cells`,
  --   `source` / `snapshot`
  -- @treturn table `{events=, tasks=, bytes=}`
  -- @usage ai.export.html("report.html")
  function api.html(path, opts)
    return write_one("html", path, opts, html_mod.write, function(o)
      for _, k in ipairs({ "max_rows", "max_tasks", "cells" }) do
        if o[k] ~= nil and (math.type(o[k]) ~= "integer" or o[k] < 1) then
          return k .. " must be a positive integer"
        end
      end
    end)
  end

  --- The task tree as Graphviz DOT (`async_inspect.export.graph`); `opts.path` writes it.
  function api.dot(opts) return require("async_inspect.export.graph").write("dot", opts, source_of) end
  --- The task tree as a Mermaid flowchart (`async_inspect.export.graph`).
  function api.mermaid(opts) return require("async_inspect.export.graph").write("mermaid", opts, source_of) end

  --- Exporters whose default source is the live inspector `ai`.
  -- @tparam table ai the async_inspect module
  -- @treturn table the same API, `opts.source` defaulting to `source_live(ai)`
  -- @usage ai.export = require("async_inspect.export").bind(ai)
  function api.bind(ai)
    if type(ai) ~= "table" or type(ai.iter_events) ~= "function" then
      argerr(1, "bind", "async_inspect module expected")
    end
    return make_api(function() return source_live(ai) end)
  end

  return api
end

-- Used through `ai.export` (or required while async_inspect is loaded), the
-- exporters default to the live inspector, found in package.loaded so that
-- this module does not load the core by itself.
return make_api(function()
  local ai = package.loaded["async_inspect"]
  if type(ai) == "table" and type(rawget(ai, "iter_events")) == "function" then
    return source_live(ai)
  end
end)

--- The task tree as a graph: Graphviz DOT and Mermaid flowcharts.
--
-- One node per task (`#id name`, its state and durations, where a suspended task
-- waits), one edge from each parent to each child. A parent whose record is gone
-- (evicted after it finished) appears as a dashed stand-in node so its children stay
-- grouped. `dot_text` and `mermaid_text` are pure (task records in, text out);
-- `write` serves `ai.export.dot()` and `ai.export.mermaid()`.
-- @module async_inspect.export.graph
-- @usage
-- io.open("tasks.dot", "w"):write(ai.export.dot())   -- dot -Tsvg tasks.dot > tasks.svg
-- print(ai.export.mermaid{live = true})

local vutil = require("async_inspect.views.util")
local eutil = require("async_inspect.export.util")

local M = {}

local format, concat = string.format, table.concat

local LIVE = { pending = true, running = true, suspended = true, normal = true }

-- fill and border colours by state, shared by both formats
local COLORS = {
  pending = { "#cfe2ff", "#3d6fb6" }, running = { "#b7e4c7", "#2d6a4f" },
  normal = { "#d8f3dc", "#40916c" }, suspended = { "#fff3b0", "#b08900" },
  completed = { "#eeeeee", "#888888" }, failed = { "#ffb3b3", "#c1121f" },
  cancelled = { "#e9d5ff", "#7b2cbf" }, dropped = { "#ffd6a5", "#c2570c" },
}
local UNKNOWN = { "#ffffff", "#555555" }

local function arg_error(n, fname, msg, level)
  error(format("bad argument #%d to '%s' (%s)", n, fname, msg), level or 3)
end

-- the tasks to draw (by id) and the ids of missing parents
local function select_tasks(tasks, opts)
  local list, by = {}, {}
  for _, t in ipairs(tasks) do
    if type(t) == "table" and math.type(t.id) == "integer" and (not opts.live or LIVE[t.state]) then
      list[#list + 1] = t
    end
  end
  table.sort(list, function(a, b) return a.id < b.id end)
  local max = opts.max_tasks or 10000
  local omitted = math.max(0, #list - max)
  for i = #list, max + 1, -1 do list[i] = nil end
  for _, t in ipairs(list) do by[t.id] = t end
  local missing, seen = {}, {}
  for _, t in ipairs(list) do
    local p = t.parent
    if p and p ~= 0 and p ~= t.id and not by[p] and not seen[p] then
      seen[p] = true
      missing[#missing + 1] = p
    end
  end
  table.sort(missing)
  return list, missing, omitted
end

-- the lines of a node's label, plain text (escaped by each format)
local function label_lines(t, now, ascii)
  local total, busy = vutil.task_times(t, now)
  local lines = {
    format("#%d %s", t.id, vutil.sanitize(t.name or "?")),
    format("%s %s (busy %s)", t.state or "?", vutil.duration(total, ascii), vutil.duration(busy, ascii)),
  }
  if t.state == "suspended" then
    local at = t.await or t.where
    if at then lines[#lines + 1] = "@ " .. vutil.sanitize(at) end
    if t.wait then lines[#lines + 1] = "waits for " .. vutil.sanitize(t.wait) end
  elseif t.state == "failed" and t.error then
    local err = vutil.sanitize((tostring(t.error):gsub("%s+", " ")))
    lines[#lines + 1] = "! " .. vutil.truncate(err, 60, { ascii = true })
  end
  return lines
end

local function now_of(tasks, now)
  if now then return now end
  local latest = 0
  for _, t in ipairs(tasks) do
    latest = math.max(latest, t.ended or 0, t.last_change or 0, t.created or 0)
  end
  return latest
end

-- DOT -----------------------------------------------------------------------------------------------

local function dot_quote(lines)
  local parts = {}
  for i, l in ipairs(lines) do parts[i] = (l:gsub('[\\"]', "\\%0")) end
  return '"' .. concat(parts, "\\n") .. '"'
end

-- the options both formats take; raises at the public function's caller
local function check_options(opts, n, fname)
  if opts == nil then return {} end
  if type(opts) ~= "table" then arg_error(n, fname, "table expected, got " .. type(opts), 4) end
  if opts.max_tasks ~= nil and (math.type(opts.max_tasks) ~= "integer" or opts.max_tasks < 1) then
    arg_error(n, fname, "max_tasks must be a positive integer", 4)
  end
  if opts.now ~= nil and type(opts.now) ~= "number" then
    arg_error(n, fname, "now must be a number (ns)", 4)
  end
  if opts.title ~= nil and type(opts.title) ~= "string" then
    arg_error(n, fname, "title must be a string", 4)
  end
  return opts
end

-- The graph's title: opts.title or the default, with the number of tasks left out.
local function title_of(opts, omitted)
  local title = vutil.sanitize(opts.title or "async_inspect task tree")
  if omitted > 0 then title = title .. format(" (%d more tasks not shown)", omitted) end
  return title
end

-- A line per parent -> child edge among the tasks of list, in the format fmt (parent id,
-- child id).
local function add_edges(out, list, fmt)
  for _, t in ipairs(list) do
    if t.parent and t.parent ~= 0 and t.parent ~= t.id then
      out[#out + 1] = format(fmt, t.parent, t.id)
    end
  end
end

local function dot(tasks, opts)
  local list, missing, omitted = select_tasks(tasks, opts)
  local now = now_of(list, opts.now)
  local out = {
    "digraph tasks {",
    "  rankdir=TB;",
    '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
    '  edge [color="#666666"];',
  }
  out[#out + 1] = "  label=" .. dot_quote({ title_of(opts, omitted) }) .. "; labelloc=t;"
  for _, id in ipairs(missing) do
    out[#out + 1] = format('  t%d [label=%s, style="dashed", fillcolor="#ffffff"];', id,
      dot_quote({ format("#%d", id), "(record gone)" }))
  end
  for _, t in ipairs(list) do
    local c = COLORS[t.state] or UNKNOWN
    out[#out + 1] = format('  t%d [label=%s, fillcolor="%s", color="%s"];', t.id,
      dot_quote(label_lines(t, now, opts.ascii)), c[1], c[2])
  end
  add_edges(out, list, "  t%d -> t%d;")
  out[#out + 1] = "}"
  return concat(out, "\n") .. "\n", #list
end

local function check_tasks(tasks, fname)
  if type(tasks) ~= "table" then
    arg_error(1, fname, "array of task records expected, got " .. type(tasks), 4)
  end
end

--- The task tree in Graphviz DOT.
-- @tparam {table,...} tasks task records (docs/internals.md)
-- @tparam[opt] table opts `live` (only live tasks), `max_tasks` (10000), `now` (ns, for
-- durations of live tasks; default the latest time in the records), `title`, `ascii`
-- @treturn string
-- @treturn integer the number of task nodes
-- @usage local text = graph.dot_text(ai.tasks())
function M.dot_text(tasks, opts)
  check_tasks(tasks, "dot_text")
  return dot(tasks, check_options(opts, 2, "dot_text"))
end

-- Mermaid -----------------------------------------------------------------------------------------

-- Mermaid entity codes: '#' first, since the others introduce it
local MERMAID_ESC = { ["#"] = "#35;", ['"'] = "#quot;", ["<"] = "#lt;", [">"] = "#gt;",
  ["&"] = "#amp;", ["|"] = "#124;", ["`"] = "#96;" }

local function mermaid_quote(lines)
  local parts = {}
  for i, l in ipairs(lines) do parts[i] = (l:gsub('[#"<>&|`]', MERMAID_ESC)) end
  return '["' .. concat(parts, "<br/>") .. '"]'
end

local function mermaid(tasks, opts)
  local list, missing, omitted = select_tasks(tasks, opts)
  local now = now_of(list, opts.now)
  local out = { "flowchart TD" }
  if opts.title or omitted > 0 then
    out[#out + 1] = "  %% " .. title_of(opts, omitted)
  end
  for _, id in ipairs(missing) do
    out[#out + 1] = format("  t%d%s:::gone", id, mermaid_quote({ format("#%d", id), "(record gone)" }))
  end
  local used = {}
  for _, t in ipairs(list) do
    local class = COLORS[t.state] and t.state or "unknown"
    used[class] = true
    out[#out + 1] = format("  t%d%s:::%s", t.id, mermaid_quote(label_lines(t, now, opts.ascii)), class)
  end
  add_edges(out, list, "  t%d --> t%d")
  local classes = {}
  for class in pairs(used) do classes[#classes + 1] = class end
  table.sort(classes)
  for _, class in ipairs(classes) do
    local c = COLORS[class] or UNKNOWN
    out[#out + 1] = format("  classDef %s fill:%s,stroke:%s", class, c[1], c[2])
  end
  if #missing > 0 then
    out[#out + 1] = "  classDef gone fill:#ffffff,stroke:#555555,stroke-dasharray:4 3"
  end
  return concat(out, "\n") .. "\n", #list
end

--- The task tree as a Mermaid flowchart.
-- @tparam {table,...} tasks task records
-- @tparam[opt] table opts as for `dot_text`
-- @treturn string
-- @treturn integer the number of task nodes
-- @usage print(graph.mermaid_text(ai.tasks(), {live = true}))
function M.mermaid_text(tasks, opts)
  check_tasks(tasks, "mermaid_text")
  return mermaid(tasks, check_options(opts, 2, "mermaid_text"))
end

-- ai.export.dot / ai.export.mermaid -------------------------------------------------------------

local BUILD = { dot = dot, mermaid = mermaid }

-- tasks without the export package's resolver: a snapshot, else the live inspector
local function tasks_of(opts, kind)
  if opts.snapshot ~= nil then
    if type(opts.snapshot) ~= "table" or type(opts.snapshot.tasks) ~= "table" then
      arg_error(1, kind, "snapshot must be a table with tasks", 4)
    end
    return opts.snapshot.tasks, opts.snapshot.t
  end
  local ai = require("async_inspect")
  return ai.tasks(), ai.now()
end

--- Export the task tree (`ai.export.dot(opts)`, `ai.export.mermaid(opts)`).
-- The tasks come from `opts.source` or `opts.snapshot` (through `source_of`, the export
-- package's resolver, when given), else from the live inspector.
-- @tparam string kind "dot" or "mermaid"
-- @tparam[opt] table opts `path` (file name or handle: write there), `source`,
-- `snapshot`, and the options of `dot_text`
-- @tparam[opt] function source_of the export package's `source_of(opts, n, fname)`
-- @treturn string|table the text, or `{tasks=, bytes=}` when written to `path`
-- @usage ai.export.dot{path = "tasks.dot"}
function M.write(kind, opts, source_of)
  local build = BUILD[kind]
  if build == nil then arg_error(1, "write", "\"dot\" or \"mermaid\" expected") end
  opts = check_options(opts, 1, kind)
  if opts.path ~= nil and not eutil.is_target(opts.path) then
    arg_error(1, kind, "path must be a file name or file handle")
  end
  local tasks, now
  if (opts.source ~= nil or opts.snapshot ~= nil) and source_of then
    local src = source_of(opts, 1, kind) -- raises at our caller on a bad source
    tasks, now = src.tasks, src.t
  else
    tasks, now = tasks_of(opts, kind)
  end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.now = o.now or now
  local text, count = build(tasks, o)
  if opts.path == nil then return text end
  local f, owned = eutil.open_target(opts.path, "wb")
  local ok, err = f:write(text)
  if owned then f:close() end
  if not ok then error(kind .. ": cannot write: " .. tostring(err), 2) end
  return { tasks = count, bytes = #text }
end

return M

--- The task dump, in the spirit of Go's goroutine dump: every live task (suspended,
-- pending, running, normal) with how long it has been in that state, its await label,
-- what it waits for, its stack and how it came to exist (its spawn chain).
--
-- Tasks with identical stacks (and the same state, await label, wait and creation site)
-- fold into one entry with a count, so a pool of 500 idle workers is one entry, not 500.
-- Entries come longest wait first.
--
-- Pure: a snapshot and view options in, lines out. Optional task fields used when
-- present (added by `async_inspect.where.annotate`): `traceback_now` (the traceback of
-- the suspended coroutine), `locals` (string or array of lines), `creation_trace`
-- (string), `where_fn`. Without them the dump shows `where` and `created_at` only, so it
-- also works on snapshots rebuilt from a recording.
-- @module async_inspect.views.dump

local util = require("async_inspect.views.util")

local M = {}

local sanitize, duration, format = util.sanitize, util.duration, string.format

--- The live states, in the order the header counts them.
M.LIVE = { "suspended", "pending", "running", "normal" }
local LIVE = {}
for i, s in ipairs(M.LIVE) do LIVE[s] = i end

--- Whether a task is live (suspended, pending, running or normal).
-- @tparam table task a task record
-- @treturn boolean
function M.is_live(task)
  return LIVE[task.state] ~= nil
end

--- How long a task has been in its current state at `now`: suspended or running since
-- its last change, pending since its creation.
-- @tparam table task a task record
-- @tparam integer now snapshot time (ns)
-- @treturn integer nanoseconds
function M.waited(task, now)
  util.check(task, "table", 1, "waited")
  util.check(now, "number", 2, "waited")
  local since = task.state == "pending" and task.created or task.last_change or task.created
  return math.max(0, now - (since or now))
end

--- The spawn chain of a task: its parent, grandparent, ... up to a root.
-- A parent whose record is gone (evicted) ends the chain with `{id=, gone=true}`.
-- @tparam table task a task record
-- @param lookup a table id -> record, or a function(id) returning a record or nil
-- @tparam[opt=64] integer max longest chain returned
-- @treturn {table,...} `{id=, name=, created_at=, state=}` nearest first
-- @usage dump.chain(t, util.index(snap))
function M.chain(task, lookup, max)
  util.check(task, "table", 1, "chain")
  local lt = type(lookup)
  if lt ~= "table" and lt ~= "function" then util.arg_error(2, "chain", "table or function", lookup) end
  util.check(max, "number", 3, "chain", true)
  local find = lt == "function" and lookup or function(id) return lookup[id] end
  local out, seen = {}, { [task.id] = true }
  local pid = task.parent
  while pid and pid ~= 0 and not seen[pid] and #out < (max or 64) do
    seen[pid] = true
    local p = find(pid)
    if p == nil then
      out[#out + 1] = { id = pid, gone = true }
      break
    end
    out[#out + 1] = { id = pid, name = p.name, created_at = p.created_at, state = p.state }
    pid = p.parent
  end
  return out
end

-- what a task's stack looks like, as the folding key sees it
local function stack_text(t)
  if t.traceback_now then return t.traceback_now end
  if t.where then return "at " .. t.where end
  return ""
end

local function group_key(t)
  return table.concat({ t.state or "", t.await or "", t.wait or "", t.kind or "",
    t.created_at or "", t["function"] or "", stack_text(t) }, "\0")
end

--- Fold the live tasks of a snapshot into groups of identical stacks, longest wait first.
-- @tparam table snap snapshot
-- @treturn {table,...} groups `{tasks = {...} (longest wait first), longest=ns, shortest=ns}`
function M.groups(snap)
  util.check_snapshot(snap, "groups")
  local by_key, list = {}, {}
  for _, t in ipairs(snap.tasks) do
    if LIVE[t.state] then
      local key = group_key(t)
      local g = by_key[key]
      if not g then
        g = { tasks = {} }
        by_key[key] = g
        list[#list + 1] = g
      end
      g.tasks[#g.tasks + 1] = t
    end
  end
  local now = snap.t
  for _, g in ipairs(list) do
    table.sort(g.tasks, function(a, b)
      local wa, wb = M.waited(a, now), M.waited(b, now)
      if wa ~= wb then return wa > wb end
      return a.id < b.id
    end)
    g.longest = M.waited(g.tasks[1], now)
    g.shortest = M.waited(g.tasks[#g.tasks], now)
  end
  table.sort(list, function(a, b)
    if a.longest ~= b.longest then return a.longest > b.longest end
    return a.tasks[1].id < b.tasks[1].id
  end)
  return list
end

local function text_lines(text)
  local out = {}
  if type(text) == "table" then
    for _, l in ipairs(text) do out[#out + 1] = l end
  elseif type(text) == "string" then
    for l in (text .. "\n"):gmatch("(.-)\r?\n") do out[#out + 1] = l end
  end
  return out
end

-- indented, tabs expanded, made safe for a terminal
local function push_text(lines, text, indent)
  for _, l in ipairs(text_lines(text)) do
    local tabs, rest = l:match("^(\t*)(.*)$")
    lines[#lines + 1] = indent .. ("    "):rep(#tabs) .. sanitize(rest)
  end
end

local function state_phrase(g, opts)
  local t = g.tasks[1]
  local span = duration(g.longest, opts.ascii)
  if #g.tasks > 1 and g.shortest ~= g.longest then
    span = span .. ".." .. duration(g.shortest, opts.ascii)
  end
  return util.paint(t.state, util.state_style(t.state), opts.color) .. " " .. span
end

local function heading(g, opts)
  local n, t = #g.tasks, g.tasks[1]
  if n == 1 then
    return format("task #%d %s [%s]", t.id, sanitize(t.name or "?"), state_phrase(g, opts))
  end
  local shown, max_ids = {}, opts.ids or 8
  for i = 1, math.min(n, max_ids) do
    shown[i] = format("#%d %s", g.tasks[i].id, sanitize(g.tasks[i].name or "?"))
  end
  if n > max_ids then shown[#shown + 1] = format("+%d more", n - max_ids) end
  return format("%d tasks [%s]: %s", n, state_phrase(g, opts), table.concat(shown, ", "))
end

local function describe_wait(lines, t)
  local parts = {}
  if t.await then parts[#parts + 1] = "await " .. sanitize(t.await) end
  if t.wait then parts[#parts + 1] = "waits for " .. sanitize(t.wait) end
  if #parts > 0 then lines[#lines + 1] = "    " .. table.concat(parts, ", ") end
end

local function describe_stack(lines, t)
  if t.where then
    local fn = t.where_fn and (" in " .. sanitize(t.where_fn)) or ""
    lines[#lines + 1] = "    at " .. sanitize(t.where) .. fn
  end
  if t.traceback_now then
    push_text(lines, t.traceback_now, "    ")
  elseif t.kind == "block" then
    lines[#lines + 1] = "    (a block task: no stack of its own)"
  elseif t.state == "pending" then
    lines[#lines + 1] = "    (not started yet" ..
        (t["function"] and ("; function " .. sanitize(t["function"])) or "") .. ")"
  elseif not t.where then
    lines[#lines + 1] = "    (stack not available)"
  end
end

local function describe_chain(lines, t, by)
  lines[#lines + 1] = "    created at " .. sanitize(t.created_at or "?")
  for _, p in ipairs(M.chain(t, by)) do
    if p.gone then
      lines[#lines + 1] = format("      by #%d (record no longer kept)", p.id)
    else
      lines[#lines + 1] = format("      by #%d %s, created at %s", p.id, sanitize(p.name or "?"),
        sanitize(p.created_at or "?"))
    end
  end
end

local function describe(lines, g, by, opts)
  local t = g.tasks[1]
  lines[#lines + 1] = util.paint(heading(g, opts), "bold", opts.color)
  describe_wait(lines, t)
  describe_stack(lines, t)
  describe_chain(lines, t, by)
  if t.creation_trace then push_text(lines, t.creation_trace, "    ") end
  if t.locals and opts.locals ~= false then
    lines[#lines + 1] = "    locals" .. (#g.tasks > 1 and format(" (of #%d)", t.id) or "") .. ":"
    push_text(lines, t.locals, "      ")
  end
end

local function header(snap, groups, opts)
  local counts, total = {}, 0
  for _, t in ipairs(snap.tasks) do
    if LIVE[t.state] then
      counts[t.state] = (counts[t.state] or 0) + 1
      total = total + 1
    end
  end
  local parts = {}
  for _, s in ipairs(M.LIVE) do
    if counts[s] then parts[#parts + 1] = format("%d %s", counts[s], s) end
  end
  local detail = #parts > 0 and (" (" .. table.concat(parts, ", ") .. ")") or ""
  return util.paint(format("async_inspect dump at %s: %d live task%s%s in %d group%s",
    util.timestamp(snap.t), total, total == 1 and "" or "s", detail, #groups,
    #groups == 1 and "" or "s"), "bold", opts.color)
end

--- Render the dump.
-- @tparam table snap snapshot (annotated by `where.annotate` for stacks and locals)
-- @tparam[opt] table opts `limit` (most groups shown), `ids` (task ids listed per
-- group, 8), `locals` (false hides locals), `color`, `ascii`
-- @treturn {string,...} lines
-- @usage for _, l in ipairs(dump.render(snap)) do print(l) end
function M.render(snap, opts)
  util.check_snapshot(snap, "render")
  util.check(opts, "table", 2, "render", true)
  opts = opts or {}
  for _, k in ipairs({ "limit", "ids" }) do
    local v = opts[k]
    if v ~= nil and (math.type(v) ~= "integer" or v < 0) then
      error(format("bad argument #2 to 'render' (%s must be a non-negative integer)", k), 2)
    end
  end
  local groups = M.groups(snap)
  local lines = { header(snap, groups, opts) }
  if #groups == 0 then
    lines[2] = "  (no live tasks)"
    return lines
  end
  local by = util.index(snap)
  local limit = opts.limit or #groups
  for i = 1, math.min(limit, #groups) do
    lines[#lines + 1] = ""
    describe(lines, groups[i], by, opts)
  end
  if #groups > limit then
    lines[#lines + 1] = ""
    lines[#lines + 1] = format("... %d more group%s", #groups - limit,
      #groups - limit == 1 and "" or "s")
  end
  return lines
end

return setmetatable(M, { __call = function(_, ...) return M.render(...) end })

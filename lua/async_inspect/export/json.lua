--- JSON export: stats, task records and events in one document, streamed.
--
--     {"version":1,"t":NOW,"stats":{...},"tasks":[{...},...],"events":[{...},...]}
--
-- The schema is documented in docs/exports.md. Fields whose value is nil
-- are left out. Strings are made valid UTF-8 (invalid bytes become U+FFFD).
-- @module async_inspect.export.json

local util = require("async_inspect.export.util")

local M = {}

--- Task record fields in the order they are written (docs/internals.md);
-- any other scalar field of a record follows, sorted by name.
M.TASK_FIELDS = { "id", "name", "parent", "state", "kind", "created", "created_at",
  "first_resume", "last_change", "ended", "resumes", "busy", "where", "where_fn",
  "await", "wait", "error", "traceback" }

--- Event fields in the order they are written.
M.EVENT_FIELDS = { "seq", "t", "task", "kind", "loc", "other", "detail" }

local known = {}
for _, k in ipairs(M.TASK_FIELDS) do known[k] = true end

local scalar = util.json_scalar

--- Encode one task record as a JSON object.
-- @tparam table task
-- @treturn string
function M.task_object(task)
  local parts = {}
  for _, k in ipairs(M.TASK_FIELDS) do
    local v = task[k]
    if v ~= nil then parts[#parts + 1] = '"' .. k .. '":' .. scalar(v) end
  end
  local extra = {}
  for k, v in pairs(task) do
    if type(k) == "string" and not known[k] and type(v) ~= "table" and type(v) ~= "function" then
      extra[#extra + 1] = k
    end
  end
  table.sort(extra)
  for _, k in ipairs(extra) do
    parts[#parts + 1] = util.json_quote_raw(k) .. ":" .. scalar(task[k])
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

--- Write the JSON document.
-- @tparam file f
-- @tparam table source export source
-- @tparam[opt] table opts `events` (default true): include the events array
-- @treturn table summary `{events=, tasks=, bytes=}`
function M.write(f, source, opts)
  opts = opts or {}
  local w = util.writer(f)
  local put = w.put
  local q = util.json_quoter(8192)
  local tasks = source.tasks or {}
  put('{"version":1,"t":' .. scalar(source.t) .. ',"stats":'
    .. util.json_flat_object(source.stats or {}) .. ',\n"tasks":[')
  for i, task in ipairs(tasks) do
    put((i > 1 and ",\n" or "\n") .. M.task_object(task))
  end
  put('\n],\n"events":[')
  local n = 0
  if opts.events ~= false then
    -- One string.format per event: it builds the whole line in a C buffer,
    -- where concatenating numbers would first make (and intern) a short
    -- string for each of them.
    local fmt = string.format
    local mtype = math.type
    local function opt(key, v, quote_it)
      if v == nil then return "" end
      return key .. (quote_it and q(v) or scalar(v))
    end
    for seq, t, id, kind, loc, other, detail in source.iter_events() do
      n = n + 1
      local head = n > 1 and ',\n' or '\n'
      local tail = opt(',"loc":', loc, true) .. opt(',"other":', other)
        .. opt(',"detail":', detail, true)
      if mtype(seq) == "integer" and mtype(t) == "integer" and mtype(id) == "integer" then
        put(fmt('%s{"seq":%d,"t":%d,"task":%d,"kind":%s%s}', head, seq, t, id, q(kind), tail))
      else -- floats from a recording: written exactly as numbers
        put(head .. '{"seq":' .. scalar(seq) .. ',"t":' .. scalar(t) .. ',"task":'
          .. scalar(id) .. ',"kind":' .. q(kind) .. tail .. "}")
      end
    end
  end
  put("\n]}\n")
  w.flush()
  return { events = n, tasks = #tasks, bytes = w.bytes }
end

return M

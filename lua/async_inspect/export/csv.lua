--- CSV export (RFC 4180): one file of task records, one of events.
--
-- Both start with a header row; lines end with CRLF; fields holding a comma,
-- a double quote or a line break are quoted with inner quotes doubled; an
-- absent value is an empty field. Bytes are written as they are, so a
-- conforming reader gets back exactly the recorded strings.
-- @module async_inspect.export.csv

local util = require("async_inspect.export.util")
local json = require("async_inspect.export.json")

local M = {}

local field = util.csv_field

--- Columns of the tasks file (the task record fields of docs/internals.md).
M.TASK_COLUMNS = json.TASK_FIELDS
--- Columns of the events file.
M.EVENT_COLUMNS = json.EVENT_FIELDS

--- Write the tasks file.
-- @tparam file f
-- @tparam table source export source
-- @treturn table summary `{tasks=, bytes=}`
function M.write_tasks(f, source)
  local w = util.writer(f)
  local cols = M.TASK_COLUMNS
  w.put(table.concat(cols, ",") .. "\r\n")
  local row = {}
  local tasks = source.tasks or {}
  for _, task in ipairs(tasks) do
    for i, k in ipairs(cols) do row[i] = field(task[k]) end
    w.put(table.concat(row, ",") .. "\r\n")
  end
  w.flush()
  return { tasks = #tasks, bytes = w.bytes }
end

--- Write the events file.
-- @tparam file f
-- @tparam table source export source
-- @treturn table summary `{events=, bytes=}`
function M.write_events(f, source)
  local w = util.writer(f)
  local put = w.put
  put(table.concat(M.EVENT_COLUMNS, ",") .. "\r\n")
  local n = 0
  local fmt, mtype = string.format, math.type
  for seq, t, id, kind, loc, other, detail in source.iter_events() do
    n = n + 1
    -- One string.format per row builds it in a C buffer instead of making
    -- (and interning) a short string per number.
    if mtype(seq) == "integer" and mtype(t) == "integer" and mtype(id) == "integer" then
      put(fmt("%d,%d,%d,%s,%s,%s,%s\r\n", seq, t, id, field(kind), loc and field(loc) or "",
        other and field(other) or "", detail and field(detail) or ""))
    else
      put(field(seq) .. "," .. field(t) .. "," .. field(id) .. "," .. field(kind) .. ","
        .. field(loc) .. "," .. field(other) .. "," .. field(detail) .. "\r\n")
    end
  end
  w.flush()
  return { events = n, bytes = w.bytes }
end

return M

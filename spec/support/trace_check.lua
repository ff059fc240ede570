--- Checks that a decoded Chrome trace is well formed for Perfetto,
-- chrome://tracing and speedscope: returns a list of problems (empty when
-- valid). Slices are compared the way each viewer computes them: exact
-- nanoseconds, Perfetto's truncation of ts*1000 and dur*1000 to integers,
-- and speedscope's floating-point ts + dur.
local M = {}

local function trunc(x) return math.floor(x * 1000) end

--- Integer nanoseconds of a microsecond value written with 3 decimals.
function M.ns(us) return math.floor(us * 1000 + 0.5) end

function M.validate(doc)
  local problems = {}
  local function bad(fmt, ...) problems[#problems + 1] = fmt:format(...) end
  if doc.displayTimeUnit ~= "ns" then bad("displayTimeUnit is %s", tostring(doc.displayTimeUnit)) end
  if type(doc.traceEvents) ~= "table" then bad("no traceEvents array"); return problems end
  local slices, named, flows = {}, {}, {}
  for i, e in ipairs(doc.traceEvents) do
    if type(e.ph) ~= "string" then bad("event %d has no ph", i) end
    if e.pid ~= 1 then bad("event %d pid %s", i, tostring(e.pid)) end
    if math.type(e.tid) == nil then bad("event %d tid %s", i, tostring(e.tid)) end
    if type(e.ts) ~= "number" or e.ts < 0 then bad("event %d ts %s", i, tostring(e.ts)) end
    if e.ph == "M" then
      if e.name == "thread_name" then named[e.tid] = e.args.name end
    elseif e.ph == "X" then
      if type(e.dur) ~= "number" or e.dur < 0 then bad("X event %d dur %s", i, tostring(e.dur)) end
      if e.cat ~= "run" and e.cat ~= "wait" then bad("X event %d cat %s", i, tostring(e.cat)) end
      if type(e.name) ~= "string" then bad("X event %d without name", i) end
      slices[e.tid] = slices[e.tid] or {}
      table.insert(slices[e.tid], e)
    elseif e.ph == "i" then
      if e.s ~= "t" then bad("instant %d scope %s", i, tostring(e.s)) end
    elseif e.ph == "s" or e.ph == "f" then
      flows[e.id] = flows[e.id] or {}
      if flows[e.id][e.ph] then bad("flow %s has two %s", tostring(e.id), e.ph) end
      flows[e.id][e.ph] = e
      if e.ph == "f" and e.bp ~= "e" then bad("flow end %s without bp=e", tostring(e.id)) end
    else
      bad("unexpected ph %s", e.ph)
    end
  end
  -- Slices of one track never overlap, in any viewer's arithmetic.
  for tid, list in pairs(slices) do
    if not named[tid] then bad("track %d has no thread_name", tid) end
    table.sort(list, function(a, b) return a.ts < b.ts end)
    for k = 2, #list do
      local a, b = list[k - 1], list[k]
      if M.ns(a.ts) + M.ns(a.dur) > M.ns(b.ts) then
        bad("tid %d: slices overlap at %s (exact)", tid, b.ts)
      end
      if trunc(a.ts) + trunc(a.dur) > trunc(b.ts) then
        bad("tid %d: slices overlap at %s (truncated)", tid, b.ts)
      end
      if a.ts + a.dur > b.ts then
        bad("tid %d: slices overlap at %s (floating point)", tid, b.ts)
      end
    end
  end
  -- Every flow has both ends, each strictly inside a slice of its track.
  local function inside(e)
    for _, sl in ipairs(slices[e.tid] or {}) do
      local a, d, t = M.ns(sl.ts), M.ns(sl.dur), M.ns(e.ts)
      if a < t and t < a + d then return true end
      -- A flow start may sit at the start of an enclosing slice only
      -- strictly after it began; never at a boundary.
    end
    return false
  end
  for id, fl in pairs(flows) do
    if not (fl.s and fl.f) then bad("flow %s is missing an end", tostring(id))
    else
      if fl.s.cat ~= fl.f.cat or fl.s.name ~= fl.f.name then bad("flow %s: cat/name differ", tostring(id)) end
      if not inside(fl.s) then bad("flow %s start not inside a slice", tostring(id)) end
      if not inside(fl.f) then bad("flow %s end not inside a slice", tostring(id)) end
    end
  end
  return problems
end

return M

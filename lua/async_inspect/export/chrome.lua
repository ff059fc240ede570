--- Chrome Trace Event Format writer (Perfetto UI, chrome://tracing,
-- speedscope).
--
-- Layout: process 1 holds one track per task (`tid` = task id) named by
-- `thread_name` and ordered by start with `thread_sort_index`. On a task's
-- track:
--
-- * an `X` slice, category `run`, name `run`, for every resume..yield
--   (or ..complete/fail), with `args.until` (yield location), `args.await`
--   (label), `args.error`;
-- * an `X` slice, category `wait`, for every wait between a yield and the
--   next resume, named after the await label or the yield location
--   (`pending` before the first resume), with `args.wake` when known;
-- * instant events (`"ph":"i","s":"t"`) for inspection points and for
--   failures, cancellations and drops;
-- * flow events (`s`/`f` sharing an `id`, `"bp":"e"` on `f`) from the task
--   that spawned or resumed a task to that task's run slice.
--
-- Times are microseconds since the start of tracking, written from integer
-- nanoseconds with exactly three decimals (no float rounding in the file).
-- Wait slices are inset by 1 ns at both ends: viewers that turn `ts`/`dur`
-- into integers by truncation (Perfetto) or add them in floating point
-- (speedscope) would otherwise sometimes see a wait overlap the run slice it
-- touches, and nest or drop it. Flow ends sit in the middle of the run slice
-- they bind to, so "enclosing slice" is never ambiguous at a boundary.
--
-- The writer streams: per-task state is kept (a few fields per task), events
-- are formatted and written in chunks as they are read.
-- @module async_inspect.export.chrome

local util = require("async_inspect.export.util")

local M = {}

local concat = table.concat
local frac3 = util.frac3

local PEND, RUN, WAIT, DONE = 1, 2, 3, 4

local END_INSTANT = { fail = '"failed"', cancel = '"cancelled"', drop = '"dropped"' }

--- Write a trace.
-- @tparam file f open file handle (written, not closed)
-- @tparam table source export source (`tasks`, `iter_events`, `t`)
-- @tparam[opt] table opts `process_name` (default "async_inspect"),
--   `flows` (default true), `waits` (default true)
-- @treturn table summary `{events=, records=, tasks=, bytes=}`
function M.write(f, source, opts)
  opts = opts or {}
  local with_flows = opts.flows ~= false
  local with_waits = opts.waits ~= false

  -- JSON string literals, memoised: locations, labels and names repeat.
  -- The hot loop reads `qc` directly and calls `quote` only on a miss.
  local qc, qn = {}, 0
  local raw_quote = util.json_quote_raw
  local function quote(s)
    local r = raw_quote(s)
    if qn >= 8192 then qc, qn = {}, 0 end
    qc[s] = r
    qn = qn + 1
    return r
  end

  -- Output buffer: pieces are written in one chunk every FLUSH_AT records,
  -- which bounds memory whatever the number of events. The hot paths below
  -- append to `buf` inline; cold paths use `emit`.
  local FLUSH_AT = 256
  local buf, n, bytes, records = {}, 0, 0, 0
  local function flush()
    local chunk = concat(buf, "", 1, n)
    assert(f:write(chunk))
    bytes = bytes + #chunk
    records = records + n
    n = 0
  end
  local function emit(s)
    n = n + 1
    buf[n] = s
    if n >= FLUSH_AT then flush() end
  end

  local function us(x)
    return (x // 1000) .. "." .. frac3[x % 1000]
  end

  -- Number formatting is the main cost of the hot path, so it is avoided:
  -- the start of every slice is kept as two shared strings, the whole
  -- microseconds with the point ("12.") and the three decimals ("345").
  -- Consecutive events mostly fall in the same microsecond, so the first
  -- part is converted once per microsecond, not once per event; durations
  -- reuse a cache of their whole-microsecond parts.
  local cur_i, cur_s = -1, "0."
  local dcache = {}
  local function dpart(k)
    local r = k .. "."
    if k < 1024 then dcache[k] = r end
    return r
  end

  -- The args tails of run slices (per yield location and label) and of wait
  -- slices (per wake kind) repeat too: built once, reused (bounded caches;
  -- `false` stands for nil in keys).
  local ycache, yn = {}, 0
  local function yargs(loc, detail)
    local r = ',"args":{"until":' .. (loc and quote(loc) or "null")
      .. (detail and (',"await":' .. quote(detail) .. "}}") or "}}")
    if yn >= 8192 then ycache, yn = {}, 0 end
    local row = ycache[loc or false]
    if not row then row = {}; ycache[loc or false] = row end
    row[detail or false] = r
    yn = yn + 1
    return r
  end
  local wcache, wn = { [false] = ',"args":{}}' }, 0
  local function wargs(detail)
    local r = ',"args":{"wake":' .. quote(detail) .. "}}"
    if wn >= 1024 then wcache, wn = { [false] = ',"args":{}}' }, 0 end
    wcache[detail] = r
    wn = wn + 1
    return r
  end

  emit('{"displayTimeUnit":"ns","traceEvents":[\n'
    .. '{"ph":"M","name":"process_name","pid":1,"tid":0,"ts":0,"args":{"name":'
    .. quote(opts.process_name or "async_inspect") .. '}}')

  -- Per-task state, all keyed by task id.
  local pre = {}     -- ',"pid":1,"tid":ID,"ts":' cached per task
  local recorded = {}
  local st, since, wname = {}, {}, {}
  local si, sf = {}, {} -- slice start as strings: si[id] .. sf[id] = us(start)
  local fpar, fpt, fres, frt = {}, {}, {}, {} -- pending spawn/resume flows
  local flow_id = 0

  local runpre = {}  -- the constant head of a task's run slices
  local function track(id, name, sort_index)
    local p = ',"pid":1,"tid":' .. id .. ',"ts":'
    pre[id] = p
    runpre[id] = ',\n{"ph":"X","cat":"run","name":"run"' .. p
    emit(',\n{"ph":"M","name":"thread_name","pid":1,"tid":' .. id
      .. ',"ts":0,"args":{"name":' .. quote(name) .. '}}')
    emit(',\n{"ph":"M","name":"thread_sort_index","pid":1,"tid":' .. id
      .. ',"ts":0,"args":{"sort_index":' .. sort_index .. '}}')
    return p
  end

  local ordered = util.by_start(source.tasks or {})
  for i, task in ipairs(ordered) do
    track(task.id, task.name or ("task " .. task.id), i)
    recorded[task.id] = true
  end
  local ntasks = #ordered

  local function flow(name, from_id, from_t, to_id, to_t)
    flow_id = flow_id + 1
    emit(',\n{"ph":"s","cat":"flow","name":"' .. name .. '","id":' .. flow_id
      .. pre[from_id] .. us(from_t) .. '}')
    emit(',\n{"ph":"f","bp":"e","cat":"flow","name":"' .. name .. '","id":' .. flow_id
      .. pre[to_id] .. us(to_t) .. '}')
  end

  -- Flows into the run slice [s, s+d] of task id, bound at its middle.
  local function flows_into(id, s, d)
    if with_flows and d >= 2 then
      local mid = s + d // 2
      if fpar[id] then flow("spawn", fpar[id], fpt[id], id, mid) end
      if fres[id] then flow("resume", fres[id], frt[id], id, mid) end
    end
    fpar[id], fres[id] = nil, nil
  end

  -- Close the run slice of task id at t (cold path; yields are inlined).
  local function close_run(id, p, t, args)
    local s = since[id]
    local d = t - s
    emit(',\n{"ph":"X","cat":"run","name":"run"' .. p .. us(s) .. ',"dur":' .. us(d)
      .. ',"args":{' .. args .. '}}')
    if fpar[id] or fres[id] then flows_into(id, s, d) end
  end

  -- Close the wait (or pending) slice of task id at t, inset by 1 ns.
  local function close_wait(id, p, t, args)
    local a = since[id] + 1
    local d = t - 1 - a
    if with_waits and d >= 1 then
      emit(',\n{"ph":"X","cat":"wait","name":' .. (st[id] == WAIT and wname[id] or '"pending"')
        .. p .. us(a) .. ',"dur":' .. us(d) .. ',"args":{' .. args .. '}}')
    end
  end

  local function running(other, t)
    return other and st[other] == RUN and t > since[other]
  end

  local nev, last = 0, 0
  for _, t, id, kind, loc, other, detail in source.iter_events() do
    nev = nev + 1
    t = t // 1 | 0 -- integer ns even when a recording gives floats
    last = t
    local p = pre[id]
    if not p then p = track(id, "task " .. id, ntasks + id) end
    local s = st[id]
    if kind == "resume" then
      -- Hot path, inlined: the wait slice that this resume ends.
      if s == WAIT and with_waits then
        local d = t - 2 - since[id] -- the wait slice is inset by 1 ns at each end
        if d >= 1 then
          n = n + 1
          buf[n] = ',\n{"ph":"X","cat":"wait","name":' .. wname[id] .. p .. si[id] .. sf[id]
            .. ',"dur":' .. (dcache[d // 1000] or dpart(d // 1000)) .. frac3[d % 1000]
            .. (wcache[detail or false] or wargs(detail))
          if n >= FLUSH_AT then flush() end
        end
      elseif s == PEND then
        close_wait(id, p, t, detail and ('"wake":' .. (qc[detail] or quote(detail))) or "")
      end
      st[id], since[id] = RUN, t
      local ti = t // 1000
      if ti ~= cur_i then cur_i, cur_s = ti, ti .. "." end
      si[id], sf[id] = cur_s, frac3[t % 1000]
      if other and running(other, t) then fres[id], frt[id] = other, t end
    elseif kind == "yield" then
      if s == RUN then
        -- Hot path, inlined: the run slice that this yield ends.
        local d = t - since[id]
        n = n + 1
        local row = ycache[loc or false]
        buf[n] = runpre[id] .. si[id] .. sf[id]
          .. ',"dur":' .. (dcache[d // 1000] or dpart(d // 1000)) .. frac3[d % 1000]
          .. (row and row[detail or false] or yargs(loc, detail))
        if n >= FLUSH_AT then flush() end
        if fpar[id] or fres[id] then flows_into(id, since[id], d) end
      end
      st[id], since[id] = WAIT, t
      local t1 = t + 1
      local ti = t1 // 1000
      if ti ~= cur_i then cur_i, cur_s = ti, ti .. "." end
      si[id], sf[id] = cur_s, frac3[t1 % 1000]
      local w = detail or loc or "wait"
      wname[id] = qc[w] or quote(w)
    elseif kind == "point" then
      emit(',\n{"ph":"i","s":"t","cat":"point","name":' .. quote(loc or "point") .. p .. us(t)
        .. (detail and (',"args":{"detail":' .. quote(detail) .. '}}') or '}'))
    elseif kind == "spawn" then
      st[id], since[id] = PEND, t
      if other and running(other, t) then fpar[id], fpt[id] = other, t end
    elseif kind == "complete" or END_INSTANT[kind] then
      local err = kind == "fail" and ('"error":' .. quote(detail or "")) or ""
      if s == RUN then
        close_run(id, p, t, kind == "complete" and '"end":"complete"' or err)
      elseif s == WAIT or s == PEND then
        close_wait(id, p, t, "")
      end
      if END_INSTANT[kind] then
        emit(',\n{"ph":"i","s":"t","cat":"end","name":' .. END_INSTANT[kind] .. p .. us(t)
          .. ',"args":{' .. err .. '}}')
      end
      st[id] = DONE
    elseif kind == "name" and loc and not recorded[id] then
      emit(',\n{"ph":"M","name":"thread_name","pid":1,"tid":' .. id
        .. ',"ts":0,"args":{"name":' .. quote(loc) .. '}}')
    end
  end

  -- Whatever is still open ends at the time of the export.
  local t_end = source.t and (source.t // 1 | 0) or last
  if t_end < last then t_end = last end
  local open = {}
  for id, s in pairs(st) do
    if s ~= DONE then open[#open + 1] = id end
  end
  table.sort(open)
  for _, id in ipairs(open) do
    if st[id] == RUN then
      close_run(id, pre[id], t_end, '"open":true')
    else
      close_wait(id, pre[id], t_end + 1, '"open":true')
    end
  end

  emit("\n]}\n")
  flush()
  f:flush()
  -- `records` counted pieces: the closing bracket is not a trace event.
  return { events = nev, records = records - 1, tasks = ntasks, bytes = bytes }
end

return M

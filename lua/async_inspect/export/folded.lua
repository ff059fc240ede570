--- Folded stacks (`frame;frame;... weight` per line) for flamegraph.pl,
-- inferno and speedscope, built from the event stream.
--
-- Stacks are `task name;await label;yield location` (the label or the
-- location is left out when unknown). Two weights:
--
-- * `busy`: nanoseconds spent running, attributed to the await point or
--   location where that run ended (the yield), or to `(complete)`,
--   `(failed)`, `(running)` for runs that ended otherwise. Time a task spends
--   inside a nested resume of another task is given to that other task, not
--   counted twice.
-- * `wait`: nanoseconds suspended, attributed to the await point waited at;
--   time before the first resume is `(pending)`.
-- @module async_inspect.export.folded

local util = require("async_inspect.export.util")

local M = {}

local ns = util.ns

--- Make a string safe as one frame: `;` separates frames and a line ends the
-- record, so `;` becomes `,` and line breaks and tabs become spaces.
-- @tparam string s
-- @treturn string
function M.frame(s)
  s = tostring(s):gsub(";", ","):gsub("[\r\n\t]", " ")
  s = s:gsub("^%s+", ""):gsub("%s+$", "")
  if s == "" then s = "?" end
  return s
end

local frame = M.frame

local END_TAIL = { complete = "(complete)", fail = "(failed)",
  cancel = "(cancelled)", drop = "(dropped)" }

local function task_names(tasks)
  local names = {}
  for _, t in ipairs(tasks or {}) do
    names[t.id] = frame(t.name or ("task " .. t.id))
  end
  return names
end

--- An aggregating sink over the event stream.
-- @tparam table tasks task records (for names)
-- @tparam[opt="busy"] string weight "busy" or "wait"
-- @treturn table sink with `feed(seq, t, task, kind, loc, other, detail)`,
--   `finish(t_end)` and `stacks()` (map stack -> weight in ns)
function M.aggregator(tasks, weight)
  local busy = (weight or "busy") == "busy"
  local names = task_names(tasks)
  local recorded = {}
  for id in pairs(names) do recorded[id] = true end
  local acc = {}       -- acc[name][tail] = ns
  local tails = {}     -- tails[label or ""][loc or ""] = "label;loc"
  local mode, since, self_ns, wait_tail, resumer = {}, {}, {}, {}, {}

  local function tail_of(label, loc)
    local a = label or ""
    local byloc = tails[a]
    if not byloc then byloc = {}; tails[a] = byloc end
    local b = loc or ""
    local tl = byloc[b]
    if not tl then
      if label and loc then tl = frame(label) .. ";" .. frame(loc)
      elseif label or loc then tl = frame(label or loc)
      else tl = "(unknown)" end
      byloc[b] = tl
    end
    return tl
  end

  local function add(id, tail, dt)
    if dt <= 0 then return end
    local name = names[id]
    if not name then name = "task " .. id; names[id] = name end
    local m = acc[name]
    if not m then m = {}; acc[name] = m end
    m[tail] = (m[tail] or 0) + dt
  end

  -- Close the running stretch of a task (busy: self time only).
  local function stop_running(id, t)
    if mode[id] == "run" then
      self_ns[id] = (self_ns[id] or 0) + (t - since[id])
    end
  end

  local function end_run(id, t, tail)
    stop_running(id, t)
    if busy then add(id, tail, self_ns[id] or 0) end
    self_ns[id] = 0
    -- The resumer gets control back: it runs again from here.
    local r = resumer[id]
    if r and mode[r] == "normal" then mode[r] = "run"; since[r] = t end
    resumer[id] = nil
  end

  local function end_wait(id, t)
    local m = mode[id]
    if not busy then
      if m == "wait" then add(id, wait_tail[id], t - since[id])
      elseif m == "pending" then add(id, "(pending)", t - since[id]) end
    end
  end

  local agg = {}

  function agg.feed(_, t, id, kind, loc, other, detail)
    t = ns(t)
    if kind == "spawn" then
      mode[id], since[id] = "pending", t
    elseif kind == "resume" then
      end_wait(id, t)
      if other and mode[other] == "run" then
        stop_running(other, t)
        mode[other] = "normal"
        resumer[id] = other
      end
      mode[id], since[id], self_ns[id] = "run", t, 0
    elseif kind == "yield" then
      if mode[id] == "run" or mode[id] == "normal" then end_run(id, t, tail_of(detail, loc)) end
      mode[id], since[id], wait_tail[id] = "wait", t, tail_of(detail, loc)
    elseif kind == "complete" or kind == "fail" or kind == "cancel" or kind == "drop" then
      local m = mode[id]
      if m == "run" or m == "normal" then
        end_run(id, t, END_TAIL[kind])
      else
        end_wait(id, t)
      end
      mode[id] = "ended"
    elseif kind == "name" and loc and not recorded[id] then
      -- Records carry the final name; a rename event only names tasks whose
      -- record is gone (evicted), so one task keeps one name in the graph.
      names[id] = frame(loc)
    end
  end

  function agg.finish(t_end)
    t_end = ns(t_end)
    if not t_end then return end
    for id, m in pairs(mode) do
      if m == "run" or m == "normal" then
        stop_running(id, t_end)
        if busy then add(id, "(running)", self_ns[id] or 0) end
        mode[id] = "ended"
      elseif m == "wait" or m == "pending" then
        end_wait(id, t_end)
        mode[id] = "ended"
      end
    end
  end

  function agg.stacks()
    local out = {}
    for name, m in pairs(acc) do
      for tail, w in pairs(m) do
        local key = name .. ";" .. tail
        out[key] = (out[key] or 0) + w
      end
    end
    return out
  end

  return agg
end

--- Sorted folded lines from a stacks map.
-- @tparam table stacks map stack -> weight
-- @treturn table array of `"stack weight"` strings, sorted by stack
function M.lines(stacks)
  local keys = {}
  for k, w in pairs(stacks) do
    if w > 0 then keys[#keys + 1] = k end
  end
  table.sort(keys)
  local out = {}
  for i, k in ipairs(keys) do out[i] = k .. " " .. math.floor(stacks[k]) end
  return out
end

--- Run the aggregator over a whole source.
-- @tparam table source export source (`tasks`, `iter_events`, `t`)
-- @tparam[opt="busy"] string weight "busy" or "wait"
-- @treturn table map stack -> weight (ns)
-- @treturn integer number of events read
function M.collect(source, weight)
  local agg = M.aggregator(source.tasks, weight)
  local feed, n, last = agg.feed, 0, 0
  for seq, t, task, kind, loc, other, detail in source.iter_events() do
    feed(seq, t, task, kind, loc, other, detail)
    n = n + 1
    last = t
  end
  agg.finish(source.t or last)
  return agg.stacks(), n
end

--- Write folded lines to a file handle.
-- @tparam file f
-- @tparam table source export source
-- @tparam[opt] table opts `weight` = "busy" (default) or "wait"
-- @treturn table summary `{events=, lines=, bytes=}`
function M.write(f, source, opts)
  local stacks, n = M.collect(source, opts and opts.weight)
  local w = util.writer(f)
  local lines = M.lines(stacks)
  for _, l in ipairs(lines) do w.put(l); w.put("\n") end
  w.flush()
  return { events = n, lines = #lines, bytes = w.bytes, tasks = #(source.tasks or {}) }
end

return M

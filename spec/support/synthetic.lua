--- A synthetic export source producing any number of events without
-- storing them: used by the streaming-memory spec and the throughput bench.
-- The events follow docs/internals.md: every task is spawned, then tasks
-- are resumed and yield in turn (at one of two sites per task, with a
-- location and an await label, and an inspection point every 16th turn), and at the end each is resumed once
-- more and completes.
local M = {}

--- Build the source.
-- @tparam integer n number of events (at least 3 * ntasks)
-- @tparam[opt=100] integer ntasks
-- @tparam[opt] function probe called as probe(seq) every `every` events
-- @tparam[opt=10000] integer every
function M.source(n, ntasks, probe, every)
  ntasks = ntasks or 100
  every = every or 10000
  assert(n >= 3 * ntasks, "need at least 3 events per task")
  local step = 97
  local locs, labels = {}, {}
  for i = 1, 16 do locs[i] = "worker.lua:" .. (10 + i) end
  for i = 1, 7 do labels[i] = "await " .. i end
  local tasks = {}
  for i = 1, ntasks do
    tasks[i] = { id = i, name = "worker " .. i, state = "completed", kind = "coroutine",
      created = i * step, created_at = "main.lua:5", last_change = n * step,
      ended = n * step, resumes = 0, busy = 0 }
  end
  local tail = n - 2 * ntasks -- first seq of the final resume/complete pairs
  local function iter_events()
    local seq, t, visit, in_point = 0, 0, 0, false
    local cur = 1
    local phase = 0 -- 0: resume next, 1: point or yield next
    return function()
      if seq >= n then return nil end
      seq = seq + 1
      t = t + step
      if probe and (seq % every == 0 or seq == n) then probe(seq) end
      if seq <= ntasks then
        return seq, t, seq, "spawn", "main.lua:5", nil, nil
      end
      if seq > tail then
        local j = seq - tail - 1
        local id = j // 2 + 1
        if j % 2 == 0 then return seq, t, id, "resume", nil, nil, nil end
        return seq, t, id, "complete", nil, nil, nil
      end
      if phase == 0 then
        phase = 1
        visit = visit + 1
        cur = visit % ntasks + 1
        in_point = visit % 16 == 0
        return seq, t, cur, "resume", nil, nil, "timer"
      end
      if in_point and seq < tail then
        in_point = false
        return seq, t, cur, "point", "checkpoint", nil, "visit"
      end
      phase = 0
      -- Two yield sites per task, so that a thousand events already show
      -- every distinct stack (the exports' memory depends on those, not on
      -- the number of events).
      local site = cur + (visit // ntasks) % 2
      return seq, t, cur, "yield", locs[site % 16 + 1], nil, labels[site % 7 + 1]
    end
  end
  return { tasks = tasks, iter_events = iter_events, t = n * step + step,
    stats = { tasks = ntasks, completed = ntasks, events = n, events_dropped = 0 } }
end

return M

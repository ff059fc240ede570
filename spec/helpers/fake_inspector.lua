-- A pure-Lua stand-in for the async_inspect inspector, following docs/internals.md and
-- the semantics of the C core (await kept until the next yield, busy counted up to now
-- while running, `normal` without a change of last_change), with a ring buffer that
-- overwrites old events. Used to test recording and the remote protocol without
-- depending on the C core; the real core is tested end to end separately.
local M = {}

function M.new(opts)
  opts = opts or {}
  local capacity = opts.capacity or 1000000
  local self = { t = 0 }
  local tasks, order, ring = {}, {}, {}
  local seq, first = 0, 1
  local since, resumed_by = {}, {}
  self.resources, self.warnings = nil, nil

  local function emit(task, kind, loc, other, detail)
    seq = seq + 1
    ring[seq] = { seq, self.t, task, kind, loc, other, detail }
    if seq - first + 1 > capacity then
      ring[first] = nil
      first = first + 1
    end
  end

  function self.advance(dt) self.t = self.t + dt end

  function self.spawn(name, parent, created_at)
    local id = #order + 1
    local rec = { id = id, name = name, parent = parent, state = "pending", kind = "coroutine",
      created = self.t, created_at = created_at, last_change = self.t, resumes = 0, busy = 0 }
    tasks[id] = rec
    order[id] = rec
    emit(id, "spawn", created_at, parent)
    return id
  end

  function self.resume(id, by, wake)
    local rec = tasks[id]
    rec.state, rec.resumes = "running", rec.resumes + 1
    rec.first_resume = rec.first_resume or self.t
    rec.last_change = self.t
    rec.where, rec.wait = nil, nil
    since[id] = self.t
    if by and tasks[by] and tasks[by].state == "running" then
      tasks[by].state = "normal"
      resumed_by[id] = by
    end
    emit(id, "resume", nil, by, wake)
  end

  local function stop(id)
    local rec = tasks[id]
    if since[id] then
      rec.busy = rec.busy + (self.t - since[id])
      since[id] = nil
    end
    local by = resumed_by[id]
    if by then
      resumed_by[id] = nil
      if tasks[by].state == "normal" then tasks[by].state = "running" end
    end
  end

  function self.yield(id, loc, label, wait)
    stop(id)
    local rec = tasks[id]
    rec.state, rec.last_change, rec.where, rec.await, rec.wait = "suspended", self.t, loc,
      label, wait
    emit(id, "yield", loc, nil, label)
  end

  local FINAL = { complete = "completed", fail = "failed", cancel = "cancelled",
    drop = "dropped" }
  local function finish(kind)
    return function(id, err)
      stop(id)
      local rec = tasks[id]
      rec.state, rec.ended, rec.last_change, rec.wait = FINAL[kind], self.t, self.t, nil
      if kind == "fail" then rec.error = err end
      emit(id, kind, nil, nil, err)
    end
  end
  self.complete, self.fail, self.cancel, self.drop =
    finish("complete"), finish("fail"), finish("cancel"), finish("drop")

  function self.rename(id, name)
    tasks[id].name = name
    emit(id, "name", name)
  end

  function self.point(id, label, detail) emit(id, "point", label, nil, detail) end

  function self.set_kind(id, kind) tasks[id].kind = kind end

  local function copy(rec)
    local c = {}
    for k, v in pairs(rec) do c[k] = v end
    if since[rec.id] then c.busy = c.busy + (self.t - since[rec.id]) end
    return c
  end

  function self.now() return self.t end

  function self.task_info(id)
    return tasks[id] and copy(tasks[id]) or nil
  end

  function self.tasks()
    local out = {}
    for i = 1, #order do out[i] = copy(order[i]) end
    return out
  end

  function self.stats()
    local s = { tasks = #order, active = 0, running = 0, suspended = 0, pending = 0,
      completed = 0, failed = 0, cancelled = 0, dropped = 0, normal = 0, events = seq,
      events_dropped = first - 1, evicted = 0, uptime = self.t }
    for _, rec in ipairs(order) do
      s[rec.state] = s[rec.state] + 1
      if rec.state == "pending" or rec.state == "running" or rec.state == "suspended"
        or rec.state == "normal" then s.active = s.active + 1 end
    end
    return s
  end

  function self.iter_events(from)
    local i = math.max(from or first, first)
    return function()
      local e = ring[i]
      if not e then return nil end
      i = i + 1
      return table.unpack(e, 1, 7)
    end
  end

  function self.snapshot(o)
    local snap = { t = self.t, stats = self.stats(), tasks = self.tasks(),
      resources = self.resources, warnings = self.warnings }
    if o and o.events then
      snap.events = {}
      for s2, t, task, kind, loc, other, detail in self.iter_events() do
        snap.events[#snap.events + 1] = { seq = s2, t = t, task = task, kind = kind,
          loc = loc, other = other, detail = detail }
      end
    end
    return snap
  end

  return self
end

return M

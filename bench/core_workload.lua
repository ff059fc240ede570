-- One benchmark workload in one mode, in a fresh process (bench/run.lua drives it).
--   lua5.4 bench/core_workload.lua MODE WORKLOAD N
-- MODE: bare | floor | clockfloor | uninstalled | disabled | nolocations | enabled | sampled | naive | sethook
-- WORKLOAD: roundtrip (resume+yield of one coroutine) | lifecycle (create + run to completion)
-- Prints the wall time of the measured loop in seconds.
-- luacheck: ignore 122 (the comparison modes replace coroutine functions)
local mode, workload, n = arg[1], arg[2], tonumber(arg[3])
assert(mode and workload and n, "usage: core_workload.lua MODE WORKLOAD N")

-- Every mode keeps the same ~1.2 MB of live data, like any real program. With
-- a near-empty heap, Lua's GC pacing makes the create/collect cycle of the
-- lifecycle loop sensitive to any extra live memory (loading any 60 KB
-- module changes it by ~15%), which would measure the heap size, not the
-- hooks. BENCH_BALLAST=0 shows that effect (docs/performance.md).
local ballast = {}
for i = 1, tonumber(os.getenv("BENCH_BALLAST") or 20000) do ballast[i] = { i } end
_G.BENCH_BALLAST = ballast -- kept live for the whole run

local ai
if mode == "floor" or mode == "clockfloor" then
  -- lcorolib's own resume/create copied into a separate C module (bench/nullhook.c);
  -- clockfloor: that resume reading the clock before and after, recording nothing
  local null = require "ai_nullhook"
  coroutine.resume = mode == "floor" and null.resume or null.resume_clocked
  coroutine.create = null.create
elseif mode ~= "bare" and mode ~= "naive" and mode ~= "sethook" then
  ai = require "async_inspect"
  if mode == "uninstalled" then ai.uninstall()
  elseif mode == "disabled" then ai.disable()
  elseif mode == "nolocations" then ai.configure{ locations = false }
  elseif mode == "sampled" then ai.configure{ sample = 0.01 }
  elseif mode ~= "enabled" then error("unknown mode " .. mode) end
  -- ring and retention come from ASYNC_INSPECT_RING / ASYNC_INSPECT_MAX_TASKS (bench/run.lua)
elseif mode == "naive" then
  -- what a pure-Lua tracker costs: wrap resume, keep per-task tables
  local resume, create = coroutine.resume, coroutine.create
  local tasks = setmetatable({}, { __mode = "k" })
  local clock = os.clock
  coroutine.create = function(f)
    local co = create(f)
    tasks[co] = { created = clock(), resumes = 0, busy = 0, state = "pending" }
    return co
  end
  coroutine.resume = function(co, ...)
    local t = tasks[co]
    if not t then return resume(co, ...) end
    local t0 = clock()
    t.state, t.resumes = "running", t.resumes + 1
    local r = table.pack(resume(co, ...))
    t.busy = t.busy + (clock() - t0)
    local info = debug.getinfo(co, 1, "Sl")
    t.where = info and (info.short_src .. ":" .. info.currentline)
    t.state = coroutine.status(co)
    return table.unpack(r, 1, r.n)
  end
elseif mode == "sethook" then
  local count = 0
  debug.sethook(function() count = count + 1 end, "c")
  local create = coroutine.create
  coroutine.create = function(f)
    local co = create(f)
    debug.sethook(co, function() count = count + 1 end, "c")
    return co
  end
end

local create, resume, yield = coroutine.create, coroutine.resume, coroutine.yield

local function roundtrip()
  local co = create(function() while true do yield() end end)
  resume(co)
  local t0 = os.clock()
  for _ = 1, n do resume(co) end
  return os.clock() - t0
end

local function body() return 1 end
local function lifecycle()
  local t0 = os.clock()
  for _ = 1, n do resume(create(body)) end
  return os.clock() - t0
end

local fn = ({ roundtrip = roundtrip, lifecycle = lifecycle })[workload]
assert(fn, "unknown workload " .. workload)
collectgarbage()
print(string.format("%.6f", fn()))
if ai and os.getenv("BENCH_CHECK") then
  io.stderr:write(("tasks=%d events=%d\n"):format(ai.stats().tasks, ai.stats().events_total))
end

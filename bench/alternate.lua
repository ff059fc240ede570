-- Wall time of the core's modes in one process, blocks of each mode alternating.
--   lua5.4 bench/alternate.lua [ROUNDS] [N_ROUNDTRIP] [N_LIFECYCLE]
--
-- Separate processes (bench/core_workload.lua) carry each process's own luck: where
-- the heap and the code land, what the neighbours on this shared host do. Here every
-- mode runs in the same process, in short blocks taken in turn, so that luck is
-- shared; the baseline is Lua's own coroutine functions, restored by ai.uninstall().
-- Prints, per workload and mode, the best and the median block as ns per operation
-- and as a ratio to the baseline's.

local ai = require "async_inspect"

local rounds = tonumber(arg[1]) or 30
local n_rt = tonumber(arg[2]) or 200000
local n_lc = tonumber(arg[3]) or 50000

-- the same live heap as bench/core_workload.lua keeps
local ballast = {}
for i = 1, 20000 do ballast[i] = { i } end
_G.BENCH_BALLAST = ballast -- kept live for the whole run

local MODES = {
  { "lua", "Lua's own functions (ai.uninstall())", function() ai.uninstall() end },
  { "disabled", "installed, ai.disable()", function() ai.install(); ai.disable() end },
  { "nolocations", "enabled, yield locations off", function()
    ai.install(); ai.enable(); ai.configure{ locations = false }
  end },
  { "enabled", "enabled with yield locations (default)", function()
    ai.install(); ai.enable(); ai.configure{ locations = true }
  end },
}

local clock = os.clock

local function roundtrip(n)
  local resume = coroutine.resume
  local co = coroutine.create(function() while true do coroutine.yield() end end)
  local t0 = clock()
  for _ = 1, n do resume(co) end
  return clock() - t0
end

local function lifecycle(n)
  local create, resume = coroutine.create, coroutine.resume
  local body = function() end
  local t0 = clock()
  for _ = 1, n do resume(create(body)) end
  return clock() - t0
end

local function median(xs)
  table.sort(xs)
  return xs[(#xs + 1) // 2]
end

local function measure(name, fn, n)
  local times = {}
  for _, m in ipairs(MODES) do times[m[1]] = {} end
  for _ = 1, rounds do
    for _, m in ipairs(MODES) do
      m[3]()
      collectgarbage()
      local t = times[m[1]]
      t[#t + 1] = fn(n) / n
    end
    ai.reset()
  end
  local base_best, base_med = math.huge, median(times.lua)
  for _, x in ipairs(times.lua) do base_best = math.min(base_best, x) end
  print(("%s (%d blocks of %d per mode)"):format(name, rounds, n))
  for _, m in ipairs(MODES) do
    local xs = times[m[1]]
    local best = math.huge
    for _, x in ipairs(xs) do best = math.min(best, x) end
    local med = median(xs)
    print(("  %-12s best %7.1f ns %5.2fx   median %7.1f ns %5.2fx   %s"):format(m[1], best * 1e9,
      best / base_best, med * 1e9, med / base_med, m[2]))
  end
end

measure("round trip (resume + yield)", roundtrip, n_rt)
measure("lifecycle (create + run to completion)", lifecycle, n_lc)
ai.install()

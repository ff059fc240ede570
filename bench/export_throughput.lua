--- Export throughput: events per second written to Chrome trace JSON (and,
-- for comparison, the other streaming exporters) from a synthetic source
-- of 1,000,000 events.
--
--   lua5.4 bench/export_throughput.lua [events]
-- The target is >= 1,000,000 events/s for Chrome JSON. Times are the best of
-- three runs (CPU time), so that a noisy machine does not hide the rate.
local ROOT = (arg and arg[0] or ""):match("^(.*)/bench/[^/]*$") or "."
package.path = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;" .. ROOT .. "/?.lua;" .. package.path

local export = require("async_inspect.export")
local synthetic = require("spec.support.synthetic")

local N = tonumber(arg and arg[1]) or 1000000
local TASKS = 1000
local out = os.tmpname()

local function best_of(runs, fn)
  local best = math.huge
  for _ = 1, runs do
    collectgarbage()
    local t0 = os.clock()
    fn()
    local dt = os.clock() - t0
    if dt < best then best = dt end
  end
  return best
end

-- Cost of producing the events alone, to report the exporter's own rate.
local gen = best_of(3, function()
  for _ in synthetic.source(N, TASKS).iter_events() do end
end)

local function bench(name, fn)
  local dt = best_of(3, fn)
  local size = io.open(out, "rb"):seek("end")
  print(("%-14s %9.0f events/s  (%.3f s for %d events, %.1f MB; exporter alone: %9.0f events/s)")
    :format(name, N / dt, dt, N, size / 1e6, N / math.max(dt - gen, 1e-9)))
  return N / dt
end

print(("synthetic source: %d events, %d tasks; generator alone %.3f s"):format(N, TASKS, gen))
local rate = bench("chrome_trace", function()
  export.chrome_trace(out, { source = synthetic.source(N, TASKS) })
end)
bench("json", function() export.json(out, { source = synthetic.source(N, TASKS) }) end)
local tasks_csv = os.tmpname()
bench("csv (events)", function()
  export.csv(tasks_csv, out, { source = synthetic.source(N, TASKS) })
end)
os.remove(tasks_csv)
bench("folded", function()
  export.folded({ path = out, source = synthetic.source(N, TASKS) })
end)
os.remove(out)
print(("chrome_trace: %s the 1,000,000 events/s target"):format(rate >= 1e6 and "meets" or "MISSES"))

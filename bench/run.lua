-- make bench: one table of what async_inspect costs, measured in this run.
--
-- Per resume/yield round trip and per task lifecycle (create + run to
-- completion): instructions from valgrind --tool=callgrind (stable on noisy
-- machines: the difference between two loop lengths, so start-up cancels
-- out) and wall time (best of 3), each as a ratio to bare Lua 5.4. Then
-- memory per retained task, export throughput and report times.
--
-- Environment: BENCH_QUICK=1 runs shorter loops; BENCH_NO_CALLGRIND=1 skips
-- the instruction counts.

local ROOT = arg[0]:match("^(.*)/bench/run%.lua$") or "."
local LUA = "lua5.4"
local quick = os.getenv("BENCH_QUICK") == "1"
local use_callgrind = os.getenv("BENCH_NO_CALLGRIND") ~= "1"
  and os.execute("command -v valgrind >/dev/null 2>&1") == true

local MODES = {
  { "bare", "plain Lua 5.4, async_inspect not loaded" },
  { "floor", "lcorolib's own code in a separate C module (bench/nullhook.c)" },
  { "clockfloor", "the floor plus two clock reads per resume, recording nothing" },
  { "uninstalled", "loaded, then ai.uninstall()" },
  { "disabled", "installed, ai.disable()" },
  { "nolocations", "enabled, yield locations off" },
  { "enabled", "enabled with yield locations (default)" },
  { "sampled", "enabled, sample = 0.01" },
  { "naive", "naive pure-Lua wrapper (comparison)" },
  { "sethook", "debug.sethook call tracer (comparison)" },
}

local ENV = "ASYNC_INSPECT_RING=65536 ASYNC_INSPECT_MAX_TASKS=1000 "

local function run(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  p:close()
  return out
end

local function wall_once(mode, workload, n)
  local out = run(("%s%s %s/bench/core_workload.lua %s %s %d"):format(ENV, LUA, ROOT, mode, workload, n))
  return (tonumber(out) or math.huge) / n
end

-- wall time is noisy here: each mode alternates with bare Lua, best of 5 each,
-- and its ratio is taken against the bare runs made beside it
local function wall_ratio(mode, workload, n)
  local best_mode, best_bare = math.huge, math.huge
  for _ = 1, 5 do
    best_bare = math.min(best_bare, wall_once("bare", workload, n))
    best_mode = math.min(best_mode, wall_once(mode, workload, n))
  end
  return best_mode / best_bare, best_bare
end

local function instructions(mode, workload, n)
  local out = run(("%svalgrind --tool=callgrind --callgrind-out-file=/dev/null %s %s/bench/core_workload.lua"
    .. " %s %s %d 2>&1"):format(ENV, LUA, ROOT, mode, workload, n))
  return tonumber(out:match("Collected : (%d+)"))
end

local function per_op_instructions(mode, workload)
  local a, b = 10000, 60000
  local ia, ib = instructions(mode, workload, a), instructions(mode, workload, b)
  if not ia or not ib then return nil end
  return (ib - ia) / (b - a)
end

local function ratio(x, base)
  if not x or not base or base == 0 then return "   -  " end
  return ("%5.2fx"):format(x / base)
end

local function lua_script(code)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(code)
  f:close()
  local out = run(("%s %s 2>&1"):format(LUA, path))
  os.remove(path)
  return out
end

local function core_table()
  local n_rt = quick and 300000 or 2000000
  local n_lc = quick and 100000 or 500000
  local rows, base = {}, {}
  for _, m in ipairs(MODES) do
    local name = m[1]
    local r = { name = name, what = m[2] }
    r.rt_wall, r.rt_bare = wall_ratio(name, "roundtrip", name == "naive" and n_rt // 10 or n_rt)
    r.lc_wall, r.lc_bare = wall_ratio(name, "lifecycle", name == "naive" and n_lc // 10 or n_lc)
    if use_callgrind then
      r.rt_ins = per_op_instructions(name, "roundtrip")
      r.lc_ins = per_op_instructions(name, "lifecycle")
    end
    if name == "bare" then base = r end
    rows[#rows + 1] = r
  end
  print("Per operation, against bare Lua 5.4 in this run")
  print(("%-12s %9s %8s %8s | %9s %8s %8s  %s"):format("mode", "rt ins", "rt ins×", "rt wall×",
    "life ins", "life ins×", "life wall×", "what"))
  for _, r in ipairs(rows) do
    print(("%-12s %9s %8s %8s | %9s %8s %8s  %s"):format(r.name,
      r.rt_ins and ("%.0f"):format(r.rt_ins) or "-", ratio(r.rt_ins, base.rt_ins), ratio(r.rt_wall, 1),
      r.lc_ins and ("%.0f"):format(r.lc_ins) or "-", ratio(r.lc_ins, base.lc_ins), ratio(r.lc_wall, 1),
      r.what))
  end
  print(("bare round trip: %.0f ns wall, lifecycle: %.0f ns wall"):format(base.rt_bare * 1e9, base.lc_bare * 1e9))
  local clock = tonumber(lua_script('print(require("ai_nullhook").clock_ns())'))
  if clock then
    print(("one clock read (the tracker's timestamp): %.1f ns; two per round trip = %.0f%% of a bare one")
      :format(clock, 200 * clock / (base.rt_bare * 1e9)))
  end
end


local function memory_table()
  local out = lua_script([[
    local ai = require "async_inspect"
    ai.configure{ max_tasks = 200000 }
    local function rss()
      local f = io.open("/proc/self/statm"); local s = f:read("a"); f:close()
      return tonumber(s:match("^%d+ (%d+)")) * 4096
    end
    local n = 200000
    collectgarbage(); collectgarbage()
    local before, heap0 = rss(), collectgarbage("count")
    for _ = 1, n do coroutine.resume(coroutine.create(function() end)) end
    collectgarbage(); collectgarbage()
    local after, heap1 = rss(), collectgarbage("count")
    local s = ai.stats()
    -- records live in Lua userdata chunks; the retention queue (4 bytes each) in C
    local heap = ((heap1 - heap0) * 1024 + 4 * n) / n
    print(("%d %d %d %d %.1f"):format(s.retained, s.task_record_bytes, s.event_bytes,
      (after - before) // n, heap))
  ]])
  local retained, rec, ev, rss, heap = out:match("(%d+) (%d+) (%d+) (%-?%d+) ([%d.]+)")
  print()
  print("Memory")
  print(("  task record: %s bytes + 4 bytes of retention queue per retained record (limit 128)"):format(rec or "?"))
  print(("  event: %s bytes (limit 32)"):format(ev or "?"))
  print(("  measured per retained finished task, %s retained: %s bytes (record chunks + retention queue)")
    :format(retained or "?", heap or "?"))
  print(("  process RSS growth per task in the same run: %s bytes (also the garbage coroutines' memory,"
    .. " which malloc keeps)"):format(rss or "?"))
end

local function export_throughput()
  local path = ROOT .. "/bench/export_throughput.lua"
  local f = io.open(path)
  if not f then return end
  f:close()
  print()
  print("Export throughput (bench/export_throughput.lua)")
  io.write(run(("%s %s %s 2>&1"):format(LUA, path, quick and "200000" or "")))
end

local function report_times()
  print()
  print("Report time over many retained tasks (ai.tasks() + summary + compact)")
  for _, n in ipairs(quick and { 10000, 100000 } or { 10000, 100000, 1000000 }) do
    local out = lua_script(([[
      local ai = require "async_inspect"
      ai.configure{ max_tasks = %d, ring_capacity = 1 << 16 }
      local n = %d
      for i = 1, n do coroutine.resume(coroutine.create(function() end)) end
      local t0 = os.clock()
      local tasks = ai.tasks()
      local t1 = os.clock()
      local s = ai.report.summary{ ascii = true, color = false }
      local c = ai.report.compact()
      local t2 = os.clock()
      assert(#tasks == n and #s > 0 and #c > 0)
      print(("%%.3f %%.3f"):format(t1 - t0, t2 - t1))
    ]]):format(n, n))
    local q, r = out:match("([%d.]+) ([%d.]+)")
    print(("  %8d tasks: ai.tasks() %s s, summary + compact %s s"):format(n, q or "?", r or out))
  end
end

print(("async_inspect benchmarks, %s, %s"):format(os.date("!%Y-%m-%d %H:%M UTC"),
  (run("uname -srm"):gsub("\n", ""))))
print(("cpu: %s"):format((run("grep -m1 'model name' /proc/cpuinfo"):match(":%s*(.-)%s*$") or "?")))
local function other_bench(title, file, args, env)
  local path = ROOT .. "/bench/" .. file
  local f = io.open(path)
  if not f then return end
  f:close()
  print()
  print(title .. " (bench/" .. file .. ")")
  io.write(run(("%s%s %s %s 2>&1"):format(env or "", LUA, path, args or "")))
end

print()
core_table()
other_bench("Wall time in one process, the modes' blocks alternating", "alternate.lua",
  quick and "10 100000 20000" or "30", ENV)
memory_table()
export_throughput()
report_times()
other_bench("luv scheduler against plain luv", "luv_bench.lua",
  quick and "--runs 1 --spawn 20000 --messages 100000" or "--runs 3")
other_bench("luv scheduler against plain luv, one process", "luv_bench.lua",
  quick and "--alternate --runs 2 --spawn 20000 --messages 100000" or "--alternate --runs 5")
other_bench("Tracked locks and deadlock detection", "sync_bench.lua")

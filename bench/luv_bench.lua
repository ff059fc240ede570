--- Benchmark: tracked tasks over luv (async_inspect.luv) against the same programs
-- written with plain luv and coroutines, without async_inspect loaded at all.
--
-- Cases:
--   spawn     spawn 100,000 trivial tasks, then join each one
--   pingpong  1,000,000 messages between two tasks, each handed over through the loop
--
-- Each case runs in fresh processes (plain and tracked alternate), best of --runs;
-- the ratio is tracked / plain wall time (target: <= 1.3).
--
-- With --alternate both programs run in this one process instead, in turn, --runs
-- times each: the plain one with async_inspect's hooks uninstalled (Lua's own
-- coroutine functions), so both share the process's luck; best and median ratios,
-- then the live memory a queued task holds in each.
--
-- Usage: lua5.4 bench/luv_bench.lua [--runs N] [--spawn N] [--messages N] [--json] [--alternate]
-- (LUA_PATH_5_4 / LUA_CPATH_5_4 as for the specs; `make bench` sets them)

local uv = require "luv"

-- the plain program: a ready queue drained by an idle handle, like aio's ---------------

local function plain_runtime()
  local rt = {}
  local q_co, q_n, q_val = {}, {}, {}
  local head, tail = 1, 0
  local idle
  local tasks = setmetatable({}, { __mode = "k" })

  local function finish(t, ok, ...)
    if coroutine.status(t.co) ~= "dead" then return end
    t.done, t.ok = true, ok
    t.results = table.pack(...)
    local j = t.joiners
    if j then
      t.joiners = nil
      for i = 1, #j do rt.wake(j[i]) end
    end
  end

  local function drain()
    local budget = 4096
    local i = head
    while i <= tail and budget > 0 do
      local co, n, val = q_co[i], q_n[i], q_val[i]
      q_co[i], q_val[i] = nil, nil
      i = i + 1
      head = i
      budget = budget - 1
      local t = tasks[co]
      if n == 0 then finish(t, coroutine.resume(co)) else finish(t, coroutine.resume(co, val)) end
    end
    if head > tail then
      head, tail = 1, 0
      idle:close()
      idle = nil
    end
  end

  function rt.wake(t, ...)
    local i = tail + 1
    tail = i
    q_co[i], q_n[i], q_val[i] = t.co, select("#", ...), (...)
    if idle == nil then
      idle = uv.new_idle()
      idle:start(drain)
    end
  end

  function rt.spawn(fn)
    local t = { co = coroutine.create(fn) }
    tasks[t.co] = t
    rt.wake(t)
    return t
  end

  function rt.join(t)
    if not t.done then
      local me = tasks[coroutine.running()]
      t.joiners = t.joiners or {}
      t.joiners[#t.joiners + 1] = me
      coroutine.yield()
    end
    if not t.ok then error(t.results[1], 0) end
    return table.unpack(t.results, 1, t.results.n)
  end

  function rt.current() return tasks[coroutine.running()] end
  function rt.suspend() return coroutine.yield() end

  function rt.run(fn)
    local t = rt.spawn(fn)
    uv.run()
    return rt.join(t)
  end
  return rt
end

-- the tracked program: the same, through async_inspect.luv ------------------------------

local function tracked_runtime()
  local aio = require "async_inspect.luv"
  return {
    spawn = function(fn) return aio.spawn("t", fn) end,
    join = function(t) return t:join() end,
    wake = aio.wake,
    current = aio.current,
    suspend = function() return aio.suspend("recv", "message") end,
    run = aio.run,
  }
end

-- the two programs, written once against either runtime ------------------------------------

local CASES = {}

function CASES.spawn(rt, n)
  return rt.run(function()
    local handles = {}
    for i = 1, n do handles[i] = rt.spawn(function() return i end) end
    local sum = 0
    for i = 1, n do sum = sum + rt.join(handles[i]) end
    assert(sum == n * (n + 1) // 2)
    return sum
  end)
end

function CASES.pingpong(rt, n)
  return rt.run(function()
    local ping, pong
    local received = 0
    pong = rt.spawn(function()
      while true do
        local msg = rt.suspend()
        if msg == nil then return received end
        received = received + 1
        rt.wake(ping, msg + 1)
      end
    end)
    ping = rt.spawn(function()
      local v = 0
      for _ = 1, n do
        rt.wake(pong, v)
        v = rt.suspend()
      end
      rt.wake(pong, nil)
      return v
    end)
    local last = rt.join(ping)
    assert(rt.join(pong) == n and last == n)
    return last
  end)
end

-- one measurement in this process ------------------------------------------------------------

local function measure(mode, case, n)
  local rt = mode == "tracked" and tracked_runtime() or plain_runtime()
  collectgarbage()
  local t0 = uv.hrtime()
  CASES[case](rt, n)
  return (uv.hrtime() - t0) / 1e9
end

-- live Lua memory a queued task holds (bytes), 20,000 tasks spawned and not yet run
local function memory_per_task(mode)
  local rt = mode == "tracked" and tracked_runtime() or plain_runtime()
  local n, per = 20000, nil
  rt.run(function()
    collectgarbage()
    collectgarbage()
    local before = collectgarbage("count")
    local handles = {}
    for i = 1, n do handles[i] = rt.spawn(function() return i end) end
    collectgarbage()
    collectgarbage()
    per = (collectgarbage("count") - before) * 1024 / n
    for i = 1, n do rt.join(handles[i]) end
  end)
  return per
end

-- the driver: fresh processes, alternating -----------------------------------------------------

local function parse(args)
  local o = { runs = 5, spawn = 100000, messages = 1000000 }
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--child" then o.child = { args[i + 1], args[i + 2], tonumber(args[i + 3]) }; i = i + 3
    elseif a == "--memory-child" then o.memory_child = args[i + 1]; i = i + 1
    elseif a == "--json" then o.json = true
    elseif a == "--alternate" then o.alternate = true
    elseif a == "--runs" or a == "--spawn" or a == "--messages" then
      o[a:sub(3)] = assert(tonumber(args[i + 1]), "a number expected after " .. a)
      i = i + 1
    else error("unknown argument " .. a) end
    i = i + 1
  end
  return o
end

local function run_child(mode, case, n)
  local script = debug.getinfo(1, "S").source:sub(2)
  local cmd = string.format("lua5.4 %q --child %s %s %d", script, mode, case, n)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local ok = p:close()
  local secs = tonumber(out:match("seconds=(%S+)"))
  if not ok or not secs then error("benchmark child failed: " .. cmd .. "\n" .. out) end
  return secs
end

local function best_of(runs, mode, case, n)
  local best = math.huge
  for _ = 1, runs do best = math.min(best, run_child(mode, case, n)) end
  return best
end

local function median(xs)
  table.sort(xs)
  return xs[(#xs + 1) // 2]
end

-- the memory each program's queued task holds, each measured in a fresh process (so
-- that both grow their tables from nothing)
local function memory_line()
  local script = debug.getinfo(1, "S").source:sub(2)
  local per = {}
  for _, mode in ipairs({ "plain", "tracked" }) do
    local p = assert(io.popen(string.format("lua5.4 %q --memory-child %s", script, mode)))
    local out = p:read("a")
    p:close()
    per[mode] = assert(tonumber(out:match("bytes=(%S+)")), "memory child failed: " .. out)
  end
  return string.format("live memory a queued task holds (fresh processes): plain %.0f B, tracked %.0f B "
    .. "(the coroutine's own included; the core's records are outside Lua's heap)", per.plain, per.tracked)
end

-- both programs in this process, in turn; plain runs with the hooks uninstalled
local function alternate(o)
  local ai = require "async_inspect"
  print(string.format("%-10s %10s %12s %12s %8s %8s  %s", "case", "n", "plain", "tracked", "best",
    "median", "(one process, alternating)"))
  for _, case in ipairs({ "spawn", "pingpong" }) do
    local n = case == "spawn" and o.spawn or o.messages
    local times = { plain = {}, tracked = {} }
    for _ = 1, o.runs do
      for _, mode in ipairs({ "plain", "tracked" }) do
        if mode == "plain" then ai.uninstall() else ai.install() end
        local t = times[mode]
        t[#t + 1] = measure(mode, case, n)
      end
      ai.reset()
    end
    ai.install()
    local bp, bt = math.min(table.unpack(times.plain)), math.min(table.unpack(times.tracked))
    local ratio = bt / bp
    print(string.format("%-10s %10d %11.3fs %11.3fs %7.2fx %7.2fx  %s", case, n, bp, bt, ratio,
      median(times.tracked) / median(times.plain), ratio <= 1.3 and "<= 1.3x ok" or "> 1.3x MISSED"))
  end
  print(memory_line())
end

local function main(args)
  local o = parse(args)
  if o.child then
    local mode, case, n = o.child[1], o.child[2], o.child[3]
    io.write(string.format("seconds=%.6f\n", measure(mode, case, n)))
    return
  end
  if o.memory_child then
    io.write(string.format("bytes=%.1f\n", memory_per_task(o.memory_child)))
    return
  end
  if o.alternate then return alternate(o) end
  local results = {}
  for _, case in ipairs({ "spawn", "pingpong" }) do
    local n = case == "spawn" and o.spawn or o.messages
    local plain, tracked = math.huge, math.huge
    for _ = 1, o.runs do -- alternate, so drift in machine load hits both
      plain = math.min(plain, best_of(1, "plain", case, n))
      tracked = math.min(tracked, best_of(1, "tracked", case, n))
    end
    results[#results + 1] = { case = case, n = n, plain = plain, tracked = tracked,
                              ratio = tracked / plain }
  end
  if o.json then
    local parts = {}
    for _, r in ipairs(results) do
      parts[#parts + 1] = string.format('{"case":"%s","n":%d,"plain_s":%.6f,"tracked_s":%.6f,"ratio":%.3f}',
        r.case, r.n, r.plain, r.tracked, r.ratio)
    end
    print("[" .. table.concat(parts, ",") .. "]")
    return
  end
  print(string.format("%-10s %10s %12s %12s %8s  %s", "case", "n", "plain", "tracked", "ratio", "target"))
  for _, r in ipairs(results) do
    print(string.format("%-10s %10d %11.3fs %11.3fs %7.2fx  %s", r.case, r.n, r.plain, r.tracked,
      r.ratio, r.ratio <= 1.3 and "<= 1.3x ok" or "> 1.3x MISSED"))
  end
  print(memory_line())
end

if ... == "luv_bench" then -- required: expose the parts (for profiling)
  return { plain_runtime = plain_runtime, tracked_runtime = tracked_runtime, cases = CASES }
end
main(arg)

-- Nothing a Lua program does through the API may crash the process: every
-- public function of every module is called with hostile arguments (wrong
-- types, huge strings, NaN, tables whose metamethods raise, threads, luv
-- handles) in a child process, which must survive, keep tracking, and exit 0.
-- Under the sanitiser run the child inherits the sanitised build.

local process = require "spec.support.process"

local CHILD = [=[
local ai = require "async_inspect"
local uv = require "luv"
local mods = {
  ai = ai, core = ai.core, report = ai.report, export = ai.export, profile = ai.profile,
  sync = ai.sync, where = require "async_inspect.where", render = require "async_inspect.render",
  aio = require "async_inspect.luv", remote = require "async_inspect.remote",
  record = require "async_inspect.record", model = require "async_inspect.model",
  tasks_view = require "async_inspect.views.tasks", gantt = require "async_inspect.views.gantt",
  detail_view = require "async_inspect.views.detail", config = require "async_inspect.config",
  deadlock = require "async_inspect.deadlock",
}
local hostile = setmetatable({}, {
  __index = function() error("index!") end, __newindex = function() error("newindex!") end,
  __tostring = function() error("tostring!") end, __len = function() error("len!") end,
  __pairs = function() error("pairs!") end, __call = function() error("call!") end,
  __name = "evil",
})
local values = { true, false, 0, -1, 1.5, math.maxinteger, math.mininteger, math.huge, 0 / 0, "",
  "x", ("y"):rep(200000), "\0\255", {}, hostile, print, coroutine.create(function() end),
  coroutine.running(), io.stdout, uv.new_timer(), { t = "x", tasks = 1 },
  { tasks = { hostile }, t = 0, stats = {} } }
values[#values + 1] = nil -- and nil itself, through the index past the end
-- functions that change the process itself (loop, hooks, signals, terminal)
local skip = { ["ai.uninstall"] = true, ["ai.disable"] = true, ["core.enable"] = true,
  ["aio.run"] = true, ["remote.console"] = true, ["record.replay"] = true,
  ["aio.dump_on_signal"] = true, ["core.reset"] = true, ["ai.reset"] = true }
-- helpers that wait (on the main thread they run the loop until woken): a
-- valid argument such as a long sleep would wait for real, so they get only
-- arguments that must be refused
local waiting = { sleep = true, await = true, suspend = true, read = true,
  wait_all = true, wait_any = true }
for name in pairs(waiting) do skip["aio." .. name] = true end
local refused = { nil, true, "", "x", -1, 0 / 0, math.huge, -math.huge, hostile, {} }
local real_stdout = io.stdout
io.output("/dev/null") -- print_ twins write to stdout
local calls, raised = 0, 0
local names = {}
for mname in pairs(mods) do names[#names + 1] = mname end
table.sort(names)
for _, mname in ipairs(names) do
  local fnames = {}
  for fname, fn in pairs(mods[mname]) do
    if type(fn) == "function" and not skip[mname .. "." .. fname] then fnames[#fnames + 1] = fname end
  end
  table.sort(fnames)
  for _, fname in ipairs(fnames) do
    local fn = mods[mname][fname]
    for i = 1, #values + 1 do
      for j = 1, 2 do
        calls = calls + 1
        local ok = pcall(fn, values[i], values[(i * 7 + j) % (#values + 1) + 1])
        if not ok then raised = raised + 1 end
      end
    end
  end
end
for name in pairs(waiting) do
  for i = 1, #refused + 1 do
    calls = calls + 1
    local ok = pcall(mods.aio[name], refused[i], refused[(i * 3) % (#refused + 1) + 1])
    if not ok then raised = raised + 1 end
  end
end
-- the inspector still works
ai.install(); ai.enable()
local co = coroutine.create(function() coroutine.yield() end)
coroutine.resume(co)
assert(ai.task_info(co).state == "suspended")
collectgarbage(); collectgarbage()
real_stdout:write(("calls %d raised %d\n"):format(calls, raised))
]=]

describe("hostile input to every public function", function()
  it("never crashes the process and leaves the inspector working", function()
    -- in a scratch directory: writers called with "x" as a path create files
    local dir = process.tmpdir()
    local res = process.lua(CHILD, { timeout = 240, cwd = dir })
    process.rmdir(dir)
    assert.are.equal(0, res.code, process.describe(res))
    local calls, raised = res.stdout:match("calls (%d+) raised (%d+)")
    assert.is_not_nil(calls, process.describe(res))
    assert.is_true(tonumber(calls) > 5000)
    assert.is_true(tonumber(raised) > 0)
  end)
end)

--- A plain luv program: coroutines and timers, no call to async_inspect at all.
--
-- Run it under the command and it is diagnosed all the same: every coroutine is a task,
-- and at exit the report names the request that failed (its error nobody looked at,
-- with the traceback) and the task left waiting for a reply that never came, each with
-- its source line. The program's own output and exit status are untouched.
--
-- Run: bin/async-inspect run examples/plain_luv.lua
-- (plain `lua5.4 examples/plain_luv.lua` runs it without inspection)
local uv = require "luv"

-- suspend the running coroutine for `ms` milliseconds
local function sleep(ms)
  local co = coroutine.running()
  local timer = uv.new_timer()
  timer:start(ms, 0, function()
    timer:close()
    coroutine.resume(co)  -- what it returns is not looked at: a common mistake
  end)
  coroutine.yield()
end

local function handle(request)
  sleep(5 * request)
  if request == 3 then
    error("request 3: upstream answered 502")
  end
  print("request " .. request .. " done")
end

for request = 1, 4 do
  -- the result of resume is dropped: nobody looks at the error of request 3
  coroutine.resume(coroutine.create(handle), request)
end

-- a task waiting for a reply: the code that should wake it was never written
local waiting = {}
local function wait_for_reply()
  waiting[#waiting + 1] = coroutine.running()
  return coroutine.yield()
end
coroutine.resume(coroutine.create(function()
  local reply = wait_for_reply()
  print("got " .. tostring(reply))
end))

uv.run()
print("the loop is done")
